// The reference of scripts/bench-browser.mjs: the work www/bench-worker.js times (ResNet-50 at
// 224×224, fp32: forward, forward + gradient of one logit w.r.t. the input, SmoothGrad per
// micro-batch, reading the running map back after each), in TF.js, laid out as a converted
// model runs it: NHWC, batch norm folded into the convolutions (as the TF.js converter does).
// The forward pass fuses bias + ReLU into them; gradients go through the unfused ops, because
// TF.js's fused convolution computes the filter's gradient too, which its wasm backend lacks.
// Random weights: the time does not depend on their values.
import { median } from '/www/bench-timing.js';

const tf = globalThis.tf;
const SIZE = 224;

/**
 * A `kernel`×`kernel` convolution with torchvision's padding and folded batch norm as its bias,
 * then `activation`; one fused op when `fused`.
 */
function convolution(kernel, channelsIn, channelsOut, stride = 1) {
  const filter = tf.randomNormal([kernel, kernel, channelsIn, channelsOut], 0,
    Math.sqrt(2 / (kernel * kernel * channelsIn)));
  const bias = tf.zeros([channelsOut]);
  const pad = Math.floor(kernel / 2);
  return (x, fused, activation = 'relu') => {
    if (fused) return tf.fused.conv2d({ x, filter, bias, strides: stride, pad, activation });
    const y = tf.add(tf.conv2d(x, filter, stride, pad), bias);
    return activation === 'relu' ? tf.relu(y) : y;
  };
}

/** torchvision's Bottleneck (v1.5: the stride on the 3×3 convolution). */
function bottleneck(channelsIn, width, stride) {
  const reduce = convolution(1, channelsIn, width);
  const spatial = convolution(3, width, width, stride);
  const expand = convolution(1, width, 4 * width);
  const downsample = stride !== 1 || channelsIn !== 4 * width
    ? convolution(1, channelsIn, 4 * width, stride) : null;
  return (x, fused) => tf.relu(tf.add(expand(spatial(reduce(x, fused), fused), fused, 'linear'),
    downsample ? downsample(x, fused, 'linear') : x));
}

/** ResNet-50 as a function from NHWC images (and whether to fuse) to logits. */
function resnet50(classes = 1000) {
  const stem = convolution(7, 3, 64, 2);
  const blocks = [];
  let channels = 64;
  for (const [width, count, stride] of [[64, 3, 1], [128, 4, 2], [256, 6, 2], [512, 3, 2]]) {
    for (let index = 0; index < count; index += 1) {
      blocks.push(bottleneck(channels, width, index === 0 ? stride : 1));
      channels = 4 * width;
    }
  }
  const fcWeight = tf.randomNormal([channels, classes], 0, Math.sqrt(1 / channels));
  const fcBias = tf.zeros([classes]);
  return (images, fused) => {
    let x = tf.maxPool(stem(images, fused), 3, 2, 1);
    for (const block of blocks) x = block(x, fused);
    return tf.add(tf.matMul(tf.mean(x, [1, 2]), fcWeight), fcBias);
  };
}

/** Resolves with the values of a tensor made in `make`, freeing it and everything in between. */
async function read(make) {
  const tensor = tf.tidy(make);
  const values = await tensor.data();
  tensor.dispose();
  return values;
}

/** SmoothGrad as bench-worker.js runs it: noise made on the backend, the sum kept there. */
async function smoothgrad(gradient, image, sigma, samples, microBatch) {
  let sum = tf.zeros(image.shape);
  for (let done = 0; done < samples; done += microBatch) {
    const count = Math.min(microBatch, samples - done);
    const next = tf.tidy(() => {
      const noisy = tf.add(tf.tile(image, [count, 1, 1, 1]), tf.randomNormal([count, SIZE, SIZE, 3], 0, sigma));
      return tf.add(sum, tf.sum(gradient(noisy), 0, true));
    });
    sum.dispose();
    sum = next;
    await read(() => tf.div(sum, done + count));
  }
  sum.dispose();
}

async function start(backend) {
  if (backend === 'wasm') tf.wasm.setWasmPaths('/node_modules/@tensorflow/tfjs-backend-wasm/dist/');
  if (!(await tf.setBackend(backend))) throw new Error(`TF.js has no ${backend} backend here`);
  await tf.ready();
}

async function run(params, say) {
  const backend = params.backend ?? 'wasm';
  const samples = Number(params.samples ?? 50);
  const runs = Number(params.runs ?? 3);
  const microBatches = (params.microBatches ?? '1').split(',').map(Number);
  await start(backend);
  const model = resnet50();
  const image = tf.randomUniform([1, SIZE, SIZE, 3], -2, 2);
  const logits = await read(() => model(image, true));
  const target = logits.indexOf(Math.max(...logits));
  const [low, high] = await read(() => tf.stack([tf.min(image), tf.max(image)]));
  const sigma = 0.15 * (high - low);
  const gradient = tf.grad((images) => tf.sum(tf.slice(model(images, false), [0, target], [-1, 1])));

  const forward = await median(runs, () => read(() => model(image, true)));
  say(`TF.js ${backend} forward: ${forward.toFixed(1)} ms`);
  const forwardBackward = await median(runs, () => read(() => gradient(image)));
  say(`TF.js ${backend} forward+backward: ${forwardBackward.toFixed(1)} ms`);
  const smoothgradFigures = [];
  for (const microBatch of microBatches) {
    const ms = await median(runs, () => smoothgrad(gradient, image, sigma, samples, microBatch));
    smoothgradFigures.push({ micro_batch: microBatch, ms });
    say(`TF.js ${backend} SmoothGrad-${samples}, micro-batch ${microBatch}: ${ms.toFixed(0)} ms`);
  }
  return {
    project: `TF.js ${tf.version.tfjs}`,
    backend,
    // Without cross-origin isolation (any static host) the wasm backend runs on one thread.
    ...(backend === 'wasm' ? {
      wasm_simd: await tf.env().getAsync('WASM_HAS_SIMD_SUPPORT'),
      wasm_threads: await tf.env().getAsync('WASM_HAS_MULTITHREAD_SUPPORT'),
      // As bench-worker.js reports it: the heap only grows, so this is its peak.
      wasm_memory_bytes: tf.backend().wasm.HEAPU8.buffer.byteLength,
    } : {}),
    runs,
    samples,
    forward_b1: { ms: forward },
    forward_backward_b1: { ms: forwardBackward },
    smoothgrad: smoothgradFigures,
  };
}

const log = document.getElementById('log');
const say = (line) => {
  console.log(line);
  log.textContent += `\n${line}`;
};
try {
  window.__benchResult = await run(Object.fromEntries(new URLSearchParams(location.search)), say);
} catch (error) {
  window.__benchResult = { error: `${error.name}: ${error.message}` };
}
log.textContent = JSON.stringify(window.__benchResult, null, 2);
