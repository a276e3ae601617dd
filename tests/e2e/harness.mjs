// Shared by the e2e tests: a tiny static server (the built site + /fixtures/ + generated bad
// inputs) and headless Debian chromium with WebGPU on SwiftShader (never a downloaded browser).
import { createServer } from 'node:http';
import { readFile, stat, mkdir } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { extname, join, normalize, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import assert from 'node:assert/strict';
import { before, after } from 'node:test';
import { chromium } from 'playwright-core';
import { WASM_MODULES } from '../../www/wasm-modules.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
export const SITE = resolve(root, process.env.E2E_SITE ?? 'dist');
export const FIXTURES = join(root, 'tests/fixtures');
export const OUTPUT = join(root, 'tests/e2e/output');

const TYPES = {
  '.html': 'text/html; charset=utf-8', '.js': 'text/javascript', '.mjs': 'text/javascript',
  '.css': 'text/css', '.wasm': 'application/wasm', '.json': 'application/json', '.png': 'image/png',
  '.jpg': 'image/jpeg', '.md': 'text/markdown; charset=utf-8', '.safetensors': 'application/octet-stream',
};

/** A PNG whose header claims `width`×`height` pixels (a decompression bomb in spirit). */
function hugePng(width, height) {
  const crcTable = Array.from({ length: 256 }, (_, n) => {
    let c = n;
    for (let k = 0; k < 8; k += 1) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    return c >>> 0;
  });
  const crc = (bytes) => {
    let c = 0xffffffff;
    for (const b of bytes) c = crcTable[(c ^ b) & 0xff] ^ (c >>> 8);
    return (c ^ 0xffffffff) >>> 0;
  };
  const chunk = (type, data) => {
    const out = Buffer.alloc(12 + data.length);
    out.writeUInt32BE(data.length, 0);
    out.write(type, 4, 'ascii');
    data.copy(out, 8);
    out.writeUInt32BE(crc(out.subarray(4, 8 + data.length)), 8 + data.length);
    return out;
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 2; // RGB
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', ihdr),
    chunk('IDAT', Buffer.from([0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01])),
    chunk('IEND', Buffer.alloc(0)),
  ]);
}

/** Bad inputs for the error tests, as bytes. */
export async function badInputs() {
  const chelsea = await readFile(join(FIXTURES, 'chelsea.png'));
  const weights = await readFile(join(FIXTURES, 'narrow_resnet50.safetensors'));
  return {
    'notes.txt': Buffer.from('These are lecture notes, not a photo.\n'),
    'corrupt.png': chelsea.subarray(0, Math.floor(chelsea.length / 3)),
    'huge.png': hugePng(100000, 100000),
    'truncated.safetensors': weights.subarray(0, Math.floor(weights.length * 0.6)),
    'appended.safetensors': Buffer.concat([weights, Buffer.from('<html>a page saved after it</html>\n')]),
  };
}

/**
 * Serves the site at /, tests/fixtures at /fixtures/, badInputs() at /gen/, and each of `mounts`
 * (`{ '/prefix/': directory }`) at its prefix. `site: false` for a caller that brings its own
 * builds in `mounts` (bench-ab.mjs): then dist/ need not have been built. For benchmarks of a
 * visit: `cacheable` sends the caching headers a static host sends (an hour's max-age, the file's
 * date), and `weightsBytesPerSecond` sends .safetensors files at that rate, as a download would.
 */
export async function startServer({ mounts = {}, site = true, cacheable = false, weightsBytesPerSecond = Infinity } = {}) {
  const directories = Object.entries({ '/fixtures/': FIXTURES, ...mounts });
  if (site && !Object.values(WASM_MODULES).every((name) => existsSync(join(SITE, `www/pkg/${name}.js`)))) {
    throw new Error(`${SITE}/www/pkg is missing: build the site first (scripts/build-site.sh, or scripts/e2e.sh)`);
  }
  const generated = await badInputs();
  const server = createServer(async (request, response) => {
    try {
      const path = decodeURIComponent(new URL(request.url, 'http://x').pathname);
      if (path.startsWith('/gen/')) {
        const body = generated[path.slice(5)];
        if (!body) throw Object.assign(new Error('no such file'), { code: 'ENOENT' });
        response.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': body.length });
        response.end(body);
        return;
      }
      const [prefix, directory] = directories.find(([prefix]) => path.startsWith(prefix)) ?? ['/', SITE];
      let file = join(directory, normalize(path === '/' ? '/index.html' : path.slice(prefix.length - 1)));
      if (!file.startsWith(directory)) throw Object.assign(new Error('outside'), { code: 'ENOENT' });
      let info = await stat(file);
      if (info.isDirectory()) {
        file = join(file, 'index.html');
        info = await stat(file);
      }
      const body = await readFile(file);
      response.writeHead(200, {
        'content-type': TYPES[extname(file)] ?? 'application/octet-stream', 'content-length': body.length,
        ...(cacheable ? { 'cache-control': 'max-age=3600', 'last-modified': info.mtime.toUTCString() } : {}),
      });
      if (request.method === 'HEAD') response.end();
      else if (extname(file) === '.safetensors' && Number.isFinite(weightsBytesPerSecond)) sendSlowly(response, body, weightsBytesPerSecond);
      else response.end(body);
    } catch (e) {
      response.writeHead(e.code === 'ENOENT' || e.code === 'ENOTDIR' ? 404 : 500, { 'content-type': 'text/plain' });
      response.end(String(e.message));
    }
  });
  await new Promise((ok) => server.listen(0, '127.0.0.1', ok));
  const { port } = server.address();
  return { url: `http://127.0.0.1:${port}`, close: () => new Promise((ok) => server.close(ok)) };
}

