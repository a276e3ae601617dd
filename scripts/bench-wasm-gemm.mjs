#!/usr/bin/env node
// The matrix-product kernel of burn's CPU backend in headless Chromium: the shapes of
// ResNet-50's convolutions at batch 1 (out channels × positions × in·k·k), once with upstream
// gemm-f32 and once with crates/vendor/gemm-f32, alternating in one page; best of the rounds.
//   node scripts/bench-wasm-gemm.mjs upstream.wasm vendored.wasm [--rounds 7]
import { readFile } from 'node:fs/promises';
import { launch } from '../tests/e2e/harness.mjs';

const [upstreamPath, vendoredPath] = process.argv.slice(2);
const roundsAt = process.argv.indexOf('--rounds');
const rounds = roundsAt > 0 ? Number(process.argv[roundsAt + 1]) : 7;
const SHAPES = [
  [64, 12544, 147], [64, 3136, 576], [128, 784, 1152], [256, 196, 2304], [512, 49, 4608],
  [64, 3136, 256], [256, 3136, 64], [512, 784, 256], [1024, 196, 512], [2048, 49, 512], [512, 49, 2048],
];

const modules = await Promise.all([upstreamPath, vendoredPath].map(async (path) => [...await readFile(path)]));
const browser = await launch();
try {
  const page = await browser.newPage();
  const best = await page.evaluate(async ({ modules, shapes, rounds }) => {
    const kernels = await Promise.all(modules.map(async (bytes) =>
      (await WebAssembly.instantiate(new Uint8Array(bytes), {})).instance.exports.multiply));
    const seconds = kernels.map(() => shapes.map(() => Infinity));
    for (let round = 0; round < rounds; round += 1) {
      kernels.forEach((multiply, which) => shapes.forEach(([m, n, k], shape) => {
        multiply(m, n, k);
        const started = performance.now();
        for (let repeat = 0; repeat < 3; repeat += 1) multiply(m, n, k);
        seconds[which][shape] = Math.min(seconds[which][shape], (performance.now() - started) / 3000);
      }));
    }
    return seconds;
  }, { modules, shapes: SHAPES, rounds });
  const gflops = (shape, s) => (2 * shape[0] * shape[1] * shape[2]) / s / 1e9;
  const rows = SHAPES.map((shape, i) => ({
    m_n_k: shape.join('x'),
    upstream_gflops: +gflops(shape, best[0][i]).toFixed(1),
    vendored_gflops: +gflops(shape, best[1][i]).toFixed(1),
    speedup: +(best[0][i] / best[1][i]).toFixed(2),
  }));
  const total = (which) => SHAPES.reduce((sum, _, i) => sum + best[which][i], 0);
  console.log(JSON.stringify({
    browser: `chromium ${browser.version()}`,
    what: 'gemm f32 [m,k]x[k,n], one thread, wasm simd128; best of rounds',
    rounds,
    shapes: rows,
    all_shapes_speedup: +(total(0) / total(1)).toFixed(2),
  }, null, 2));
} finally {
  await browser.close();
}
