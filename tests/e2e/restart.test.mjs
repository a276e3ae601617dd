// A GPU failure on WebGPU (SwiftShader): the wasm instance traps (device lost), the worker is
// replaced by a new one with a new WebGPU device and the same weights, image and settings, and
// the classification is done again. The trap is provoked through the worker's test hook
// `simulateTrap`: a real one needs a GPU to lose. (The out-of-memory retry, which takes the same
// restart path, is in errors.test.mjs on the CPU backend, where it runs in seconds.)
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
  methods: 'gradient', autorun: '0',
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

