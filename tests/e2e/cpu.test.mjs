// Without WebGPU the page says so plainly and runs burn's CPU backend inside the wasm; its
// numbers equal the same native reference. The JS API example page runs on it too.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  startServer, launch, openPage, waitForTasks, pageArrays, readReference, referenceQuery, compareWithReference,
} from './harness.mjs';

let server;
let browser;
let reference;

before(async () => {
  server = await startServer();
  browser = await launch();
  reference = await readReference();
});
after(async () => {
  await browser?.close();
  await server?.close();
});

// A browser without WebGPU: navigator.gpu is gone before the page's scripts run.
const NO_WEBGPU = () => { Object.defineProperty(Navigator.prototype, 'gpu', { get: () => undefined, configurable: true }); };

test('no WebGPU: backend=auto falls back to the CPU, says so, and matches the native reference', async (t) => {
  assert.ok(reference, 'tests/fixtures/page_reference.json is missing: scripts/e2e.sh writes it');
  const started = Date.now();
  const query = referenceQuery(reference, 'auto');
  const { page, context, errors } = await openPage(browser, `${server.url}/?${query}`, { initScript: NO_WEBGPU });
  await waitForTasks(page, 2);
  const got = await pageArrays(page);
  console.log(`page on the CPU backend: ${((Date.now() - started) / 1000).toFixed(1)} s to the finished SmoothGrad; runs ${JSON.stringify(got.runs)}`);
  assert.equal(got.backend, 'cpu');
  const status = await page.locator('#status').textContent();
  assert.match(status, /This browser has no WebGPU \(Chrome and Edge 113\+, Safari 26, Firefox 141\+ on Windows have it\)/);
  assert.match(await page.locator('#backend-badge').textContent(), /CPU/);
  compareWithReference(got, reference);
  assert.deepEqual(errors, []);
  await context.close();
});

test('backend=auto on a software adapter (SwiftShader) picks the CPU and says why', async () => {
  const q = new URLSearchParams({ backend: 'auto', weights: '/fixtures/narrow_resnet50.safetensors', image: '/fixtures/chelsea.png', methods: 'gradient', autorun: '0' });
  const { page, context } = await openPage(browser, `${server.url}/?${q}`);
  await waitForTasks(page, 2);
  const s = await page.evaluate(() => ({ backend: window.__smoothgrad.backend, reason: window.__smoothgrad.backendReason }));
  assert.equal(s.backend, 'cpu');
  assert.match(s.reason, /software renderer/);
  await context.close();
});

test('the JS API example page (www/example.html) runs on the CPU backend', async () => {
  const q = new URLSearchParams({ backend: 'cpu', weights: '/fixtures/narrow_resnet50.safetensors', samples: '4' });
  const { page, context, errors } = await openPage(browser, `${server.url}/www/example.html?${q}`);
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
