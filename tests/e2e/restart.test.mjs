// A GPU failure on WebGPU (SwiftShader): the wasm instance traps or its device is lost, the
// worker is replaced by a new one with a new WebGPU device and the same weights, image and
// settings, and the classification is done again. The trap is provoked through the worker's
// test hook `simulateTrap`; a real device loss by destroying the worker's WebGPU device, and a
// real GPU out-of-memory error by having that device report one, so that wgpu and CubeCL handle
// them as they would a GPU's (failDeviceInWorkers). (The out-of-memory retry on the CPU backend
// is in errors.test.mjs.)
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { useSite, openPage, pageState, waitForTasks, completed, failWebGPUInWorkers, failDeviceInWorkers } from './harness.mjs';

const QUERY = new URLSearchParams({
  backend: 'webgpu', weights: '/fixtures/narrow_resnet50.safetensors', image: '/fixtures/chelsea.png',
  methods: 'gradient', autorun: '0',
});
const site = useSite({ query: QUERY });
const state = () => pageState(site.page);

/** The page classifies the cat again, on WebGPU, with the probabilities it had before. */
async function stillUsable(catProbabilities) {
  const n = await completed(site.page);
  await site.page.locator('button.sample[data-sample="chelsea.png"]').click();
  await waitForTasks(site.page, n + 1);
  const s = await state();
  assert.equal(s.backend, 'webgpu');
  assert.equal(await site.page.evaluate(() => window.__smoothgrad.api.convLowering), 'direct');
  assert.deepEqual(s.probabilities, catProbabilities);
}

test('the GPU device lost during classification: restarted, the image and weights restored', async () => {
  const catProbabilities = (await state()).probabilities;
  await site.page.evaluate(() => window.__smoothgrad.api._raw('simulateTrap', {
    op: 'classify', message: 'panicked at wgpu: Device lost: the GPU was reset',
  }));
  const errorsBefore = (await state()).errors;
  await stillUsable(catProbabilities);
  const s = await state();
  assert.ok(s.messages.some((m) => /GPU device lost/.test(m)), s.messages.join('\n'));
  assert.equal(s.errors, errorsBefore, `no error left for the user: ${JSON.stringify(s.lastError)}`);
});


test('a render sent while another call traps is drawn by the restarted worker, not refused', async () => {
  const outcome = await site.page.evaluate(async () => {
    const sg = window.__smoothgrad.api;
    await sg._raw('simulateTrap', { op: 'classify', message: 'panicked at wgpu: Device lost: the GPU was reset' });
    const [classified, rendered] = await Promise.allSettled([sg.classify(), sg.render(window.__smoothgrad.maps.gradient)]);
    return { classified: classified.status, rendered: rendered.status, reason: rendered.reason?.message, width: rendered.value?.width };
  });
  assert.deepEqual(outcome, { classified: 'fulfilled', rendered: 'fulfilled', reason: undefined, width: 224 });
});

/** SmoothGrad (4 samples at micro-batch `microBatch`) on a page whose first worker's WebGPU
 * device fails (`failure`, see failDeviceInWorkers) at its second step, then again untroubled:
 * what each returned, and the page's messages. */
async function smoothGradThroughDeviceFailure(failure, microBatch) {
  const { page, context, errors } = await openPage(site.browser, `${site.server.url}/?${QUERY}`,
    { prepare: (context) => failDeviceInWorkers(context, { op: 'step', after: 1, failure }) });
  await waitForTasks(page, 2);
  const outcome = await page.evaluate(async (microBatch) => {
    const sg = window.__smoothgrad.api;
    const options = { method: 'gradient', samples: 4, microBatch, seed: 7 };
    const failed = await sg.explain(options);
    const again = await sg.explain({ ...options, microBatch: failed.microBatch });
    return { done: failed.done, microBatch: failed.microBatch, same: failed.map.every((v, i) => v === again.map[i]),
      backend: sg.backend, messages: window.__smoothgrad.messages.map((m) => m.text).join('\n') };
  }, microBatch);
  assert.deepEqual(errors, []);
  await context.close();
  return outcome;
}

test('a real device loss mid-SmoothGrad (the WebGPU device destroyed): a new worker runs it again, to the same map', async () => {
  const outcome = await smoothGradThroughDeviceFailure('lost', 1);
  assert.deepEqual({ done: outcome.done, same: outcome.same, backend: outcome.backend }, { done: 4, same: true, backend: 'webgpu' });
  assert.match(outcome.messages, /GPU device lost \(Destroyed: Device was destroyed\): restarting the model…/);
});

test('WebGPU out of memory mid-SmoothGrad (reported by the device, as an allocation that failed): restarted, run again at half the micro-batch', async () => {
  const outcome = await smoothGradThroughDeviceFailure('outOfMemory', 2);
  assert.deepEqual({ done: outcome.done, microBatch: outcome.microBatch, same: outcome.same, backend: outcome.backend },
    { done: 4, microBatch: 1, same: true, backend: 'webgpu' });
  assert.match(outcome.messages, /Out of GPU memory \(panicked at .*\nwgpu error: Out of Memory\): restarting the model…/);
  assert.match(outcome.messages, /at micro-batch 2: retrying with micro-batch 1/);
});

