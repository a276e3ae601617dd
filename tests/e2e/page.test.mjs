// The page on WebGPU (SwiftShader): loads the fixture model by URL parameter, classifies the cat,
// runs SmoothGrad, and the numbers read back from the page equal the native reference.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import {
  useSite, openPage, waitForTasks, pageArrays, relativeError, outputDir,
  referenceQuery, compareWithReference, wasmFetched,
} from './harness.mjs';
const site = useSite();

test('WebGPU: classify + gradient + SmoothGrad equal the native reference; screenshot', async (t) => {
  assert.ok(site.reference, 'tests/fixtures/page_reference.json is missing: scripts/e2e.sh writes it');
  const started = Date.now();
  const { page, context, errors, requests } = await openPage(site.browser, `${site.server.url}/?${referenceQuery(site.reference, 'webgpu')}`);
  await waitForTasks(page, 2); // weights, then image → classify → maps → SmoothGrad
  const got = await pageArrays(page);
  assert.deepEqual(wasmFetched(requests), ['smoothgrad_web_bg.wasm'], 'only the WebGPU module');
  console.log(`page on WebGPU: ${((Date.now() - started) / 1000).toFixed(1)} s to the finished SmoothGrad; runs ${JSON.stringify(got.runs)}`);
  assert.equal(got.backend, 'webgpu');
  // SwiftShader convolves with burn's direct kernel, which is faster there than matrix products.
  assert.equal(await page.evaluate(() => window.__smoothgrad.api.convLowering), 'direct');
  assert.equal(got.model.numClasses, 10);
  assert.equal(got.target, site.reference.target);
  assert.equal(got.runs.gradient.done, site.reference.samples);
  compareWithReference(got, site.reference);

  // The page shows what it computed: top-5 names ("class N": not an ImageNet model), progress.
  const top5 = await page.locator('#top5 li').allTextContents();
  assert.equal(top5.length, 5);
  assert.match(top5[0], /^class \d+/);
  assert.match(await page.locator('#progress-text').textContent(), /^SmoothGrad \+ Gradient, Guided Backprop: \d+\/\d+ samples/);
  assert.match(await page.locator('#backend-badge').textContent(), /WebGPU/);

  // The view is in the URL, so it can be shared.
  const url = new URL(page.url());
  assert.equal(url.searchParams.get('seed'), String(site.reference.seed));
  assert.equal(url.searchParams.get('samples'), String(site.reference.samples));

  // Smoothing switches at once from the same run (no recomputation): VarGrad differs from the mean.
  const before = await page.evaluate(() => window.__smoothgrad.completed);
  await page.selectOption('#smoothing', 'variance');
  await page.waitForTimeout(300);
  assert.equal(await page.evaluate(() => window.__smoothgrad.completed), before);

  // Exports: PNG, raw float32 and the JSON of its parameters.
  const [png] = await Promise.all([page.waitForEvent('download'), page.locator('figure[data-key="sg:gradient"] .export button', { hasText: 'PNG' }).click()]);
  assert.match(png.suggestedFilename(), /^smoothgrad-gradient-variance_class\d+_n\d+_sigma[\d.]+_seed\d+\.png$/);
  const [raw] = await Promise.all([page.waitForEvent('download'), page.locator('figure[data-key="sg:gradient"] .export button', { hasText: '.f32' }).click()]);
  const rawPath = await raw.path();
  const bytes = await readFile(rawPath);
  assert.equal(bytes.length, 3 * 224 * 224 * 4);
  const [json] = await Promise.all([page.waitForEvent('download'), page.locator('figure[data-key="sg:gradient"] .export button', { hasText: '.json' }).click()]);
  const meta = JSON.parse(await readFile(await json.path(), 'utf8'));
  assert.equal(meta.seed, site.reference.seed);
  assert.equal(meta.samples, site.reference.samples);
  assert.equal(meta.smoothing, 'variance');
  const variance = await page.evaluate(() => Array.from(window.__smoothgrad.smoothgrad.gradient.variance));
  const exported = new Float32Array(bytes.buffer, bytes.byteOffset, bytes.length / 4);
  assert.equal(relativeError(Array.from(exported), variance), 0);

  await page.selectOption('#smoothing', 'mean');
  await page.locator('#overlay').fill('0.5');
  await page.waitForTimeout(500);
  const dir = await outputDir();
  await page.screenshot({ path: join(dir, 'page.png'), fullPage: true });
  console.log(`screenshot: ${join(dir, 'page.png')}`);
  assert.deepEqual(errors, []);
  await context.close();
});
