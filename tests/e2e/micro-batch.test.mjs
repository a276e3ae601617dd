// The micro-batch that "auto" picks (www/api.js's autoMicroBatch), in Node: no browser needed.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { autoMicroBatch, igPassSteps, MAX_AUTO_MICRO_BATCH } from '../../www/api.js';

const MiB = 1024 * 1024;
const gpu = (bindingMiB, bufferMiB = 4096) => ({
  backend: 'webgpu',
  adapter: { limits: { maxStorageBufferBindingSize: bindingMiB * MiB, maxBufferSize: bufferMiB * MiB } },
});

test('WebGPU: from the smaller of the two buffer limits', () => {
  // WebGPU's default limits (128 MiB bindings) leave room for one image only.
  assert.equal(autoMicroBatch({ ...gpu(128, 256), samples: 50 }), 1);
  // 216 MiB for the first image, 75 MiB for each further one: 1 GiB holds 11.
  assert.equal(autoMicroBatch({ ...gpu(1024), samples: 50 }), 11);
  assert.equal(autoMicroBatch({ ...gpu(4096, 1024), samples: 50 }), 11);
  // Half the memory per image in f16.
  assert.equal(autoMicroBatch({ ...gpu(1024), samples: 50, precision: 'f16' }), 25);
  // A model half as wide needs half as much.
  assert.equal(autoMicroBatch({ ...gpu(1024), samples: 50, model: { baseWidth: 32 } }), 25);
});

test('WebGPU: at most MAX_AUTO_MICRO_BATCH, and never more than the samples', () => {
  assert.equal(MAX_AUTO_MICRO_BATCH, 25);
  assert.equal(autoMicroBatch({ ...gpu(4096), samples: 50 }), MAX_AUTO_MICRO_BATCH);
  assert.equal(autoMicroBatch({ ...gpu(4096), samples: 8 }), 8);
});

test('CPU: 2 images, 4 for a half-width model', () => {
  assert.equal(autoMicroBatch({ backend: 'cpu', samples: 50 }), 2);
  assert.equal(autoMicroBatch({ backend: 'cpu', samples: 50, model: { baseWidth: 32 } }), 4);
  assert.equal(autoMicroBatch({ backend: 'cpu', samples: 1 }), 1);
});

test('Integrated Gradients: 1 on every device (each noisy copy is already passes of 10 path points)', () => {
  for (const device of [gpu(4096), gpu(128, 256), { backend: 'cpu' }]) {
    assert.equal(autoMicroBatch({ ...device, samples: 50, method: 'integrated-gradients' }), 1);
  }
  // The other methods keep the device's.
  assert.equal(autoMicroBatch({ ...gpu(4096), samples: 50, method: 'gradient' }), MAX_AUTO_MICRO_BATCH);
  assert.equal(autoMicroBatch({ backend: 'cpu', samples: 50, method: 'guided-backprop' }), 2);
});

test('Integrated Gradients\' plain map: passes of 10 path points, fewer where the GPU holds fewer images', () => {
  assert.equal(igPassSteps({ backend: 'cpu' }), 10);
  assert.equal(igPassSteps(gpu(4096)), 10);
  assert.equal(igPassSteps(gpu(512)), 4); // 216 MiB + 3 × 75 MiB
  assert.equal(igPassSteps(gpu(128, 256)), 1);
});