test('WebGPU out of memory while a classification runs: it fails at once, not with what the failed device gave; the model restarted, the next one works', async () => {
  const { page, context, errors } = await openPage(site.browser, `${site.server.url}/?${QUERY}`, // fails after the page's own
    { prepare: (context) => failDeviceInWorkers(context, { op: 'classify', after: 1, failure: 'outOfMemory' }) });
  await waitForTasks(page, 2);
  const outcome = await page.evaluate(async () => {
    const sg = window.__smoothgrad.api;
    const before = window.__smoothgrad.probabilities;
    const failed = await sg.classify().then(() => null, (error) => ({ kind: error.kind, message: error.message }));
    const { probabilities } = await sg.classify();
    return { failed, same: probabilities.every((p, i) => p === before[i]) };
  });
  // One-shot calls are not done again after running out of memory (they would again): the page
  // then asks for less (the classes without the map).
  assert.equal(outcome.failed?.kind, 'OutOfMemory', JSON.stringify(outcome.failed));
  assert.match(outcome.failed.message, /^The GPU ran out of memory \(panicked at .*\nwgpu error: Out of Memory\)\. The model was restarted/);
  assert.equal(outcome.same, true);
  assert.deepEqual(errors, []);
  await context.close();
});

test('a restart where WebGPU no longer starts: the CPU takes over and the page says so in its badge', async () => {
  const { page, context, errors } = await openPage(site.browser, `${site.server.url}/?${QUERY}`, // the first worker starts, its replacement cannot
    { prepare: (context) => failWebGPUInWorkers(context, { from: 2 }) });
  await waitForTasks(page, 2);
  assert.match(await page.locator('#backend-badge').textContent(), /WebGPU/);
  await page.evaluate(() => window.__smoothgrad.api._raw('simulateTrap', {
    op: 'classify', message: 'panicked at wgpu: Device lost: the GPU was reset',
  }));
  await page.locator('button.sample[data-sample="chelsea.png"]').click();
  await waitForTasks(page, 3);
  const s = await page.evaluate(() => ({ backend: window.__smoothgrad.backend, messages: window.__smoothgrad.messages.map((m) => m.text).join('\n'), lastError: window.__smoothgrad.lastError }));
  assert.equal(s.backend, 'cpu');
  assert.match(await page.locator('#backend-badge').textContent(), /CPU \(WebAssembly\)/);
  assert.match(s.messages, /WebGPU could not start \(no device: simulated\); running on the CPU/);
  assert.equal(s.lastError, null, JSON.stringify(s.lastError));
  assert.deepEqual(errors, []);
  await context.close();
});

test('SmoothGrad cut off by a restart that fell back to the CPU runs again with the CPU\'s micro-batch and workers', async () => {
  const { page, context, errors } = await openPage(site.browser, `${site.server.url}/?${QUERY}`,
    { prepare: (context) => failWebGPUInWorkers(context, { from: 2 }) });
  await waitForTasks(page, 2);
  const outcome = await page.evaluate(async () => {
    const sg = window.__smoothgrad.api;
    const { autoMicroBatch, autoWorkers } = await import('/www/api.js');
    await sg._raw('simulateTrap', { op: 'step', message: 'panicked at wgpu: Out of Memory' });
    const run = await sg.explain({ method: 'gradient', samples: 8, seed: 7 });
    const microBatch = autoMicroBatch({ backend: 'cpu', model: sg.model, samples: 8, method: 'gradient' });
    return { backend: sg.backend, done: run.done, microBatch: run.microBatch, workers: run.workers,
      cpu: { microBatch, workers: autoWorkers({ backend: 'cpu', samples: 8, microBatch }) },
      messages: window.__smoothgrad.messages.map((m) => m.text).join('\n') };
  });
  assert.equal(outcome.backend, 'cpu');
  assert.equal(outcome.done, 8);
  assert.deepEqual({ microBatch: outcome.microBatch, workers: outcome.workers }, outcome.cpu);
  assert.notEqual(outcome.cpu.microBatch, 8, 'the CPU\'s "auto" differs from the GPU\'s here, or this proves nothing');
  // Not "retrying with micro-batch 4": the GPU's memory is not the CPU's.
  assert.match(outcome.messages, /The GPU ran out of memory \(panicked at wgpu: Out of Memory\)\. The model was restarted with your weights, image and settings\. Running SmoothGrad again on the CPU\./);
  assert.doesNotMatch(outcome.messages, /retrying with micro-batch/);
  assert.deepEqual(errors, []);
  await context.close();
});

test('a restart where no backend starts any more: the calls after it say so and ask for a reload', async () => {
  const { page, context, errors } = await openPage(site.browser, `${site.server.url}/?${QUERY}`, {
    prepare: async (context) => {
      await failWebGPUInWorkers(context, { from: 2 });
      await context.route('**/www/pkg/smoothgrad_web_cpu*', (route) => route.abort()); // as offline since
    },
  });
  await waitForTasks(page, 2);
  const outcome = await page.evaluate(async () => {
    const sg = window.__smoothgrad.api;
    await sg._raw('simulateTrap', { op: 'classify', message: 'panicked at wgpu: Device lost: the GPU was reset' });
    const failed = (error) => ({ kind: error.kind, message: error.message });
    return { restart: await sg.classify().catch(failed), later: await sg.classify().catch(failed) };
  });
  assert.equal(outcome.restart.kind, 'BackendError');
  assert.match(outcome.restart.message, /The cpu WebAssembly module could not be loaded/);
  assert.doesNotMatch(outcome.restart.message, /build-site/, 'the site served the modules before: no hint to build it');
  assert.equal(outcome.later.kind, 'BackendError');
  assert.match(outcome.later.message, /^The model could not be started again \(The cpu WebAssembly module could not be loaded \([^()]*\)\); reload the page\.$/);
  assert.deepEqual(errors, []);
  await context.close();
});