/** Writes `body` in 1 MiB chunks spaced to arrive at `bytesPerSecond`, or slower where the
 * browser reads slower: a chunk waits for the last one to drain, so none pile up in the server. */
function sendSlowly(response, body, bytesPerSecond) {
  const chunk = 1 << 20;
  const started = Date.now();
  const next = (offset) => {
    if (offset >= body.length || response.destroyed) return response.end();
    const drained = response.write(body.subarray(offset, offset + chunk));
    const due = started + (1000 * (offset + chunk)) / bytesPerSecond;
    const later = () => setTimeout(() => next(offset + chunk), Math.max(0, due - Date.now()));
    if (drained) later(); else response.once('drain', later);
  };
  next(0);
}

export const CHROMIUM_ARGS = [
  '--enable-unsafe-webgpu', '--enable-features=Vulkan', '--use-vulkan=swiftshader',
  '--use-webgpu-adapter=swiftshader', '--enable-unsafe-swiftshader', '--no-sandbox', '--disable-quic',
  '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync',
];

const LAUNCH = { executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium', headless: true, args: CHROMIUM_ARGS };

export async function launch() {
  return chromium.launch(LAUNCH);
}

/** Chromium with a profile in `directory`, as a visitor's browser keeps one: its HTTP cache and
 * V8's cache of optimised wasm code serve the next visit (in a `launch()` context, which is
 * incognito, the code cache was measured to serve none). Returns the profile's context. */
export async function launchProfile(directory) {
  return chromium.launchPersistentContext(directory, LAUNCH);
}

/** Opens the page in a context of its own; `prepare(context)`, where given, runs before the page
 * is asked for (init scripts, routes, patched workers), so it holds from the first request. The
 * console and page errors are echoed to the test's output, and `requests` lists the URLs its
 * context asked for. */
export async function openPage(browser, url, { prepare, log = true } = {}) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 1100 }, acceptDownloads: true });
  if (prepare) await prepare(context);
  const requests = [];
  context.on('request', (request) => requests.push(request.url()));
  const page = await context.newPage();
  const errors = [];
  page.on('pageerror', (e) => { errors.push(e); console.log(`[pageerror] ${e.message}`); });
  if (log) page.on('console', (m) => { if (m.type() === 'error' || m.type() === 'warning') console.log(`[console.${m.type()}] ${m.text()}`); });
  page.on('worker', (worker) => {
    if (log) worker.on('console', (m) => { if (m.type() === 'error') console.log(`[worker.error] ${m.text()}`); });
  });
  await page.goto(url);
  return { page, context, errors, requests };
}

/** The file names of the wasm modules among `requests` (URLs), in the order they were asked for. */
export function wasmFetched(requests) {
  return requests.map((url) => new URL(url).pathname).filter((path) => path.endsWith('.wasm')).map((path) => path.split('/').pop());
}

/** Serves www/worker.js to `context`'s pages as `patch(source, n)` returns it for the `n`-th
 * worker (from 1). */
async function patchWorkers(context, patch) {
  let workers = 0;
  await context.route('**/www/worker.js', async (route) => {
    workers += 1;
    const response = await route.fetch();
    await route.fulfill({ response, body: patch(await response.text(), workers) });
  });
}

/** Makes WebGPU fail to start in the page's model workers (as where the adapter gives no
 * device), from the `from`-th worker on (1: all of them); earlier ones start normally. */
