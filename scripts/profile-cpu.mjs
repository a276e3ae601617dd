#!/usr/bin/env node
// Where the page's CPU path spends its time: the site's CPU module runs ResNet-50 (224×224, full
// size, random weights unless `--weights`) in headless Chromium while V8's sampling profiler
// records it, and this prints JSON: each run's milliseconds, and the time per run of each group of
// functions (gemm's micro-kernel, its packing, our Winograd, burn-flex's convolutions, pooling,
// element-wise ops, memory, autodiff's bookkeeping, …) and of the `--top` functions by self time.
// The modules must keep their functions' names, which the site's build strips:
//   WASM_NAMES=1 scripts/build-site.sh /tmp/site-names
//   node scripts/profile-cpu.mjs /tmp/site-names [--work forward|gradient|smoothgrad] [--runs 6]
//                                [--weights FILE] [--top 25]
// It runs on the page's main thread, not in a worker as the page does (the profiler reaches the
// page alone): the same code, so the shares are the worker's.
import { readFile } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { launch, startServer } from '../tests/e2e/harness.mjs';
import { WASM_MODULES } from '../www/wasm-modules.js';

const [site, ...flags] = process.argv.slice(2);
if (!site || site.startsWith('--')) {
  throw new Error('usage: node scripts/profile-cpu.mjs <site built with WASM_NAMES=1> [--work forward|gradient|smoothgrad] [--runs 6] [--weights FILE] [--top 25]');
}
const options = Object.fromEntries(flags.flatMap((word, index) => (word.startsWith('--') ? [[word.slice(2), flags[index + 1]]] : [])));
const { work = 'gradient', runs = '6', weights, top = '25' } = options;
if (!['forward', 'gradient', 'smoothgrad'].includes(work)) throw new Error(`--work ${work}: forward, gradient or smoothgrad`);
if (!(await readFile(join(site, `www/pkg/${WASM_MODULES.cpu}_bg.wasm`))).includes('gemm_f32::microkernel')) {
  throw new Error(`${site}'s CPU module has no function names: build it with WASM_NAMES=1 scripts/build-site.sh`);
}

// First match wins; a function's name is its demangled Rust path (wasm) or JS name.
const GROUPS = [
  ['gemm micro-kernel', /^gemm_f32::microkernel/],
  ['gemm packing', /^gemm_common::pack_operands/],
  ['gemm other', /^gemm_/],
  ['Winograd (smoothgrad::winograd)', /^smoothgrad::winograd/],
  ['burn-flex convolutions (im2col, direct, transposed)', /^burn_flex::ops::conv/],
  ['pooling', /^burn_flex::ops::pool/],
  ['element-wise ops', /^burn_flex::(ops::(binary|unary|activation|float|mask|comparison|reduce)|simd)/],
  ['copies and layout', /^burn_flex::(tensor|layout|ops::(slice|cat|expand|repeat))|copy/],
  ['memory (allocation, zeroing)', /alloc|dlmalloc|memcpy|memset|memmove|Bytes/],
  ['autodiff bookkeeping', /burn_autodiff/],
];

const server = await startServer({ mounts: { '/site/': resolve(site), ...(weights ? { '/weights/': dirname(resolve(weights)) } : {}) }, site: false });
const browser = await launch();
try {
  const page = await browser.newPage();
  page.on('console', (message) => { if (message.type() === 'error' && !/^Failed to load resource/.test(message.text())) console.error(message.text()); });
  // Any page of this origin, so that the site's modules load as the page's own do.
  await page.goto(`${server.url}/fixtures/CREDITS.md`);
  await page.evaluate(async (weightsUrl) => {
    const { wasmModule } = await import('/site/www/wasm-modules.js');
    const { default: init, Explainer } = await import(wasmModule('cpu').glue);
    await init();
    const explainer = await Explainer.create('cpu', null);
    if (weightsUrl) await explainer.loadWeights(new Uint8Array(await (await fetch(weightsUrl)).arrayBuffer()));
    else explainer.loadRandomWeights(1000);
    explainer.setImage(new Uint8Array(await (await fetch('/site/www/samples/chelsea.png')).arrayBuffer()));
    window.explainer = explainer;
  }, weights ? `/weights/${basename(weights)}` : null);

  // Two runs first: V8 compiles the wasm's hot functions again, optimised, as they run.
  const runAll = (count) => page.evaluate(async ({ work, count }) => {
    const { smoothgrad } = await import('/site/www/bench-timing.js');
    const run = {
      forward: () => window.explainer.classify(),
      gradient: () => window.explainer.attribute({ method: 'gradient', target: 0 }),
      smoothgrad: () => smoothgrad(window.explainer, 0, 4, 2),
    }[work];
    const times = [];
    for (let index = 0; index < count; index += 1) {
      const started = performance.now();
      await run();
      times.push(performance.now() - started);
    }
    return times;
  }, { work, count });
  await runAll(2);
  const cdp = await page.context().newCDPSession(page);
  await cdp.send('Profiler.enable');
  await cdp.send('Profiler.setSamplingInterval', { interval: 200 });
  await cdp.send('Profiler.start');
  const times = await runAll(Number(runs));
  const { profile } = await cdp.send('Profiler.stop');

  const selfMs = new Map();
  const nodes = new Map(profile.nodes.map((node) => [node.id, node]));
  profile.samples.forEach((id, index) => {
    const name = nodes.get(id).callFrame.functionName.replace(/::h[0-9a-f]{16}$/, '') || '(anonymous JS)';
    selfMs.set(name, (selfMs.get(name) ?? 0) + (profile.timeDeltas[index] ?? 0) / 1000);
  });
  const total = [...selfMs.values()].reduce((sum, ms) => sum + ms, 0);
  const share = (ms) => ({ ms_per_run: Number((ms / Number(runs)).toFixed(1)), share: Number((ms / total).toFixed(3)) });
  const groups = new Map();
  for (const [name, ms] of selfMs) {
    const group = GROUPS.find(([, pattern]) => pattern.test(name))?.[0]
      ?? (/^[a-z_]+::|^<|^_/.test(name) ? 'other wasm' : 'JS, garbage collection, idle');
    groups.set(group, (groups.get(group) ?? 0) + ms);
  }
  const sorted = (map) => [...map].sort((a, b) => b[1] - a[1]);
  const median = [...times].sort((a, b) => a - b)[Math.floor(times.length / 2)];
  console.log(JSON.stringify({
    site, browser: `chromium ${browser.version()}`, work, runs: Number(runs), weights: weights ?? 'random (full size)',
    run_ms: times.map(Math.round), median_ms: Math.round(median),
    groups: sorted(groups).map(([group, ms]) => ({ group, ...share(ms) })),
    top_functions: sorted(selfMs).slice(0, Number(top)).map(([name, ms]) => ({ function: name, ...share(ms) })),
  }, null, 1));
} finally {
  await browser.close();
  await server.close();
}
