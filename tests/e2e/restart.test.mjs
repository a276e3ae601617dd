// The failures only a GPU has, on WebGPU (SwiftShader): the wasm instance traps (out of memory,
// device lost), the worker is replaced with the same weights, image and settings, and the work is
// done again (a SmoothGrad run with half the micro-batch after an out-of-memory). The trap is
// provoked through the worker's test hook `simulateTrap`: a real one needs a GPU to exhaust.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, launch, openPage, waitForTasks, completed } from './harness.mjs';

let server;
let browser;
let page;
let context;
let catProbabilities;

const QUERY = new URLSearchParams({
  backend: 'webgpu', weights: '/fixtures/narrow_resnet50.safetensors', image: '/fixtures/chelsea.png',
  methods: 'gradient', samples: '2', microBatch: '2', seed: '3', autorun: '0',
});

before(async () => {
  server = await startServer();
  browser = await launch();
  ({ page, context } = await openPage(browser, `${server.url}/?${QUERY}`));
  await waitForTasks(page, 2);
  catProbabilities = await page.evaluate(() => Array.from(window.__smoothgrad.probabilities));
});
after(async () => {
  await context?.close();
  await browser?.close();
  await server?.close();
});

const state = () => page.evaluate(() => {
  const s = window.__smoothgrad;
  return { lastError: s.lastError, errors: s.errors.length, probabilities: s.probabilities && Array.from(s.probabilities),
    backend: s.backend, messages: s.messages.map((m) => m.text) };
});
const statusText = () => page.locator('#status').textContent();

async function stillUsable() {
  const n = await completed(page);
  await page.locator('button.sample[data-sample="chelsea.png"]').click();
  await waitForTasks(page, n + 1);
  const s = await state();
  assert.equal(s.backend, 'webgpu');
  assert.deepEqual(s.probabilities, catProbabilities);
}

test('out of GPU memory mid-run: the worker restarts and SmoothGrad retries with half the micro-batch', async () => {
  const settings = { n: await page.inputValue('#samples-n'), seed: await page.inputValue('#seed'), url: page.url() };
  await page.evaluate(() => window.__smoothgrad.api._raw('simulateTrap', {
    op: 'step', message: 'panicked at wgpu: Out of Memory: failed to allocate a buffer of 300 MiB',
  }));
  const n = await completed(page);
  await page.click('#run');
  await waitForTasks(page, n + 1);
  const s = await state();
  assert.ok(s.messages.some((m) => /Out of GPU memory at micro-batch 2: retrying with micro-batch 1/.test(m)), s.messages.join('\n'));
  assert.match(await statusText(), /micro-batch 1/);
  const run = await page.evaluate(() => window.__smoothgrad.runs.gradient);
  assert.equal(run.microBatch, 1);
  assert.equal(run.done, 2);
  assert.equal(await page.inputValue('#samples-n'), settings.n); // nothing the user set is lost
  assert.equal(await page.inputValue('#seed'), settings.seed);
  assert.equal(page.url(), settings.url);
});

test('the GPU device lost during classification: restarted, the image and weights restored', async () => {
  await page.evaluate(() => window.__smoothgrad.api._raw('simulateTrap', {
    op: 'classify', message: 'panicked at wgpu: Device lost: the GPU was reset',
  }));
  const errorsBefore = (await state()).errors;
  await stillUsable();
  const s = await state();
  assert.ok(s.messages.some((m) => /GPU device lost/.test(m)), s.messages.join('\n'));
  assert.equal(s.errors, errorsBefore, `no error left for the user: ${JSON.stringify(s.lastError)}`);
});

