#!/usr/bin/env node
// Where the page's CPU path spends its time: the site's CPU module runs ResNet-50 (224×224, full
// size, random weights unless `--weights`) in headless Chromium while V8's sampling profiler
// records it, and this prints JSON: each run's milliseconds, and the time per run of each group of
// functions (gemm's micro-kernel, its packing, our Winograd, burn-flex's convolutions, pooling,
// element-wise ops, memory, autodiff's bookkeeping, …) and of the `--top` functions by self time.
// The modules must keep their functions' names, which the site's build strips:
//   WASM_NAMES=1 scripts/build-site.sh /tmp/site-names
//   node scripts/profile-cpu.mjs /tmp/site-names [--work forward|gradient|smoothgrad] [--runs 7]
//                                [--weights FILE] [--top 25]
// It runs on the page's main thread, not in a worker as the page does (the profiler reaches the
// page alone): the same code, so the shares are the worker's.
import { readFile } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { launch, startServer } from '../tests/e2e/harness.mjs';
import { middle } from '../www/bench-timing.js';
import { WASM_MODULES } from '../www/wasm-modules.js';

const [site, ...flags] = process.argv.slice(2);
if (!site || site.startsWith('--')) {
  throw new Error('usage: node scripts/profile-cpu.mjs <site built with WASM_NAMES=1> [--work forward|gradient|smoothgrad] [--runs 7] [--weights FILE] [--top 25]');
}
const options = Object.fromEntries(flags.flatMap((word, index) => (word.startsWith('--') ? [[word.slice(2), flags[index + 1]]] : [])));
const unknown = Object.keys(options).filter((flag) => !['work', 'runs', 'weights', 'top'].includes(flag));
if (unknown.length) throw new Error(`unknown flag --${unknown[0]}: --work, --runs, --weights or --top`);
const { work = 'gradient', weights } = options;
const [runs, top] = [Number(options.runs ?? 7), Number(options.top ?? 25)];
if (!['forward', 'gradient', 'smoothgrad'].includes(work)) throw new Error(`--work ${work}: forward, gradient or smoothgrad`);
if (!(Number.isInteger(runs) && runs >= 1 && Number.isInteger(top) && top >= 1)) throw new Error('--runs and --top take a whole number from 1');
// The one Chromium runs (www/wasm-modules.js).
if (!(await readFile(join(site, `www/pkg/${WASM_MODULES.cpuRelaxedSimd}_bg.wasm`))).includes('gemm_f32::microkernel')) {
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
  ['memory (allocation, zeroing)', /^(__rustc\[\w+\]::__r\w*_(alloc|dealloc)|<?dlmalloc)|alloc_with_data|mem(cpy|set|move)|Bytes/],
  ['autodiff bookkeeping', /burn_autodiff/],
];

// /timing/: this checkout's bench-timing.js, as bench-ab.mjs serves it.
const server = await startServer({
  mounts: { '/site/': resolve(site), '/timing/': resolve(dirname(fileURLToPath(import.meta.url)), '../www'),
    ...(weights ? { '/weights/': dirname(resolve(weights)) } : {}) },
  site: false,
});
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
    window.image = new Uint8Array(await (await fetch('/site/www/samples/chelsea.png')).arrayBuffer());
    explainer.setImage(window.image);
    window.explainer = explainer;
  }, weights ? `/weights/${basename(weights)}` : null);

  // Two runs first: V8 compiles the wasm's hot functions again, optimised, as they run.
  const runAll = (count) => page.evaluate(async ({ work, count }) => {
    const { smoothgrad, times } = await import('/timing/bench-timing.js');
    // The image set again before each run: the explainer shares its forward pass between calls.
    return times(count, {
      forward: () => window.explainer.classify(),
      gradient: () => window.explainer.attribute({ method: 'gradient', target: 0 }),
      smoothgrad: () => smoothgrad(window.explainer, 0, 4, 2),
    }[work], () => window.explainer.setImage(window.image));
  }, { work, count });
  await runAll(2);
  const cdp = await page.context().newCDPSession(page);
  await cdp.send('Profiler.enable');
  await cdp.send('Profiler.setSamplingInterval', { interval: 200 });
  await cdp.send('Profiler.start');
  const times = await runAll(runs);
  const { profile } = await cdp.send('Profiler.stop');

  const selfMs = new Map();
  const nodes = new Map(profile.nodes.map((node) => [node.id, node]));
  profile.samples.forEach((id, index) => {
    const name = nodes.get(id).callFrame.functionName.replace(/::h[0-9a-f]{16}$/, '') || '(anonymous JS)';
    selfMs.set(name, (selfMs.get(name) ?? 0) + (profile.timeDeltas[index] ?? 0) / 1000);
  });
  const total = [...selfMs.values()].reduce((sum, ms) => sum + ms, 0);
  const share = (ms) => ({ ms_per_run: Number((ms / runs).toFixed(1)), share: Number((ms / total).toFixed(3)) });
  const groups = new Map();
  for (const [name, ms] of selfMs) {
    const group = GROUPS.find(([, pattern]) => pattern.test(name))?.[0]
      ?? (/^[a-z0-9_]+::|^<|^_/.test(name) ? 'other wasm' : 'JS, garbage collection, idle');
    groups.set(group, (groups.get(group) ?? 0) + ms);
  }
  const sorted = (map) => [...map].sort((a, b) => b[1] - a[1]);
  console.log(JSON.stringify({
    site, browser: `chromium ${browser.version()}`, work, runs, weights: weights ?? 'random (full size)',
    run_ms: times.map(Math.round), median_ms: Math.round(middle(times)),
    groups: sorted(groups).map(([group, ms]) => ({ group, ...share(ms) })),
    top_functions: sorted(selfMs).slice(0, top).map(([name, ms]) => ({ function: name, ...share(ms) })),
  }, null, 1));
} finally {
  await browser.close();
  await server.close();
}
