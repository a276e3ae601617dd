// Without WebGPU the page says so plainly and runs burn's CPU backend inside the wasm; its
// numbers equal the same native reference. The JS API example page runs on it too.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import {
  useSite, openPage, waitForTasks, pageArrays, referenceQuery, compareWithReference, relativeError, failWebGPUInWorkers,
  wasmFetched, slowWeightsInWorkers,
} from './harness.mjs';
import { WASM_MODULES } from '../../www/wasm-modules.js';

const site = useSite();

// A browser without WebGPU: navigator.gpu is gone before the page's scripts run.
const NO_WEBGPU = () => { Object.defineProperty(Navigator.prototype, 'gpu', { get: () => undefined, configurable: true }); };

// A browser whose WebAssembly has no relaxed SIMD: its validation refuses
// f32x4.relaxed_madd, whose opcode is 0xfd 0x85 0x02.
const NO_RELAXED_SIMD = () => {
  const validate = WebAssembly.validate;
  WebAssembly.validate = (bytes) => !`,${new Uint8Array(bytes).join()},`.includes(',253,133,2,') && validate(bytes);
};

/** The page without WebGPU, with `init` scripts before its own, checked against the native
 * reference: it must have fetched the CPU module `module` alone (WASM_MODULES' key). */
async function noWebGPUMatchesReference(module, init = []) {
  assert.ok(site.reference, 'tests/fixtures/page_reference.json is missing: scripts/e2e.sh writes it');
  const started = Date.now();
  const query = referenceQuery(site.reference, 'auto');
  const { page, context, errors, requests } = await openPage(site.browser, `${site.server.url}/?${query}`,
    { prepare: (context) => Promise.all([NO_WEBGPU, ...init].map((script) => context.addInitScript(script))) });
  await waitForTasks(page, 2);
  const got = await pageArrays(page);
  // Only that module is downloaded, once for every worker, never WebGPU's.
  assert.deepEqual(wasmFetched(requests), [`${WASM_MODULES[module]}_bg.wasm`]);
  assert.equal(await page.evaluate(() => window.__smoothgrad.api.relaxedSimd), module === 'cpuRelaxedSimd');
  console.log(`page on the CPU backend (${module}): ${((Date.now() - started) / 1000).toFixed(1)} s to the finished SmoothGrad; runs ${JSON.stringify(got.runs)}`);
  assert.equal(got.backend, 'cpu');
  const status = await page.locator('#status').textContent();
  assert.match(status, /This browser has no WebGPU \(Chrome and Edge 113\+, Safari 26, Firefox 141\+ on Windows have it\)/);
  assert.match(await page.locator('#backend-badge').textContent(), /CPU/);
  compareWithReference(got, site.reference);
  // One worker per core shares the run (4 samples, micro-batch 2: at most 2 have work).
  const cores = await page.evaluate(() => navigator.hardwareConcurrency);
  assert.equal(got.runs.gradient.workers, Math.min(cores, 2));
  assert.deepEqual(errors, []);
  await context.close();
}

test('no WebGPU: backend=auto falls back to the CPU (relaxed SIMD\'s module in Chromium), says so, and matches the native reference', async () => {
  await noWebGPUMatchesReference('cpuRelaxedSimd');
});

test('no WebGPU and no relaxed SIMD: the plain CPU module, and it matches the native reference', async () => {
  await noWebGPUMatchesReference('cpu', [NO_RELAXED_SIMD]);
});

const FIXTURE_QUERY = new URLSearchParams({ backend: 'cpu', weights: '/fixtures/narrow_resnet50.safetensors', image: '/fixtures/chelsea.png', methods: 'gradient', autorun: '0' });

/** The page on the CPU backend with the fixture model and image, classified, nothing else run. */
async function openFixturePage() {
  const opened = await openPage(site.browser, `${site.server.url}/?${FIXTURE_QUERY}`);
  await waitForTasks(opened.page, 2);
  return opened;
}

/** The first helper worker's next `op` (after `after` more) fails as a wasm trap would. */
function failFirstHelper(page, op, after = 0) {
  return page.evaluate(({ op, after }) => window.__smoothgrad.api._helpers[0].worker.call('simulateTrap', { op, after, message: 'panicked at a helper: test' }), { op, after });
}

