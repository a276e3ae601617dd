#!/usr/bin/env node
// The benchmark in headless Chromium: serves dist/ (scripts/build-site.sh), opens
// www/bench.html for each backend, then the same work in TF.js on its matching backend
// (scripts/bench-tfjs/: cpu → wasm, webgpu → webgpu) in the same browser, and prints one JSON with
// both sets of figures, the ratios project / TF.js, each backend's wasm module's size (raw and
// gzip) and time to compile, and the browser's version.
//   node scripts/bench-browser.mjs [--backends webgpu,cpu] [--samples 50] [--runs 3]
//                                  [--microBatches 1,10,25,50] [--pageWorkers 1,2 [--igSteps 50]]
//                                  [--sharedForward 1] (Gradient and Guided Backprop in one run)
//                                  [--referenceMicroBatches 1] [--reference tfjs|none]
//                                  [--adapter <description>] [--timeout-min 60]
// The TF.js reference needs the optional npm packages (`npm ci`; scripts/e2e.sh omits them).
import { readFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { gzipSync } from 'node:zlib';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { SITE, launch, startServer } from '../tests/e2e/harness.mjs';
import { WASM_MODULES } from '../www/wasm-modules.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const args = Object.fromEntries(
  process.argv.slice(2).reduce((pairs, word, index, words) => (
    word.startsWith('--') ? [...pairs, [word.slice(2), words[index + 1]]] : pairs), []));
const backends = (args.backends ?? 'webgpu,cpu').split(',');
const common = { samples: args.samples ?? '50', runs: args.runs ?? '3' };
const query = new URLSearchParams({
  ...common, microBatches: args.microBatches ?? '1,10,25,50',
  ...(args.weights ? { weights: args.weights } : {}),
  ...(args.pageWorkers ? { pageWorkers: args.pageWorkers } : {}),
  ...(args.sharedForward ? { sharedForward: args.sharedForward } : {}),
  ...(args.igSteps ? { igSteps: args.igSteps } : {}),
  ...(args.adapter ? { adapter: args.adapter } : {}),
});
const TFJS_BACKEND = { cpu: 'wasm', webgpu: 'webgpu' };
const withReference = (args.reference ?? 'tfjs') === 'tfjs';
const tensorflow = join(root, 'node_modules/@tensorflow');
if (withReference && !['tfjs', 'tfjs-backend-wasm', 'tfjs-backend-webgpu'].every((name) => existsSync(join(tensorflow, name)))) {
  throw new Error('the TF.js reference needs the optional npm packages: run `npm ci` (they are optional dependencies), or pass --reference none');
}
const timeout = Number(args['timeout-min'] ?? 60) * 60_000;

/** Opens `url` and resolves with the `window.__benchResult` it sets; its console goes to stderr. */
async function benchPage(browser, url, label) {
  const page = await browser.newPage();
  page.on('console', (message) => console.error(`[${label}] ${message.text()}`));
  try {
    await page.goto(url);
    await page.waitForFunction(() => window.__benchResult, null, { timeout, polling: 1000 });
    return await page.evaluate(() => window.__benchResult);
  } finally {
    await page.close();
  }
}

const ratio = (project, reference) => (project && reference ? Number((project / reference).toFixed(3)) : null);

/** project / TF.js for each figure; SmoothGrad against TF.js's fastest micro-batch. */
function ratios(project, reference) {
  if (project.error || reference.error) return null;
  const best = Math.min(...reference.smoothgrad.map(({ ms }) => ms));
  return {
    forward_b1: ratio(project.forward_b1.ms, reference.forward_b1.ms),
    forward_backward_b1: ratio(project.forward_backward_b1.ms, reference.forward_backward_b1.ms),
    smoothgrad_vs_tfjs_fastest: project.smoothgrad.map(({ micro_batch, ms }) => ({ micro_batch, ratio: ratio(ms, best) })),
    ...(project.page_smoothgrad ? {
      page_smoothgrad_vs_tfjs_fastest: project.page_smoothgrad.map(({ workers, ms }) => ({ workers, ratio: ratio(ms, best) })),
    } : {}),
  };
}

/** Each backend's wasm module (www/wasm-modules.js), what a visitor on that backend downloads:
 * its size, and the median of three compilations of it in this browser, fetched uncached. */
async function bundle(browser, server) {
  const page = await browser.newPage();
  await page.goto(`${server.url}/fixtures/CREDITS.md`);
  const sizes = {};
  try {
    for (const [backend, name] of Object.entries(WASM_MODULES)) {
      const wasm = await readFile(join(SITE, `www/pkg/${name}_bg.wasm`));
      const compiles = await page.evaluate(async (url) => {
        const times = [];
        for (let run = 0; run < 3; run += 1) {
          const started = performance.now();
          await WebAssembly.compileStreaming(fetch(url, { cache: 'no-store' }));
          times.push(performance.now() - started);
        }
        return times.sort((a, b) => a - b);
      }, `/www/pkg/${name}_bg.wasm`);
      sizes[backend] = {
        module: name, wasm_bytes: wasm.length, wasm_gzip_bytes: gzipSync(wasm, { level: 9 }).length,
        compile_ms: Number(compiles[1].toFixed(1)),
      };
    }
  } finally {
    await page.close();
  }
  return sizes;
}

const server = await startServer({
  mounts: { '/tfjs/': join(root, 'scripts/bench-tfjs'), '/node_modules/@tensorflow/': tensorflow },
});
const browser = await launch();
const report = {
  browser: `chromium ${browser.version()}`,
  bundle: await bundle(browser, server),
  runs: {},
  ...(withReference ? { reference: {}, ratios: {} } : {}),
};
try {
  for (const backend of backends) {
    report.runs[backend] = await benchPage(browser, `${server.url}/www/bench.html?backend=${backend}&${query}`, backend);
    if (!withReference) continue;
    const tfjs = TFJS_BACKEND[backend];
    const referenceQuery = new URLSearchParams({ ...common, backend: tfjs, microBatches: args.referenceMicroBatches ?? '1' });
    report.reference[backend] = await benchPage(browser, `${server.url}/tfjs/?${referenceQuery}`, `tfjs-${tfjs}`);
    report.ratios[backend] = ratios(report.runs[backend], report.reference[backend]);
  }
} finally {
  await browser.close();
  await server.close();
}
console.log(JSON.stringify(report, null, 2));