export async function failWebGPUInWorkers(context, { from = 1 } = {}) {
  const line = 'explainer = await wasm.Explainer.create(backend, adapter);';
  await patchWorkers(context, (source, n) => {
    assert.ok(source.includes(line), 'worker.js no longer has the line this patches');
    return n < from ? source : source.replace(line,
      "if (backend === 'webgpu') throw Object.assign(new Error('no device: simulated'), { name: 'BackendError' });\n    $&");
  });
}

/** Makes the model workers from the `from`-th on (on the CPU backend the page's own is the first,
 * its helpers the next) take `ms` longer to load weights, so that what the page does meanwhile
 * lands while they load. */
export async function slowWeightsInWorkers(context, { from = 2, ms }) {
  const line = '  loadWeights({ bytes }) {';
  await patchWorkers(context, (source, n) => {
    assert.ok(source.includes(line), 'worker.js no longer has the line this patches');
    return n < from ? source
      : source.replace(line, `  async loadWeights({ bytes }) {\n    await new Promise((resolve) => setTimeout(resolve, ${ms}));`);
  });
}

/** Makes the first model worker's WebGPU device fail for real once that worker has received its
 * (`after` + 1)-th call of `op`, so that the wasm sees what wgpu tells it: `failure` 'lost'
 * destroys the device before the call runs (as a GPU reset loses it); 'outOfMemory' has it report
 * the error an allocation that failed would, while the call waits for its results (the next
 * readback). The workers after it keep theirs. */
export async function failDeviceInWorkers(context, { op, after = 0, failure }) {
  const act = { lost: 'device.destroy()', outOfMemory: 'atReadback = true' }[failure];
  assert.ok(act, failure);
  const fail = `{
    let device = null;
    let left = ${after};
    let atReadback = false;
    const requestDevice = GPUAdapter.prototype.requestDevice;
    GPUAdapter.prototype.requestDevice = async function (...args) {
      device = await requestDevice.apply(this, args);
      return device;
    };
    const mapAsync = GPUBuffer.prototype.mapAsync;
    GPUBuffer.prototype.mapAsync = function (...args) {
      if (atReadback) {
        atReadback = false;
        device.dispatchEvent(new GPUUncapturedErrorEvent('uncapturederror', { error: new GPUOutOfMemoryError('simulated') }));
      }
      return mapAsync.apply(this, args);
    };
    self.addEventListener('message', (event) => {
      if (event.data.op === ${JSON.stringify(op)} && left-- === 0) ${act};
    });
  }\n`;
  await patchWorkers(context, (source, n) => (n === 1 ? fail + source : source));
}

/** Waits until the page has finished `count` tasks in all (weights, images, runs) and is idle. */
export async function waitForTasks(page, count, timeout = 300_000) {
  await page.waitForFunction((n) => {
    const s = window.__smoothgrad;
    return s && s.completed >= n && s.status !== 'busy';
  }, count, { timeout, polling: 200 });
}

/**
 * What a test file shares, set up by node:test hooks: the server, the browser and the native
 * reference (null when not written), and with `query` the site opened with it after its first
 * `tasks` tasks. Everything is closed after the file's tests.
 */
export function useSite({ query, tasks = 2 } = {}) {
  const site = {};
  before(async () => {
    site.server = await startServer();
    site.browser = await launch();
    site.reference = await readReference();
    if (query) {
      Object.assign(site, await openPage(site.browser, `${site.server.url}/?${query}`));
      await waitForTasks(site.page, tasks);
    }
  });
  after(async () => {
    await site.context?.close();
    await site.browser?.close();
    await site.server?.close();
  });
  return site;
}

/** The page's own record of itself (`window.__smoothgrad`), as plain values. */
export function pageState(page) {
  return page.evaluate(() => {
    const s = window.__smoothgrad;
    return { lastError: s.lastError, errors: s.errors.length, completed: s.completed, status: s.status,
      probabilities: s.probabilities && Array.from(s.probabilities), model: s.model, backend: s.backend,
      messages: s.messages.map((m) => m.text) };
  });
}

/** The text of the page's status area, where errors are shown to the user. */
export function statusText(page) {
  return page.locator('#status').textContent();
}

export async function completed(page) {
  return page.evaluate(() => window.__smoothgrad.completed);
}

/** max |a − b| / max |b|: the bound of the native and wasm tests (1e-4). */
export function relativeError(actual, expected) {
  if (actual.length !== expected.length) throw new Error(`length ${actual.length} ≠ ${expected.length}`);
  let diff = 0;
  let scale = 0;
  for (let i = 0; i < expected.length; i += 1) {
    diff = Math.max(diff, Math.abs(actual[i] - expected[i]));
    scale = Math.max(scale, Math.abs(expected[i]));
  }
  return diff / scale;
}

