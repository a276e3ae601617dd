#!/usr/bin/env node
// Two builds of the site timed against each other in headless Chromium: forward, forward+backward
// and a short SmoothGrad, the two builds alternating in one worker, and prints JSON: per figure
// each build's best and median milliseconds and the median of the paired ratios b / a (each round
// runs both builds back to back, so a ratio is immune to the machine's drift between rounds).
//   node scripts/bench-ab.mjs <site a> <site b> [--backend cpu|webgpu] [--rounds 12] [--samples 4]
//                             [--microBatch 2]
// Build each site with `scripts/build-site.sh <dir>` (e.g. main's into /tmp/site-a, a change's
// into /tmp/site-b).
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { launch, startServer } from '../tests/e2e/harness.mjs';

const [siteA, siteB, ...flags] = process.argv.slice(2);
if (!siteA || !siteB || siteA.startsWith('--') || siteB.startsWith('--')) {
  throw new Error('usage: node scripts/bench-ab.mjs <site a> <site b> [--backend cpu] [--rounds 12] [--samples 4] [--microBatch 2]');
}
const options = Object.fromEntries(flags.flatMap((word, index) => (word.startsWith('--') ? [[word.slice(2), flags[index + 1]]] : [])));
const query = new URLSearchParams({ backend: 'cpu', rounds: '12', samples: '4', microBatch: '2', ...options });

const median = (values) => [...values].sort((x, y) => x - y)[Math.floor(values.length / 2)];
const rounded = (value, digits = 0) => Number(value.toFixed(digits));

const server = await startServer({
  mounts: { '/a/': resolve(siteA), '/b/': resolve(siteB), '/ab/': resolve(dirname(fileURLToPath(import.meta.url)), 'bench-ab') },
  site: false,
});
const browser = await launch();
try {
  const page = await browser.newPage();
  page.on('console', (message) => console.error(message.text()));
  await page.goto(`${server.url}/ab/index.html?${query}`);
  await page.waitForFunction(() => window.__abResult, null, { timeout: 0, polling: 1000 });
  const { times, error } = await page.evaluate(() => window.__abResult);
  if (error) throw new Error(error);
  const figures = Object.fromEntries(Object.entries(times).map(([figure, { a, b }]) => [figure, {
    a: { best_ms: rounded(Math.min(...a)), median_ms: rounded(median(a)) },
    b: { best_ms: rounded(Math.min(...b)), median_ms: rounded(median(b)) },
    paired_ratio_b_over_a: rounded(median(b.map((time, round) => time / a[round])), 3),
  }]));
  const browserVersion = browser.version();
  console.log(JSON.stringify({ a: siteA, b: siteB, browser: `chromium ${browserVersion}`, ...Object.fromEntries(query), figures }, null, 1));
} finally {
  await browser.close();
  await server.close();
}
