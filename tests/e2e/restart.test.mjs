// A GPU failure on WebGPU (SwiftShader): the wasm instance traps (device lost), the worker is
// replaced by a new one with a new WebGPU device and the same weights, image and settings, and
// the classification is done again. The trap is provoked through the worker's test hook
// `simulateTrap`: a real one needs a GPU to lose. (The out-of-memory retry, which takes the same
// restart path, is in errors.test.mjs on the CPU backend, where it runs in seconds.)
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { useSite, openPage, pageState, waitForTasks, completed, failWebGPUInWorkers } from './harness.mjs';

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

test('a restart where WebGPU no longer starts: the CPU takes over and the page says so in its badge', async () => {
  const { page, context, errors } = await openPage(site.browser, 'about:blank');
  await failWebGPUInWorkers(context, { from: 2 }); // the first worker starts, its replacement cannot
  await page.goto(`${site.server.url}/?${QUERY}`);
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