/**
 * Pearson correlation and |‖a‖/‖b‖ − 1|: how maps of noisy inputs are compared. There a ReLU input
 * within rounding of zero can be gated differently by two backends' summation orders, changing a
 * patch of the gradient (max error up to 2e-2; correlation stays ≥ 0.9998, while other noise gives
 * ~0.16).
 */
export function correlationAndNormRatio(actual, expected) {
  if (actual.length !== expected.length) throw new Error(`length ${actual.length} ≠ ${expected.length}`);
  const mean = (values) => values.reduce((sum, v) => sum + v, 0) / values.length;
  const [meanA, meanB] = [mean(actual), mean(expected)];
  let cross = 0;
  let squareA = 0;
  let squareB = 0;
  for (let i = 0; i < expected.length; i += 1) {
    const [a, b] = [actual[i] - meanA, expected[i] - meanB];
    cross += a * b;
    squareA += a * a;
    squareB += b * b;
  }
  const norm = (values) => Math.sqrt(values.reduce((sum, v) => sum + v * v, 0));
  return { correlation: cross / Math.sqrt(squareA * squareB), normRatio: Math.abs(norm(actual) / norm(expected) - 1) };
}

export async function readReference() {
  const file = join(FIXTURES, 'page_reference.json');
  if (!existsSync(file)) return null;
  return JSON.parse(await readFile(file, 'utf8'));
}

export async function outputDir() {
  await mkdir(OUTPUT, { recursive: true });
  return OUTPUT;
}

/** Reads the page's typed arrays as plain arrays. */
export async function pageArrays(page) {
  return page.evaluate(() => {
    const s = window.__smoothgrad;
    const arr = (a) => (a ? Array.from(a) : null);
    const smooth = {};
    for (const [method, maps] of Object.entries(s.smoothgrad)) {
      smooth[method] = maps ? Object.fromEntries(Object.entries(maps).map(([k, v]) => [k, arr(v)])) : null;
    }
    return {
      probabilities: arr(s.probabilities),
      maps: Object.fromEntries(Object.entries(s.maps).map(([k, v]) => [k, arr(v)])),
      smoothgrad: smooth,
      target: s.target,
      backend: s.backend,
      runs: s.runs,
      model: s.model,
    };
  });
}

export const BOUND = 1e-4;
/** SmoothGrad maps (noisy inputs, see `correlationAndNormRatio`). */
export const SMOOTHGRAD_CORRELATION = 0.999;
export const SMOOTHGRAD_NORM_RATIO = 1e-2;

/** The page URL that reproduces the reference's settings. */
export function referenceQuery(ref, backend) {
  const q = new URLSearchParams({
    backend,
    weights: `/fixtures/${ref.weights}`,
    image: `/fixtures/${ref.image}`,
    methods: 'gradient,guided-backprop',
    samples: String(ref.samples),
    noise: String(Number((ref.noiseLevel * 100).toPrecision(12))),
    microBatch: String(ref.microBatch),
    seed: String(ref.seed),
    target: String(ref.target),
  });
  return q.toString();
}

export function compareWithReference(got, ref) {
  const errors = {
    probabilities: relativeError(got.probabilities, ref.probabilities),
    gradient: relativeError(got.maps.gradient, ref.gradient),
    guided_backprop: relativeError(got.maps['guided-backprop'], ref.guided_backprop),
  };
  const smoothgrad = { mean: correlationAndNormRatio(got.smoothgrad.gradient.mean, ref.smoothgrad_mean) };
  if (ref.smoothgrad_variance) {
    smoothgrad.variance = correlationAndNormRatio(got.smoothgrad.gradient.variance, ref.smoothgrad_variance);
  }
  console.log(`on ${got.backend}: max|a-b|/max|b| ${JSON.stringify(errors)}, SmoothGrad ${JSON.stringify(smoothgrad)}`);
  for (const [name, error] of Object.entries(errors)) {
    assert.ok(error <= BOUND, `${name}: ${error} > ${BOUND}`);
  }
  for (const [name, { correlation, normRatio }] of Object.entries(smoothgrad)) {
    assert.ok(correlation > SMOOTHGRAD_CORRELATION, `SmoothGrad ${name}: correlation ${correlation}`);
    assert.ok(normRatio < SMOOTHGRAD_NORM_RATIO, `SmoothGrad ${name}: norms differ by ${normRatio}`);
  }
}
