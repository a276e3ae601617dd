#!/usr/bin/env node
// The benchmark in headless Chromium: serves dist/ (scripts/build-site.sh), opens
// www/bench.html for each backend and prints one JSON with the page's figures, the wasm
// bundle's size (raw and gzip) and the browser's version.
//   node scripts/bench-browser.mjs [--backends webgpu,cpu] [--samples 50] [--runs 3]
//                                  [--microBatches 1,10,25,50] [--pageWorkers 1,2]
//                                  [--timeout-min 60]
import { readFile } from 'node:fs/promises';
import { gzipSync } from 'node:zlib';
import { join } from 'node:path';
import { SITE, launch, startServer } from '../tests/e2e/harness.mjs';

const args = Object.fromEntries(
  process.argv.slice(2).reduce((pairs, word, index, words) => (
    word.startsWith('--') ? [...pairs, [word.slice(2), words[index + 1]]] : pairs), []));
const backends = (args.backends ?? 'webgpu,cpu').split(',');
const query = new URLSearchParams({
  samples: args.samples ?? '50', runs: args.runs ?? '3', microBatches: args.microBatches ?? '1,10,25,50',
  ...(args.weights ? { weights: args.weights } : {}),
  ...(args.pageWorkers ? { pageWorkers: args.pageWorkers } : {}),
});
const timeout = Number(args['timeout-min'] ?? 60) * 60_000;

const wasm = await readFile(join(SITE, 'www/pkg/smoothgrad_web_bg.wasm'));
const server = await startServer();
const browser = await launch();
const report = {
  browser: `chromium ${browser.version()}`,
  bundle: { wasm_bytes: wasm.length, wasm_gzip_bytes: gzipSync(wasm, { level: 9 }).length },
  runs: {},
};
try {
  for (const backend of backends) {
    const page = await browser.newPage();
    page.on('console', (message) => console.error(`[${backend}] ${message.text()}`));
    await page.goto(`${server.url}/www/bench.html?backend=${backend}&${query}`);
    await page.waitForFunction(() => window.__benchResult, null, { timeout, polling: 1000 });
    report.runs[backend] = await page.evaluate(() => window.__benchResult);
    await page.close();
  }
} finally {
  await browser.close();
  await server.close();
}
console.log(JSON.stringify(report, null, 2));
