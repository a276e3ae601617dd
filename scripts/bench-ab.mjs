#!/usr/bin/env node
// Two builds of the site timed against each other in headless Chromium: forward, forward+backward,
// a new image's classes and gradient map, and a short SmoothGrad, the two builds alternating in
// one worker, and prints JSON: per figure each build's best and median milliseconds and the median
// of the paired ratios b / a (each round runs both builds back to back, so a ratio is immune to
// the machine's drift between rounds). With `--weights FILE` (a full-size ResNet-50 checkpoint,
// served as each site's own), also `load_weights` (the worker loading that file, as the page's
// does), `load_weights_then_map` (loading it, then the first classes and map on it, whose pass
// is the first over those weights) and the page itself, from navigation to its first gradient
// map, `--pageRounds` visits of each site, alternating:
// - `page_first_visit`: a fresh incognito context each, so nothing is cached, and the weights
//   arriving at `--weightsMBps` MB/s (default 40, a fast line);
// - `page_returning_visit`: one browser profile, as a visitor's, served with a static host's
//   caching headers: the weights come from the HTTP cache and the wasm's optimised code from
//   V8's code cache (a first visit of each site fills them and is not counted).
//   node scripts/bench-ab.mjs <site a> <site b> [--backend cpu|webgpu] [--rounds 12] [--samples 4]
//                             [--microBatch 2] [--weights FILE] [--pageRounds 6] [--weightsMBps 40]
// Build each site with `scripts/build-site.sh <dir>` (e.g. main's into /tmp/site-a, a change's
// into /tmp/site-b).
import { mkdtemp, rm, symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { launch, launchProfile, startServer } from '../tests/e2e/harness.mjs';
import { middle as median } from '../www/bench-timing.js';

const [siteA, siteB, ...flags] = process.argv.slice(2);
if (!siteA || !siteB || siteA.startsWith('--') || siteB.startsWith('--')) {
  throw new Error('usage: node scripts/bench-ab.mjs <site a> <site b> [--backend cpu] [--rounds 12] [--samples 4] [--microBatch 2] [--weights FILE] [--pageRounds 6] [--weightsMBps 40]');
}
const options = Object.fromEntries(flags.flatMap((word, index) => (word.startsWith('--') ? [[word.slice(2), flags[index + 1]]] : [])));
const { weights, pageRounds = '6', weightsMBps = '40', ...workerOptions } = options;
// With weights, the worker also times loading them (`load_weights`), from the same file.
const query = new URLSearchParams({ backend: 'cpu', rounds: '12', samples: '4', microBatch: '2', ...workerOptions,
  ...(weights ? { weightsUrl: '/a/weights/resnet50.safetensors' } : {}) });

const rounded = (value, digits = 0) => Number(value.toFixed(digits));

const scripts = dirname(fileURLToPath(import.meta.url));
const weightsDir = weights && await weightsDirectory(weights);
const weightsMounts = weights ? { '/a/weights/': weightsDir, '/b/weights/': weightsDir } : {};
// /timing/: this checkout's bench-timing.js, so both builds are timed by the same code.
const server = await startServer({
  mounts: { ...weightsMounts, '/a/': resolve(siteA), '/b/': resolve(siteB), '/ab/': resolve(scripts, 'bench-ab'), '/timing/': resolve(scripts, '../www') },
  site: false,
  cacheable: true,
  weightsBytesPerSecond: Number(weightsMBps) * 1048576,
});

/** A directory holding `file` under the name a site's page looks for. */
async function weightsDirectory(file) {
  const directory = await mkdtemp(join(tmpdir(), 'bench-ab-weights-'));
  await symlink(resolve(file), join(directory, 'resnet50.safetensors'));
  return directory;
}

/** Milliseconds from opening `site`'s page in `context` to its first gradient map. */
async function firstMap(context, site, { linger = 0 } = {}) {
  const page = await context.newPage();
  const started = Date.now();
  await page.goto(`${server.url}/${site}/?backend=${query.get('backend')}&autorun=0`);
  await page.waitForFunction(() => window.__smoothgrad?.maps?.gradient, null, { timeout: 300_000 });
  const elapsed = Date.now() - started;
  // V8 caches optimised wasm code once its compiler has been idle a while (2 s by default), so a
  // page that should fill the cache stays open a little.
  await page.waitForTimeout(linger);
  await page.close();
  return elapsed;
}

/** `page_first_visit` and `page_returning_visit` per site, the sites alternating. */
async function pageVisits(browser, rounds) {
  const times = { page_first_visit: { a: [], b: [] }, page_returning_visit: { a: [], b: [] } };
  const profile = await mkdtemp(join(tmpdir(), 'bench-ab-profile-'));
  const visitor = await launchProfile(profile);
  try {
    for (const site of ['a', 'b']) await firstMap(visitor, site, { linger: 5000 });
    for (let round = 0; round < rounds; round += 1) {
      for (const site of round % 2 ? ['b', 'a'] : ['a', 'b']) {
        const fresh = await browser.newContext();
        times.page_first_visit[site].push(await firstMap(fresh, site));
        await fresh.close();
        times.page_returning_visit[site].push(await firstMap(visitor, site, { linger: 2000 }));
      }
    }
  } finally {
    await visitor.close();
    await rm(profile, { recursive: true });
  }
  return times;
}
const browser = await launch();
try {
  const page = await browser.newPage();
  page.on('console', (message) => console.error(message.text()));
  await page.goto(`${server.url}/ab/index.html?${query}`);
  await page.waitForFunction(() => window.__abResult, null, { timeout: 0, polling: 1000 });
  const { times, error } = await page.evaluate(() => window.__abResult);
  if (error) throw new Error(error);
  // `--pageRounds 0`: the compute figures alone (an empty list had no median, and the run's
  // figures were lost).
  if (weights && Number(pageRounds) > 0) Object.assign(times, await pageVisits(browser, Number(pageRounds)));
  const figures = Object.fromEntries(Object.entries(times).map(([figure, { a, b }]) => [figure, {
    a: { best_ms: rounded(Math.min(...a)), median_ms: rounded(median(a)) },
    b: { best_ms: rounded(Math.min(...b)), median_ms: rounded(median(b)) },
    paired_ratio_b_over_a: rounded(median(b.map((time, round) => time / a[round])), 3),
  }]));
  const browserVersion = browser.version();
  console.log(JSON.stringify({ a: siteA, b: siteB, browser: `chromium ${browserVersion}`, ...Object.fromEntries(query), ...(weights ? { weights, pageRounds, weightsMBps } : {}), figures }, null, 1));
} finally {
  await browser.close();
  await server.close();
  if (weightsDir) await rm(weightsDir, { recursive: true });
}