test('a run shared by workers gives the one-worker map, in order; a failed helper\'s samples are done by the model\'s worker, or by it alone when the helper failed to start', async () => {
  const { page, context, errors } = await openFixturePage();
  const explain = (workers) => page.evaluate(async (workers) => {
    const sg = window.__smoothgrad.api;
    const ticks = [];
    const run = await sg.explain({
      method: 'gradient', samples: 6, microBatch: 1, seed: 5, workers,
      onProgress: (p) => ticks.push({ done: p.done, workers: p.workers, values: p.map.length }),
    });
    const variance = await sg.smoothed('variance');
    return { workers: run.workers, done: run.done, ticks, mean: Array.from(run.maps.mean),
      variance: Array.from(run.maps.variance), smoothedVariance: Array.from(variance) };
  }, workers);

  const alone = await explain(1);
  const shared = await explain(3);
  assert.equal(shared.workers, 3);
  assert.equal(shared.done, 6);
  const done = shared.ticks.map((tick) => tick.done);
  assert.deepEqual(done, [...done].sort((a, b) => a - b), 'progress goes forward');
  assert.equal(done.at(-1), 6);
  assert.ok(shared.ticks.every((tick) => tick.workers === 3 && tick.values === 3 * 224 * 224));
  const sameMap = (ours, reference, what) => {
    const error = relativeError(ours, reference);
    console.log(`${what}: max|a-b|/max|b| ${error}`);
    assert.ok(error < 1e-5, `${what}: ${error}`);
  };
  sameMap(shared.mean, alone.mean, '3 workers vs 1, mean');
  sameMap(shared.variance, alone.variance, '3 workers vs 1, variance');
  sameMap(shared.smoothedVariance, shared.variance, 'smoothed() after a shared run');

  // Samples 2 and 3 are the first helper's: it fails at its second, which the model's worker
  // then does; the first, done, is kept.
  await failFirstHelper(page, 'step', 1);
  const recovered = await explain(3);
  assert.equal(recovered.done, 6);
  // The progress and the result count the workers the run still has: once the helper failed, the
  // model's worker alone.
  assert.equal(recovered.workers, 1);
  assert.ok(recovered.ticks.some((tick) => tick.workers === 3), JSON.stringify(recovered.ticks));
  assert.equal(recovered.ticks.at(-1).workers, 1);
  const recoveredDone = recovered.ticks.map((tick) => tick.done);
  assert.deepEqual(recoveredDone, [...recoveredDone].sort((a, b) => a - b), 'progress goes forward');
  assert.equal(recoveredDone.at(-1), 6);
  sameMap(recovered.mean, alone.mean, 'after a helper failed, mean');
  sameMap(recovered.variance, alone.variance, 'after a helper failed, variance');
  sameMap(recovered.smoothedVariance, alone.variance, 'smoothed() after a helper failed');
  const messages = await page.evaluate(() => window.__smoothgrad.messages.map((m) => m.text ?? m));
  assert.ok(messages.some((m) => /A helper worker failed .*panicked at a helper: test.*the model's worker does the samples it had left/.test(m)), messages.join('\n'));

  // A helper that fails to start its share: the run goes to one worker from the beginning.
  sameMap((await explain(3)).mean, alone.mean, 'with new helpers');
  await failFirstHelper(page, 'start');
  const restarted = await explain(3);
  assert.equal(restarted.workers, 1);
  sameMap(restarted.mean, alone.mean, 'after a helper failed to start');
  const later = await page.evaluate(() => window.__smoothgrad.messages.map((m) => m.text ?? m));
  assert.ok(later.some((m) => /A helper worker failed .*panicked at a helper: test.*SmoothGrad runs again on one worker/.test(m)), later.join('\n'));
  assert.deepEqual(errors, []);
  await context.close();
});

test('Integrated Gradients runs a pass at a time with progress, shared by workers; a failed helper\'s steps are done by the model\'s worker; stop() ends it', async () => {
  const { page, context, errors } = await openFixturePage();
  const integratedGradients = (workers, { stopAt, steps = 23 } = {}) => page.evaluate(async ({ workers, stopAt, steps }) => {
    const sg = window.__smoothgrad.api;
    const ticks = [];
    const map = await sg.attribute({
      method: 'integrated-gradients', target: 3, igSteps: steps, workers,
      onProgress: (p) => {
        ticks.push({ done: p.done, total: p.total, workers: p.workers });
        if (p.done >= stopAt) sg.stop();
      },
    });
    return { map: map && Array.from(map), helpers: sg._helpers.length, ticks };
  }, { workers, stopAt, steps });

  // One worker: passes of 10, 10 and 3 steps. Three: 7, 8 and 8 steps, a pass each.
  const alone = await integratedGradients(1);
  assert.deepEqual(alone.ticks, [10, 20, 23].map((done) => ({ done, total: 23, workers: 1 })));
  const shared = await integratedGradients(3);
  assert.equal(shared.helpers, 2, 'two helpers took shares');
  assert.deepEqual(shared.ticks.map((tick) => tick.done).sort((a, b) => a - b), shared.ticks.map((tick) => tick.done));
  assert.equal(shared.ticks.length, 3);
  assert.equal(shared.ticks.at(-1).done, 23);
  const error = relativeError(shared.map, alone.map);
  console.log(`Integrated Gradients on 3 workers vs 1: max|a-b|/max|b| ${error}`);
  assert.ok(error < 1e-5, `${error}`);
  assert.ok(alone.map.some((value) => value !== 0), 'a map, not zeros');

  // 45 steps on 3 workers: 15 each, in passes of 10 and 5. The first helper fails at its second
  // pass: its first is kept, the model's worker does its second.
  const whole = await integratedGradients(1, { steps: 45 });
  await failFirstHelper(page, 'integratedGradientsShare', 1);
  const recovered = await integratedGradients(3, { steps: 45 });
  const recoveredError = relativeError(recovered.map, whole.map);
  console.log(`Integrated Gradients after a helper failed mid-way vs 1 worker: max|a-b|/max|b| ${recoveredError}`);
  assert.ok(recoveredError < 1e-5, `after a helper failed: ${recoveredError}`);
  assert.equal(recovered.ticks.at(-1).done, 45, 'every step done once');
  assert.ok(recovered.ticks.some((tick) => tick.workers === 3), JSON.stringify(recovered.ticks));
  assert.equal(recovered.ticks.at(-1).workers, 1, 'the model\'s worker alone, after the helper failed');
  const messages = await page.evaluate(() => window.__smoothgrad.messages.map((m) => m.text ?? m));
  assert.ok(messages.some((m) => /A helper worker failed .*panicked at a helper: test.*the model's worker does its Integrated Gradients steps/.test(m)), messages.join('\n'));

  const stopped = await integratedGradients(1, { stopAt: 10 });
  assert.equal(stopped.map, null, 'a part of the path is no map');
  assert.deepEqual(stopped.ticks.map((tick) => tick.done), [10]);
  const again = await integratedGradients(1);
  assert.deepEqual(again.map, alone.map, 'a stop ends only the call it came during');

  // A new image between two passes: an error, not a map of both.
  const mixed = await page.evaluate(async () => {
    const sg = window.__smoothgrad.api;
    const bytes = new Uint8Array(await (await fetch('/fixtures/chelsea.png')).arrayBuffer());
    let newImage = null;
    try {
      await sg.attribute({ method: 'integrated-gradients', target: 3, igSteps: 23, workers: 1,
        onProgress: () => { newImage ??= sg.setImage(bytes); } });
      return 'a map';
    } catch (error) {
      await newImage;
      return `${error.kind}: ${error.message}`;
    }
  });
  assert.match(mixed, /^StateError: The image or the weights changed while Integrated Gradients was computed/);
  assert.deepEqual(errors, []);
  await context.close();
});

test('stop() while Integrated Gradients\' helpers start: null, and the next shared run gets them started', async () => {
  const { page, context, errors } = await openFixturePage();
  const r = await page.evaluate(async () => {
    const sg = window.__smoothgrad.api;
    const map = await sg.attribute({ method: 'integrated-gradients', target: 3, igSteps: 30, workers: 3, onProgress: () => sg.stop() });
    const run = await sg.explain({ method: 'gradient', samples: 6, microBatch: 1, workers: 3 });
    const alone = await sg.explain({ method: 'gradient', samples: 6, microBatch: 1, workers: 1 });
    return { map, workers: run.workers, done: run.done, mean: Array.from(run.maps.mean), alone: Array.from(alone.maps.mean),
      messages: window.__smoothgrad.messages.map((m) => m.text) };
  });
  assert.equal(r.map, null);
  assert.equal(r.workers, 3);
  assert.equal(r.done, 6);
  assert.ok(relativeError(r.mean, r.alone) < 1e-5);
  assert.ok(!r.messages.some((m) => /helper worker failed/.test(m)), r.messages.join('\n'));
  assert.deepEqual(errors, []);
  await context.close();
});

test('explain() of several methods: one run, shared by workers, gives each method the map of its own run', async () => {
  const { page, context, errors } = await openFixturePage();
  const r = await page.evaluate(async () => {
    const sg = window.__smoothgrad.api;
    const options = { samples: 4, microBatch: 1, seed: 5, workers: 2 };
    const ticked = new Set();
    const together = await sg.explain({ ...options, methods: ['guided-backprop', 'gradient'],
      onProgress: (p) => ticked.add(Object.keys(p.byMethod).join()) });
    const alone = {};
    for (const method of together.methods) alone[method] = Array.from((await sg.explain({ ...options, method })).maps.variance);
    const mine = Object.fromEntries(together.methods.map((method) => [method, Array.from(together.byMethod[method].maps.variance)]));
    return { methods: together.methods, done: together.done, workers: together.workers, length: together.map.length,
      ticked: [...ticked], together: mine, alone };
  });
  assert.deepEqual(r.methods, ['guided-backprop', 'gradient']);
  assert.deepEqual([r.done, r.workers, r.length], [4, 2, 2 * 3 * 224 * 224]);
  assert.deepEqual(r.ticked, ['guided-backprop,gradient']);
  // The methods share each sample's forward pass: the same operations on the same values.
  for (const method of r.methods) assert.deepEqual(r.together[method], r.alone[method], method);
  assert.ok(relativeError(r.together.gradient, r.together['guided-backprop']) > 0.1, 'the two maps are the two methods\'');
  assert.deepEqual(errors, []);
  await context.close();
});

test('random weights: the workers sharing a run hold the same network, so the map is the one-worker map', async () => {
  const { page, context, errors } = await openFixturePage();
  const maps = await page.evaluate(async () => {
    const sg = window.__smoothgrad.api;
    await sg.loadRandomWeights(10);
    const explain = async (workers) => Array.from((await sg.explain({ method: 'gradient', samples: 2, microBatch: 1, seed: 3, workers })).map);
    return { alone: await explain(1), shared: await explain(2) };
  });
  const error = relativeError(maps.shared, maps.alone);
  assert.ok(error < 1e-5, `2 workers vs 1: max|a-b|/max|b| ${error}`);
  assert.deepEqual(errors, []);
  await context.close();
});

test('weights loaded while a helper loads the old ones: that run is cut off, and the next shared run sends the helper the new weights, so its map is the one-worker map', async () => {
  const { page, context, errors } = await openPage(site.browser, `${site.server.url}/?${FIXTURE_QUERY}`,
    { prepare: (context) => slowWeightsInWorkers(context, { ms: 1500 }) });
  await waitForTasks(page, 2);
  const r = await page.evaluate(async () => {
    const sg = window.__smoothgrad.api;
    // The same network with its weights rounded to bf16: other maps.
    const other = new Uint8Array(await (await fetch('/fixtures/narrow_resnet50_bf16.safetensors')).arrayBuffer());
    const options = { method: 'gradient', samples: 4, microBatch: 1, seed: 5 };
    const cut = sg.explain({ ...options, workers: 2 }).then(() => null, (error) => error.message);
    while (!sg._helpers.length) await new Promise((resolve) => setTimeout(resolve, 1));
    const helper = sg._helpers[0].worker;
    await new Promise((loading) => {
      const call = helper.call.bind(helper);
      helper.call = (op, ...rest) => {
        if (op === 'loadWeights') loading();
        return call(op, ...rest);
      };
    });
    await sg.loadWeights(other);
    const cutOff = await cut;
    const shared = await sg.explain({ ...options, workers: 2 });
    const alone = await sg.explain({ ...options, workers: 1 });
    return { cutOff, workers: shared.workers, shared: Array.from(shared.map), alone: Array.from(alone.map) };
  });
  assert.match(r.cutOff ?? '', /The image or the weights changed while SmoothGrad ran/);
  assert.equal(r.workers, 2);
  const error = relativeError(r.shared, r.alone);
  assert.ok(error < 1e-5, `2 workers vs 1 on the new weights: max|a-b|/max|b| ${error}`);
  assert.deepEqual(errors, []);
  await context.close();
});

test('more workers than the device runs at once: as many as it does, with a notice', async () => {
  const { page, context, errors } = await openFixturePage();
  const r = await page.evaluate(async () => {
    // Two cores, whatever this machine has: the cap is then MAX_CPU_WORKERS.
    Object.defineProperty(Navigator.prototype, 'hardwareConcurrency', { get: () => 2, configurable: true });
    const { MAX_CPU_WORKERS } = await import('/www/api.js');
    const cap = MAX_CPU_WORKERS;
    const run = await window.__smoothgrad.api.explain({ method: 'gradient', samples: cap + 1, microBatch: 1, workers: 1000 });
    return { cap, workers: run.workers, done: run.done, messages: window.__smoothgrad.messages.map((m) => m.text).join('\n') };
  });
  assert.equal(r.workers, r.cap);
  assert.equal(r.done, r.cap + 1);
  assert.match(r.messages, new RegExp(`workers: 1000 is more than this device runs at once; ${r.cap} share the run`));
  assert.deepEqual(errors, []);
  await context.close();
});

test('the page shows Integrated Gradients\' progress, and Stop ends it with no map and the page usable', async () => {
  const q = new URLSearchParams({ backend: 'cpu', weights: '/fixtures/narrow_resnet50.safetensors', image: '/fixtures/chelsea.png',
    methods: 'integrated-gradients', igSteps: '400', autorun: '0' });
  const { page, context, errors } = await openPage(site.browser, `${site.server.url}/?${q}`);
  // With the time left at the rate so far, once a step has given one.
  const progress = await (await page.waitForFunction(() => {
    const text = document.querySelector('#progress-text').textContent;
    return /Integrated Gradients: [1-9]\d*\/400 steps · [\d.]+ s · about [1-9]\d* (s|min) left/.test(text) && text;
  })).jsonValue();
  const [, done, elapsed, left, unit] = progress.match(/(\d+)\/400 steps · ([\d.]+) s · about (\d+) (s|min) left/);
  const expected = ((400 - Number(done)) * Number(elapsed)) / Number(done);
  // The elapsed time is shown to 0.1 s, the time left rounded up to a second or to the minute.
  const tolerance = ((400 - Number(done)) * 0.05) / Number(done) + (unit === 's' ? 1 : 30);
  assert.ok(Math.abs(Number(left) * (unit === 's' ? 1 : 60) - expected) <= tolerance, `${progress}: ${expected} s left`);
  assert.equal(await page.locator('#stop').isDisabled(), false, 'Stop can end it');
  assert.match(await page.locator('#micro-batch-auto').textContent(), /^\(auto = \d+ on the CPU; 1 for Integrated Gradients\)$/);
  await page.click('#stop');
  await waitForTasks(page, 2);
  const s = await page.evaluate(() => ({ maps: Object.keys(window.__smoothgrad.maps), messages: window.__smoothgrad.messages.map((m) => m.text).join('\n') }));
  assert.deepEqual(s.maps, [], 'no map from a part of the path');
  assert.match(s.messages, /Stopped: Integrated Gradients had done \d+ of its 400 steps, and a part of the path is no map\./);
  assert.match(await page.locator('#progress-text').textContent(), /Integrated Gradients: \d+\/400 steps in [\d.]+ s.* — stopped, no map/);

  // The page goes on: with fewer steps (ticking the method again maps it again), to the end.
  await page.fill('#ig-steps', '12');
  const ig = 'input[name=method][value=integrated-gradients]';
  await page.uncheck(ig);
  await page.check(ig);
  await waitForTasks(page, 3);
  assert.deepEqual(await page.evaluate(() => Object.keys(window.__smoothgrad.maps)), ['integrated-gradients']);
  assert.match(await page.locator('#progress-text').textContent(), /^Integrated Gradients: 12\/12 steps in [\d.]+ s/);
  assert.deepEqual(errors, []);
  await context.close();
});

test('backend=auto on a software adapter (SwiftShader) picks the CPU and says why; precision=f16 falls back to f32', async () => {
  const q = new URLSearchParams({ backend: 'auto', precision: 'f16', weights: '/fixtures/narrow_resnet50.safetensors', image: '/fixtures/chelsea.png', methods: 'gradient', autorun: '0' });
  const { page, context } = await openPage(site.browser, `${site.server.url}/?${q}`);
  await waitForTasks(page, 2);
  const s = await page.evaluate(() => ({
    backend: window.__smoothgrad.backend, reason: window.__smoothgrad.backendReason, convLowering: window.__smoothgrad.api.convLowering,
    precision: window.__smoothgrad.precision, messages: window.__smoothgrad.messages.map((m) => m.text).join('\n'),
  }));
  assert.equal(s.backend, 'cpu');
  assert.match(s.reason, /software renderer/);
  // SwiftShader's direct convolutions are for its WebGPU: the CPU backend keeps matrix products.
  assert.equal(s.convLowering, 'matrix-products');
  assert.equal(s.precision, 'f32');
  assert.match(s.messages, /Half precision \(f16\) needs a GPU whose WebGPU adapter offers shader-f16, and the CPU backend computes in f32 only: computing in f32\./);
  await context.close();
});

test('WebGPU failing to start in the worker: the CPU takes over, and each notice is given once', async () => {
  const q = new URLSearchParams({ backend: 'webgpu', precision: 'f16', weights: '/fixtures/narrow_resnet50.safetensors', image: '/fixtures/chelsea.png', methods: 'gradient', autorun: '0' });
  const { page, context, errors, requests } = await openPage(site.browser, `${site.server.url}/?${q}`,
    { prepare: (context) => failWebGPUInWorkers(context) });
  await waitForTasks(page, 2);
  assert.deepEqual(wasmFetched(requests), ['smoothgrad_web_bg.wasm', 'smoothgrad_web_cpu_relaxed_simd_bg.wasm'], 'WebGPU\'s module, then the CPU\'s');
  const s = await page.evaluate(() => ({
    backend: window.__smoothgrad.backend, precision: window.__smoothgrad.precision,
    probabilities: window.__smoothgrad.probabilities?.length, messages: window.__smoothgrad.messages.map((m) => m.text),
  }));
  assert.equal(s.backend, 'cpu');
  assert.equal(s.precision, 'f32');
  assert.ok(s.probabilities >= 5, 'the image was classified');
  const count = (pattern) => s.messages.filter((m) => pattern.test(m)).length;
  assert.equal(count(/WebGPU could not start \(no device: simulated\); running on the CPU/), 1, s.messages.join('\n'));
  assert.equal(count(/Half precision \(f16\)/), 1, s.messages.join('\n'));
  assert.match(s.messages.join('\n'), /the CPU backend computes in f32 only/);
  assert.deepEqual(errors, []);
  await context.close();
});

test('WebGPU\'s module failing to download: the CPU\'s takes over, with a notice that says so', async () => {
  const q = new URLSearchParams({ backend: 'webgpu', weights: '/fixtures/narrow_resnet50.safetensors', image: '/fixtures/chelsea.png', methods: 'gradient', autorun: '0' });
  const { page, context, errors, requests } = await openPage(site.browser, `${site.server.url}/?${q}`,
    { prepare: (context) => context.route('**/smoothgrad_web_bg.wasm', (route) => route.fulfill({ status: 503, body: 'busy' })) });
  await waitForTasks(page, 2);
  assert.equal(wasmFetched(requests).at(-1), 'smoothgrad_web_cpu_relaxed_simd_bg.wasm', 'the CPU module last');
  const s = await page.evaluate(() => ({
    backend: window.__smoothgrad.backend, gradient: window.__smoothgrad.maps.gradient?.length,
    messages: window.__smoothgrad.messages.map((m) => m.text).join('\n'),
  }));
  assert.equal(s.backend, 'cpu');
  assert.equal(s.gradient, 3 * 224 * 224, 'the gradient map was drawn');
  assert.match(s.messages, /The webgpu WebAssembly module could not be loaded \(.+\)\. Running on the CPU inside WebAssembly instead, which is slower\./);
  assert.doesNotMatch(s.messages, /build-site/);
  assert.deepEqual(errors, []);
  await context.close();
});

test('the relaxed SIMD module missing from the site: the plain CPU module runs in its place, and the helpers get it too', async () => {
  const { page, context, errors, requests } = await openPage(site.browser, `${site.server.url}/?${FIXTURE_QUERY}`,
    { prepare: (context) => context.route('**/www/pkg/smoothgrad_web_cpu_relaxed_simd*', (route) => route.fulfill({ status: 404, body: 'not here' })) });
  await waitForTasks(page, 2);
  const s = await page.evaluate(async () => {
    const { api } = window.__smoothgrad;
    const run = await api.explain({ method: 'gradient', samples: 4, microBatch: 1, workers: 2 });
    return { backend: api.backend, relaxedSimd: api.relaxedSimd, workers: run.workers, done: run.done, probabilities: window.__smoothgrad.probabilities?.length };
  });
  assert.deepEqual(s, { backend: 'cpu', relaxedSimd: false, workers: 2, done: 4, probabilities: s.probabilities });
  assert.ok(s.probabilities >= 5, 'the image was classified');
  assert.deepEqual(wasmFetched(requests), ['smoothgrad_web_cpu_relaxed_simd_bg.wasm', 'smoothgrad_web_cpu_bg.wasm'], 'the relaxed module asked for once, then the plain one');
  assert.deepEqual(errors, []);
  await context.close();
});

test('an image picked and a target typed while the weights download are what the page explains', async () => {
  const q = new URLSearchParams({ backend: 'cpu', weights: '/fixtures/slow/narrow_resnet50.safetensors', image: '/fixtures/chelsea.png', methods: 'gradient', samples: '2', autorun: '0' });
  let release, started;
  const downloading = new Promise((resolve) => { release = resolve; });
  const requested = new Promise((resolve) => { started = resolve; });
  const { page, context, errors } = await openPage(site.browser, `${site.server.url}/?${q}`, {
    prepare: (context) => context.route('**/fixtures/slow/*', async (route) => {
      started();
      await downloading;
      await route.fulfill({ path: new URL('../fixtures/narrow_resnet50.safetensors', import.meta.url).pathname });
    }),
  });
  await requested;
  await page.locator('button.sample[data-sample="coffee.png"]').click();
  release();
  await waitForTasks(page, 3);
  const s = await page.evaluate(() => ({ image: window.__smoothgrad.image, top1: window.__smoothgrad.top5[0].index }));
  assert.equal(s.image, 'coffee.png', 'the default image must not replace the one the user picked');
  // Typed, then Run at once: the run explains the typed class, plain map included.
  const other = (s.top1 + 1) % 10;
  await page.locator('#target').fill(String(other));
  await page.locator('#run').click();
  await page.waitForFunction(() => window.__smoothgrad.runs.gradient?.done === 2 && window.__smoothgrad.status !== 'busy', null, { timeout: 120_000 });
  assert.equal(await page.evaluate(() => window.__smoothgrad.target), other);
  // The map's export says what it was computed for, and goes when another class is chosen.
  const [json] = await Promise.all([page.waitForEvent('download'), page.locator('figure[data-key="sg:gradient"] .export button', { hasText: '.json' }).click()]);
  const exported = JSON.parse(await readFile(await json.path(), 'utf8'));
  assert.deepEqual([exported.target, exported.samples, exported.done], [other, 2, 2]);
  const top1 = page.locator(`#top5 .class-choice[data-index="${s.top1}"]`);
  await top1.click();
  await page.waitForFunction((t) => window.__smoothgrad.target === t && window.__smoothgrad.status !== 'busy', s.top1);
  assert.deepEqual(await page.evaluate(() => window.__smoothgrad.smoothgrad), {}, 'the other class\'s SmoothGrad map is gone');
  // stop() right after explain() is called ends that run, even before its target is known.
  const stopped = await page.evaluate(async () => {
    const sg = window.__smoothgrad.api;
    const running = sg.explain({ method: 'gradient', samples: 6, microBatch: 1, workers: 1 });
    sg.stop();
    const { done, stopped } = await running;
    return { done, stopped };
  });
  assert.equal(stopped.stopped, true);
  assert.ok(stopped.done < 6, JSON.stringify(stopped));
  assert.deepEqual(errors, []);
  await context.close();
});

test('the JS API example page (www/example.html) runs on the CPU backend', async () => {
  const q = new URLSearchParams({ backend: 'cpu', weights: '/fixtures/narrow_resnet50.safetensors', samples: '4' });
  const { page, context, errors } = await openPage(site.browser, `${site.server.url}/www/example.html?${q}`);
  await page.waitForFunction(() => window.__example, null, { timeout: 300_000 });
  const result = await page.evaluate(() => {
    const e = window.__example;
    return { error: e.error, top: e.top, n: e.smoothgrad?.length, gradient: e.gradient?.length };
  });
  assert.equal(result.error, undefined, JSON.stringify(result.error));
  assert.equal(result.top.length, 5);
  assert.match(result.top[0].name, /^class \d$/);
  assert.equal(result.n, 3 * 224 * 224);
  assert.match(await page.locator('#log').textContent(), /SmoothGrad 4\/4/);
  assert.deepEqual(errors, []);
  await context.close();
});

/** What `Explainer.create` gives for each of `backends` in the wasm module of the backend `module`
 * (www/wasm-modules.js), loaded alone in a page: {backend} or the {name, message} it threw. */
async function createInModule(module, backends) {
  const { page, context, errors } = await openPage(site.browser, `${site.server.url}/fixtures/CREDITS.md`);
  const got = await page.evaluate(async ({ name, backends }) => {
    const { default: init, Explainer } = await import(`/www/pkg/${name}.js`);
    await init();
    const outcomes = {};
    for (const backend of backends) {
      outcomes[backend] = await Explainer.create(backend, null)
        .then((explainer) => ({ backend: explainer.backend }), (e) => ({ name: e.name, message: e.message }));
    }
    return outcomes;
  }, { name: WASM_MODULES[module], backends });
  assert.deepEqual(errors, []);
  await context.close();
  return got;
}

test('the CPU modules carry the CPU backend alone: asked for WebGPU they say so', async () => {
  for (const module of ['cpu', 'cpuRelaxedSimd']) {
    const got = await createInModule(module, ['cpu', 'webgpu']);
    assert.deepEqual(got.cpu, { backend: 'cpu' }, module);
    assert.deepEqual(got.webgpu, {
      name: 'BackendError',
      message: 'this WebAssembly module was built without the webgpu backend: load the one built with it',
    }, module);
  }
});

test('the WebGPU module carries the WebGPU backend alone: asked for the CPU it says so', async () => {
  // Before, it carried the CPU backend too: 2.3 MB of its 23 MB that no page used.
  assert.deepEqual((await createInModule('webgpu', ['cpu'])).cpu, {
    name: 'BackendError',
    message: 'this WebAssembly module was built without the cpu backend: load the one built with it',
  });
});

test('weights by default: not on the site → the Hugging Face hub with progress, then from Cache Storage; offline → random offered; a cut-off file is not cached, and one cached before is replaced; a throwing progress callback is not a failed download', async () => {
  const { readFile } = await import('node:fs/promises');
  const { join } = await import('node:path');
  const { FIXTURES } = await import('./harness.mjs');
  const hub = 'https://huggingface.co/timm/resnet50.tv_in1k/resolve/main/model.safetensors';
  const body = await readFile(join(FIXTURES, 'narrow_resnet50.safetensors'));
  const q = new URLSearchParams({ backend: 'cpu', image: '/fixtures/chelsea.png', methods: 'gradient', autorun: '0' });
  const url = `${site.server.url}/?${q}`;
  // The hub's response carrying `sent`, which says it is `length` bytes long.
  const file = (sent, length = sent.length) => ({ status: 200, body: sent,
    headers: { 'content-type': 'application/octet-stream', 'content-length': String(length), 'access-control-allow-origin': '*' } });

  // Online: the hub (stood in for by the fixture) serves the file once; the next visit reads the cache.
  let hits = 0;
  const { page, context } = await openPage(site.browser, url, { prepare: (context) => context.route(hub, (route) => {
    hits += 1;
    route.fulfill(file(body));
  }) });
  await waitForTasks(page, 2);
  assert.equal(hits, 1);
  assert.equal(await page.evaluate(() => window.__smoothgrad.weights), hub);
  assert.equal(await page.evaluate(() => window.__smoothgrad.probabilities.length), 10);
  await page.reload();
  await waitForTasks(page, 2);
  assert.equal(hits, 1, 'the second visit must not download again');
  assert.match(await page.locator('#model-badge').textContent(), /\(cached\)/);
  await context.close();

  // Offline: a plain message, and random weights offered (not clicked: that is a full ResNet-50).
  const offline = await openPage(site.browser, url, { prepare: (context) => context.route(hub, (route) => route.abort('internetdisconnected')) });
  await waitForTasks(offline.page, 2);
  const lastError = await offline.page.evaluate(() => window.__smoothgrad.lastError);
  assert.equal(lastError.kind, 'NetworkError');
  assert.match(lastError.message, /No ResNet-50 weights could be loaded: not on this site .*HTTP 404.* nor from the Hugging Face hub/);
  assert.match(await offline.page.locator('#status').textContent(), /No ResNet-50 weights could be loaded/);
  assert.equal(await offline.page.locator('#random-weights').isVisible(), true);
  assert.match(await offline.page.locator('#model-badge').textContent(), /no model/);
  await offline.context.close();

  // A cut-off file is refused and not kept: the next visit downloads it again.
  let served = 0;
  const broken = await openPage(site.browser, url, { prepare: (context) => context.route(hub, (route) => {
    served += 1;
    route.fulfill(file(served === 1 ? body.subarray(0, body.length >> 1) : body));
  }) });
  await waitForTasks(broken.page, 2);
  const truncated = await broken.page.evaluate(() => window.__smoothgrad.lastError);
  assert.equal(truncated.kind, 'WeightsError');
  assert.match(truncated.message, /truncated/);
  await broken.page.reload();
  await waitForTasks(broken.page, 2);
  assert.equal(served, 2, 'the broken download must not have been cached');
  assert.equal(await broken.page.evaluate(() => window.__smoothgrad.probabilities.length), 10);
  await broken.context.close();

  // A cut-off copy cached by an older version of the page: dropped, downloaded again, replaced.
  const stale = await openPage(site.browser, `${site.server.url}/fixtures/CREDITS.md`);
  let downloads = 0;
  await stale.context.route(hub, (route) => {
    downloads += 1;
    route.fulfill(file(body));
  });
  await stale.page.evaluate(async (hubUrl) => {
    const whole = await (await fetch('/fixtures/narrow_resnet50.safetensors')).arrayBuffer();
    await (await caches.open('smoothgrad-weights-v1')).put(hubUrl, new Response(whole.slice(0, whole.byteLength >> 1)));
  }, hub);
  await stale.page.goto(url);
  await waitForTasks(stale.page, 2);
  const recovered = await stale.page.evaluate(() => ({ lastError: window.__smoothgrad.lastError, n: window.__smoothgrad.probabilities?.length,
    messages: window.__smoothgrad.messages.map((m) => m.text).join('\n') }));
  assert.equal(recovered.lastError, null, JSON.stringify(recovered.lastError));
  assert.equal(recovered.n, 10);
  assert.match(recovered.messages, /The cached copy of .*model\.safetensors did not load \(.*truncated.*\): downloading it again\./);
  assert.equal(downloads, 1);
  await stale.page.reload();
  await waitForTasks(stale.page, 2);
  assert.equal(downloads, 1, 'the good copy must have replaced the broken one');
  assert.equal(await stale.page.evaluate(() => window.__smoothgrad.lastError), null);
  await stale.context.close();

  // A body shorter than its Content-Length: a NetworkError that says the download stopped.
  const short = await openPage(site.browser, url,
    { prepare: (context) => context.route(hub, (route) => route.fulfill(file(body.subarray(0, body.length >> 1), body.length))) });
  await waitForTasks(short.page, 2);
  const cut = await short.page.evaluate(() => window.__smoothgrad.lastError);
  assert.equal(cut.kind, 'NetworkError', JSON.stringify(cut));
  assert.match(cut.message, /The download of .*model\.safetensors (stopped at 0\.7 of 1\.5 MB|broke off)/);
  assert.equal(await short.page.locator('#retry-weights').isVisible(), true);
  await short.context.close();

  // A progress callback that throws is the caller's bug, not a broken download: downloaded, then from the cache.
  const loud = await openPage(site.browser, `${site.server.url}/fixtures/CREDITS.md`);
  await loud.context.route(hub, (route) => route.fulfill(file(body)));
  const loaded = await loud.page.evaluate(async (hubUrl) => {
    const { SmoothGrad } = await import('/www/api.js');
    const sg = await SmoothGrad.create({ backend: 'cpu' });
    const fromCache = [];
    const load = () => sg.loadWeights(hubUrl, { onProgress: (p) => { fromCache.push(p.fromCache); throw new Error('the page broke'); } });
    const classes = [(await load()).numClasses, (await load()).numClasses];
    sg.dispose();
    return { classes, downloaded: fromCache.includes(false), cached: fromCache.includes(true) };
  }, hub);
  assert.deepEqual(loaded, { classes: [10, 10], downloaded: true, cached: true });
  await loud.context.close();
});
