// SmoothGrad in the browser: a small API for course pages (and the demo page, which uses only it).
//
//   import { SmoothGrad, SmoothGradError } from './api.js';
//   const sg = await SmoothGrad.create({ backend: 'auto' });          // 'auto' | 'webgpu' | 'cpu'
//                                  // precision: 'f32' (default) | 'f16' (GPUs with shader-f16)
//   await sg.loadWeights(undefined, { onProgress: p => console.log(p.loaded, p.total) });
//   const { top } = await sg.classify(canvasOrImageDataOrBlobOrBytes); // top-5 with class names
//   const result = await sg.explain({ method: 'gradient', samples: 50, noiseLevel: 0.15,
//                                     onProgress: p => sg.render(p.map, canvas) });
//   await sg.render(result.map, canvas, { sign: 'abs', colormap: 'viridis' });
//   const both = await sg.explain({ methods: ['gradient', 'guided-backprop'] }); // one shared run
//   await sg.render(both.byMethod['guided-backprop'].map, canvas);
//
// The model runs in a dedicated worker (www/worker.js) that owns the wasm module. If that
// instance traps (GPU out of memory, a panic) or its GPU device is lost, the worker is replaced,
// the weights, image and settings are sent again, and a SmoothGrad run is retried (with half the
// micro-batch after an out-of-memory); `onNotice` tells the user. Every failure is a
// SmoothGradError with a `.kind`.
// On the CPU backend a SmoothGrad run is shared by several such workers, one per core: wasm
// threads would need a cross-origin-isolated page (special headers), which not every static host
// can send, while the samples are independent and each worker can take a share of them (as of
// Integrated Gradients' steps in attribute()).

import { IMAGENET_CLASSES } from './imagenet-classes.js';
import { hasRelaxedSimd, wasmModule } from './wasm-modules.js';

export const METHODS = Object.freeze(['gradient', 'guided-backprop', 'integrated-gradients', 'input-x-gradient']);
export const METHOD_NAMES = Object.freeze({
  'gradient': 'Gradient',
  'guided-backprop': 'Guided Backprop',
  'integrated-gradients': 'Integrated Gradients',
  'input-x-gradient': 'Input × Gradient',
});
export const SMOOTHINGS = Object.freeze(['mean', 'mean-of-squares', 'variance', 'abs-mean']);
/** The float types the network can compute in: f16 on a WebGPU adapter with `shader-f16` only. */
export const PRECISIONS = Object.freeze(['f32', 'f16']);
/** What runs the network: 'auto' picks WebGPU on a hardware adapter, else the CPU. */
export const BACKENDS = Object.freeze(['auto', 'webgpu', 'cpu']);
export const DEFAULT_DISPLAY = Object.freeze({
  sign: 'abs', clipPercentile: 99, gamma: 1, colormap: 'viridis', overlay: 0,
});
/** The paper's defaults (Smilkov et al. 2017): n = 50, σ = 15 % of the input range. */
export const DEFAULT_OPTIONS = Object.freeze({
  method: 'gradient', samples: 50, noiseLevel: 0.15, microBatch: 'auto', seed: 0, igSteps: 50,
  smoothing: 'mean', workers: 'auto',
});
/** Integrated Gradients' path points in one forward+backward pass (the core crate's
 * IntegratedGradients::batch_size): "auto" gives it no more workers than passes. */
const IG_STEPS_PER_PASS = 10;
/** CPU workers sharing a run at most for "auto": beyond a few, the cores' shared memory
 * bandwidth gains little. Each holds its own model and activations: a ResNet-50 worker's wasm
 * heap reaches ≈ 0.33 GB at micro-batch 4 (www/bench.html), ≈ 0.39 GB at micro-batch 2 for
 * Gradient and Guided Backprop sharing their forward pass (the page's default view), and "auto"
 * keeps them to a quarter of the device's memory where the browser tells it
 * (navigator.deviceMemory). A count asked for may go up to one per core, or this many where the
 * cores are fewer. */
export const MAX_CPU_WORKERS = 4;
const WORKER_MEMORY_GB = 0.4;
/** torchvision's ImageNet checkpoint (IMAGENET1K_V1), served with CORS by the Hugging Face hub. */
export const HUB_WEIGHTS_URL = 'https://huggingface.co/timm/resnet50.tv_in1k/resolve/main/model.safetensors';
/** Self-hosted weights (scripts/fetch-weights.sh puts them there; build-site.sh copies them). */
export const LOCAL_WEIGHTS_URL = new URL('../weights/resnet50.safetensors', import.meta.url).href;
export const WEBGPU_BROWSERS = 'Chrome and Edge 113+, Safari 26, Firefox 141+ on Windows';
export const MAX_IMAGE_BYTES = 50 * 1024 * 1024;
/** The most Integrated Gradients steps the model takes (the core crate's MAX_IG_STEPS). */
export const MAX_IG_STEPS = 4096;
const CACHE_NAME = 'smoothgrad-weights-v1';
const RETRIED_OPS = new Set(['classify', 'attribute', 'render', 'integratedGradientsShare', 'integratedGradientsFromShares']);
// A SmoothGrad run's calls: its state lives in one worker, so a restart ends the run.
const RUN_OPS = new Set(['start', 'step', 'smoothedAll']);
/** The most classes loadRandomWeights() builds. */
const MAX_RANDOM_CLASSES = 100_000;
const DISPOSED = { name: 'StateError', message: 'This SmoothGrad instance was disposed.', trap: false };
const SIDE = 224;

/** Every error of this API. `kind` is one of the wasm module's error names ("WeightsError",
 * "ImageError", "OptionsError", "TargetError", "StateError", "BackendError", "DeviceError") or "NetworkError",
 * "OutOfMemory", "DeviceLost", "Crash" (the wasm instance trapped and was restarted). */
export class SmoothGradError extends Error {
  constructor(kind, message, extra = {}) {
    super(message);
    this.name = 'SmoothGradError';
    this.kind = kind;
    Object.assign(this, extra);
  }
}

/** A class's display name: ImageNet's for 1000-class models, "class N" otherwise. */
export function className(index, numClasses = 1000) {
  if (numClasses === 1000 && index >= 0 && index < 1000) return IMAGENET_CLASSES[index];
  return `class ${index}`;
}

/** Which backend `auto` picks here, and why (in words for the user). Never throws. */
export async function chooseBackend(requested = 'auto') {
  const gpu = globalThis.navigator?.gpu;
  const noWebGpu = `This browser has no WebGPU (${WEBGPU_BROWSERS} have it)`;
  if (requested === 'cpu') return { backend: 'cpu', reason: 'the CPU backend was requested', adapter: null };
  if (!gpu) {
    return { backend: 'cpu', reason: `${noWebGpu}: running on the CPU inside WebAssembly instead, which is slower.`, adapter: null, fallback: true };
  }
  let adapter = null;
  try { adapter = await gpu.requestAdapter({ powerPreference: 'high-performance' }); } catch { adapter = null; }
  if (!adapter) {
    return { backend: 'cpu', reason: 'WebGPU is present but offers no adapter (GPU disabled or blocklisted): running on the CPU inside WebAssembly instead, which is slower.', adapter: null, fallback: true };
  }
  const info = adapter.info ?? {};
  const described = [info.vendor, info.architecture, info.device, info.description].filter(Boolean).join(' ');
  const software = adapter.isFallbackAdapter === true || info.isFallbackAdapter === true ||
    /swiftshader|llvmpipe|lavapipe|software|microsoft basic render|warp/i.test(described);
  const limits = {
    maxBufferSize: Number(adapter.limits.maxBufferSize),
    maxStorageBufferBindingSize: Number(adapter.limits.maxStorageBufferBindingSize),
  };
  const shaderF16 = adapter.features?.has?.('shader-f16') === true;
  const adapterInfo = { description: described || 'unknown adapter', software, limits, shaderF16 };
  if (requested === 'webgpu') return { backend: 'webgpu', reason: 'WebGPU was requested', adapter: adapterInfo };
  if (software) {
    return { backend: 'cpu', reason: `WebGPU here is a software renderer (${described || 'fallback adapter'}): the CPU backend inside WebAssembly is faster, so it runs instead.`, adapter: adapterInfo };
  }
  return { backend: 'webgpu', reason: `WebGPU on ${described || 'the GPU'}`, adapter: adapterInfo };
}

/** The precision a run gets on `backend`: the requested one, or f32 where f16 cannot run (with
 * the reason, for the user). Never throws. */
export function choosePrecision(requested = 'f32', { backend, adapter } = {}) {
  if (requested === 'f16' && (backend !== 'webgpu' || !adapter?.shaderF16)) {
    const where = backend === 'webgpu' ? 'this WebGPU adapter has no shader-f16' : 'the CPU backend computes in f32 only';
    return { precision: 'f32', reason: `Half precision (f16) needs a GPU whose WebGPU adapter offers shader-f16, and ${where}: computing in f32.` };
  }
  return { precision: requested };
}

/** The largest micro-batch "auto" picks on a GPU. Measured natively on an H200 (SmoothGrad-50,
 * a build whose kernels were the page's at these micro-batches, no `gemm` there): micro-batch 10
 * takes 159 ms, 25 100 ms, 50 88 ms; 25 keeps two progress steps for the default 50 samples at
 * 0.63× the time of 10. */
export const MAX_AUTO_MICRO_BATCH = 25;

/** Micro-batch for "auto": from the adapter's buffer limits on WebGPU (ResNet-50 needs ≈ 216 MiB at
 * batch 1 and ≈ 75 MiB per extra image in f32, scaled by the model's width, half that in f16,
 * twice that for methods that share a forward pass), 2–4 on the CPU; at most
 * MAX_AUTO_MICRO_BATCH, and never more than the samples. 1 for Integrated Gradients, whatever the
 * device. `method`: a name, or the names of a run of several. */
export function autoMicroBatch({ backend, adapter, model, samples, precision = 'f32', method }) {
  const methods = [method].flat();
  // Each noisy copy's Integrated Gradients is already passes of 10 path points, one copy after
  // another: a larger micro-batch only spaces the progress out (a tick per 100 passes at 2, a
  // minute on a CPU), and its memory is a pass's whatever the micro-batch.
  if (methods.includes('integrated-gradients')) return 1;
  // Per-image memory in f16 measured 0.5× f32's (lavapipe, ResNet-50 at micro-batch 10). Methods
  // sharing a forward pass keep its convolutions' outputs beside the second backward pass: counted
  // as twice the per-image memory (lavapipe, the same wgpu code as a GPU's: 1.93× the memory at
  // micro-batch 10, 1.97× per extra image from 6 to 10; the wasm heap on the CPU grew 1.3×).
  const sharing = methods.includes('guided-backprop') && methods.length > 1 ? 2 : 1;
  const width = (model?.baseWidth ?? 64) / 64 * (precision === 'f16' ? 0.5 : 1);
  let batch;
  if (backend === 'webgpu' && adapter?.limits) {
    const MiB = 1024 * 1024;
    const budget = Math.min(adapter.limits.maxBufferSize, adapter.limits.maxStorageBufferBindingSize);
    batch = 1 + Math.floor((budget - 216 * MiB * width) / (75 * MiB * width * sharing));
  } else {
    batch = width >= 1 ? 2 : 4;
  }
  batch = Math.max(1, Math.min(MAX_AUTO_MICRO_BATCH, batch));
  if (Number.isFinite(samples) && samples >= 1) batch = Math.min(batch, Math.floor(samples));
  return batch;
}

/** Workers sharing a SmoothGrad run for "auto": one per core on the CPU backend (up to
 * MAX_CPU_WORKERS and the memory budget, no more than the run has micro-batches); WebGPU has one
 * device, so one. */
export function autoWorkers({ backend, samples, microBatch }) {
  if (backend !== 'cpu') return 1;
  const cores = globalThis.navigator?.hardwareConcurrency || 1;
  const memoryGB = globalThis.navigator?.deviceMemory;
  const byMemory = memoryGB ? Math.floor(memoryGB / 4 / WORKER_MEMORY_GB) : MAX_CPU_WORKERS;
  const batches = Number.isFinite(samples) && samples >= 1 ? Math.ceil(samples / microBatch) : 1;
  return Math.max(1, Math.min(cores, byMemory, MAX_CPU_WORKERS, batches));
}

/** A micro-batch asked for, at most `samples`: the size that runs and is reported (a run of 50
 * at micro-batch 1e6 said 1e6), and where halving after running out of memory starts (from 1e6,
 * fifteen runs of 50 samples before one smaller than 50). Anything but whole numbers is left for
 * the wasm to refuse by name. */
function atMostSamples(microBatch, samples) {
  return Number.isInteger(microBatch) && Number.isInteger(samples) && samples >= 1 ? Math.min(microBatch, samples) : microBatch;
}

/** 0..total (samples, steps) split into `parts` contiguous shares [start, end), as even as can be. */
function splitRange(total, parts) {
  return Array.from({ length: parts }, (_, i) => [Math.floor((i * total) / parts), Math.floor(((i + 1) * total) / parts)]);
}

/** Integrated Gradients' path points per pass of its plain map on `device` ({backend, adapter,
 * model, precision}): IG_STEPS_PER_PASS, as the core crate batches them (a share carried from
 * pass to pass is then the whole range's to the bit), or fewer on a GPU whose buffer limits hold
 * fewer images at once, as autoMicroBatch reckons them. */
export function igPassSteps(device) {
  if (device.backend !== 'webgpu') return IG_STEPS_PER_PASS;
  return Math.min(IG_STEPS_PER_PASS, autoMicroBatch({ ...device, samples: IG_STEPS_PER_PASS }));
}

/** The steps [start, end) in passes of `size`. */
function passes(start, end, size) {
  const list = [];
  for (let step = start; step < end; step += size) list.push([step, Math.min(end, step + size)]);
  return list;
}

/** One www/worker.js (which owns a wasm instance) and its request/response plumbing. */
class ModelWorker {
  constructor() {
    this.worker = new Worker(new URL('./worker.js', import.meta.url), { type: 'module' });
    this.pending = new Map();
    this.nextId = 1;
    this.closed = null; // the error calls get once terminate() ended the worker
    this.worker.onmessage = (event) => {
      const { id, ok, result, error } = event.data;
      const pending = this.pending.get(id);
      if (!pending) return;
      this.pending.delete(id);
      if (ok) pending.resolve(result); else pending.reject(error);
    };
    this.worker.onerror = (event) => {
      event.preventDefault?.();
      this._rejectAll({ name: 'BackendError', message: `The model's worker failed: ${event.message || 'it could not start'}.`, trap: false });
    };
  }

  call(op, args, transfer = []) {
    // A terminated worker drops messages: a call would never settle.
    if (this.closed) return Promise.reject(this.closed);
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.worker.postMessage({ id, op, args }, transfer);
    });
  }

  /** Ends the worker; its calls in flight reject with `error` (by default: cut off by a restart). */
  terminate(error = { name: 'StateError', message: 'the model was restarted while this was computed', trap: false, restarted: true }) {
    this.worker.terminate();
    this.closed = error;
    this._rejectAll(error);
  }

  _rejectAll(error) {
    for (const pending of this.pending.values()) pending.reject(error);
    this.pending.clear();
  }
}

/** The error of a SmoothGrad run whose worker a trap in another call replaced: explain() runs it again. */
function runCutOff() {
  return new SmoothGradError('Crash', 'The model restarted during this SmoothGrad run (another call crashed it); it has your weights, image and settings again.', { restarted: true });
}

/** Refuses an option `call` does not take: a misspelt one (`noiselevel`) would otherwise be
 * dropped and its default used without a word. Returns the options given a value: one left
 * undefined or null takes its default, as it does in the wasm (before, `samples: undefined` ran
 * 50 samples and reported a total of NaN). */
function checkOptions(call, options, known) {
  for (const key of Object.keys(options ?? {})) {
    if (known.includes(key)) continue;
    const meant = known.find((name) => name.toLowerCase() === key.toLowerCase());
    throw new SmoothGradError('OptionsError',
      `${call}() has no option '${key}'${meant ? ` (did you mean '${meant}'?)` : ''}: it takes ${known.join(', ')}.`);
  }
  return Object.fromEntries(Object.entries(options ?? {}).filter(([, value]) => value !== undefined && value !== null));
}

/** Refuses an `onProgress` that is given but is no function: it would only fail at the first tick,
 * after the work it was to follow had begun. */
function checkOnProgress(call, onProgress) {
  if (onProgress !== undefined && onProgress !== null && typeof onProgress !== 'function') {
    throw new SmoothGradError('OptionsError', `${call}()'s onProgress must be a function (got ${typeof onProgress}).`);
  }
}

/** `value` must be one of `choices` (the Rust checks' wording). */
function checkChoice(what, value, choices) {
  if (!choices.includes(value)) {
    throw new SmoothGradError('OptionsError', `unknown ${what} '${String(value)}': choose one of ${choices.join(', ')}`);
  }
  return value;
}

/** `options` for the wasm, with `igSteps` where `method` (a name, or several) is Integrated
 * Gradients (the only one that takes them) and they were given. */
function withIgSteps(options, method, igSteps) {
  return igSteps !== undefined && [method].flat().includes('integrated-gradients') ? { ...options, igSteps } : options;
}

/** explain()'s `methods`, where given: an array of names, and then no `method` beside it (the
 * wasm refuses names it does not know, an empty array, and a name given twice). */
function checkMethods(given) {
  if (given.methods === undefined) return undefined;
  if (!Array.isArray(given.methods)) {
    throw new SmoothGradError('OptionsError', `explain()'s methods must be an array of method names (got ${typeof given.methods}).`);
  }
  if (given.method !== undefined) {
    throw new SmoothGradError('OptionsError', "explain() takes either 'method' or 'methods', not both.");
  }
  return [...given.methods];
}

/** A run of several methods' {map, maps} per method, split from `maps` (null where it has none);
 * `map` is the one for `smoothing`, as the run's own `map` is. */
function mapsByMethod(methods, maps, smoothing) {
  const split = maps && Object.entries(maps).map(([name, all]) => [name, splitByMethod(methods, all)]);
  return Object.fromEntries(methods.map((method) => {
    const own = split && Object.fromEntries(split.map(([name, byMethod]) => [name, byMethod[method]]));
    return [method, { map: own ? own[smoothing] : null, maps: own }];
  }));
}

/** `methods`' own maps in a run's `map` of all of them (one [3, 224, 224] after another). Copies,
 * not views: a view posted to a worker (render) would take the whole buffer with it. */
function splitByMethod(methods, map) {
  const size = map.length / methods.length;
  return Object.fromEntries(methods.map((method, i) => [method, map.slice(i * size, (i + 1) * size)]));
}

/** Weights `bytes` as a worker's call arguments and transfer list: a copy that the worker takes
 * over. A structured clone of 100 MB took 200–500 ms in Chromium here, a copy transferred
 * 70–160 ms; the page keeps its own bytes for restarts and helper workers. */
function handedOver(bytes) {
  const copy = bytes.slice();
  return [{ bytes: copy }, [copy.buffer]];
}

/** `text` without its full stop, to be wrapped in parentheses or go on within a sentence. */
export const withoutFullStop = (text) => String(text).replace(/\.$/, '');

/** Rethrows a helper worker's failure marked `helper: true`: the work can go on without it. */
function asHelper(error) {
  throw Object.assign(new SmoothGradError(kindOf(error), error.panic || (error.message ?? String(error))), { helper: true });
}

/** The documented kind of a worker's error: a trap (the wasm instance stopped) is a "Crash". */
function kindOf(error) {
  if (error.trap) return 'Crash';
  const known = ['WeightsError', 'ImageError', 'OptionsError', 'TargetError', 'StateError', 'BackendError', 'DeviceError'];
  return known.includes(error.name) ? error.name : (error.name || 'Error');
}

async function toBytes(input) {
  if (input instanceof Uint8Array) return input;
  if (input instanceof ArrayBuffer) return new Uint8Array(input);
  if (ArrayBuffer.isView(input)) return new Uint8Array(input.buffer, input.byteOffset, input.byteLength);
  if (typeof Blob !== 'undefined' && input instanceof Blob) return new Uint8Array(await input.arrayBuffer());
  return null;
}

/** Drops `href` from Cache Storage (a copy that proved broken). */
async function forget(href) {
  try {
    await (await caches.open(CACHE_NAME)).delete(href);
  } catch { /* no cache here */ }
}

/** Fetches `url` into bytes with download progress. Cross-origin files come from Cache Storage
 * when there (unless `fresh`); `keep()` stores a download there, to be called once the bytes
 * proved good (a broken file kept would come back at every retry). */
async function fetchBytes(url, { onProgress, cache = 'cross-origin', accept, fresh = false } = {}) {
  const href = new URL(url, globalThis.location?.href).href;
  const crossOrigin = globalThis.location && new URL(href).origin !== globalThis.location.origin;
  const useCache = typeof caches !== 'undefined' && (cache === 'always' || (cache === 'cross-origin' && crossOrigin));
  // A throwing callback is the page's problem, not a broken download.
  const progress = (loaded, total, fromCache) => {
    try {
      onProgress?.({ loaded, total, fromCache, url: href });
    } catch (e) { console.error(e); }
  };
  if (useCache && !fresh) {
    try {
      const store = await caches.open(CACHE_NAME);
      const hit = await store.match(href);
      if (hit) {
        const bytes = new Uint8Array(await hit.arrayBuffer());
        progress(bytes.length, bytes.length, true);
        return { bytes, fromCache: true, url: href, keep: async () => {} };
      }
    } catch { /* no cache here: download */ }
  }
  let response;
  try {
    response = await fetch(href);
  } catch (e) {
    throw new SmoothGradError('NetworkError', `Could not download ${href}: ${e.message} (offline, or the server does not allow this page to read it).`, { url: href, status: 0 });
  }
  if (!response.ok) {
    throw new SmoothGradError('NetworkError', `Could not download ${href}: HTTP ${response.status} ${response.statusText}`.trim() + '.', { url: href, status: response.status });
  }
  if (accept && !accept(response)) {
    throw new SmoothGradError('NetworkError', `${href} is not a weights file (the server sent ${response.headers.get('content-type')}).`, { url: href, status: 404 });
  }
  const total = Number(response.headers.get('content-length')) || 0;
  // The length is of the body as sent: a visibly compressed one is not checked. Cross-origin the
  // Content-Encoding is hidden from the page, and a compressed body that did not shrink (an image
  // gzipped again) decodes up to 0.1 % shorter than its length: only a larger shortfall is a cut.
  const checkable = total > 0 && !response.headers.get('content-encoding');
  const slack = crossOrigin ? Math.ceil(total / 1000) + 1024 : 0;
  const mb = (n) => (n / 1048576).toFixed(1);
  let bytes;
  try {
    bytes = await readBody(response, (loaded) => progress(loaded, total, false));
  } catch (e) {
    throw new SmoothGradError('NetworkError', `The download of ${href} broke off (${e.message}); try again.`, { url: href, status: 0 });
  }
  if (checkable && bytes.length < total - slack) {
    throw new SmoothGradError('NetworkError', `The download of ${href} stopped at ${mb(bytes.length)} of ${mb(total)} MB; try again.`, { url: href, status: 0 });
  }
  const keep = async () => {
    if (!useCache) return;
    try {
      const store = await caches.open(CACHE_NAME);
      await store.put(href, new Response(bytes, { headers: { 'content-type': 'application/octet-stream' } }));
    } catch { /* quota: fine, next visit downloads again */ }
  };
  return { bytes, fromCache: false, url: href, keep };
}

/** A response's body as bytes, telling `progress(loaded)` as chunks arrive. */
async function readBody(response, progress) {
  if (!response.body) return new Uint8Array(await response.arrayBuffer());
  const reader = response.body.getReader();
  const chunks = [];
  let loaded = 0;
  progress(loaded);
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    chunks.push(value);
    loaded += value.length;
    progress(loaded);
  }
  const bytes = new Uint8Array(loaded);
  let offset = 0;
  for (const chunk of chunks) { bytes.set(chunk, offset); offset += chunk.length; }
  return bytes;
}

export class SmoothGrad {
  /** Starts the worker on the chosen backend. Options: backend ('auto' | 'webgpu' | 'cpu'),
   * precision ('f32' | 'f16': half the memory per image, maps within correlation 0.97 of f32's;
   * falls back to f32 with a notice where the adapter has no shader-f16), onNotice(message, level)
   * for what the user should know (fallbacks, restarts, retries), onBackendChange() when a
   * restart ends on another backend or precision (`backend`, `precision` say which). */
  static async create(options = {}) {
    const { backend = 'auto', precision = 'f32', onNotice, onBackendChange } =
      checkOptions('create', options, ['backend', 'precision', 'onNotice', 'onBackendChange']);
    checkChoice('backend', backend, BACKENDS);
    checkChoice('precision', precision, PRECISIONS);
    const sg = new SmoothGrad(onNotice);
    sg.onBackendChange = onBackendChange;
    sg.requestedPrecision = precision;
    const choice = await chooseBackend(backend);
    sg.requestedBackend = backend;
    sg.backendReason = choice.reason;
    sg.adapter = choice.adapter;
    if (choice.fallback || (backend === 'auto' && choice.backend === 'cpu')) sg._notice(choice.reason, choice.fallback ? 'warn' : 'info');
    await sg._startWorker(choice.backend);
    return sg;
  }

  constructor(onNotice) {
    this.onNotice = onNotice;
    this.onBackendChange = null;
    this._restarting = null; // while the worker is replaced after a trap: settles when it has the weights and image
    this._restarts = 0; // how many times the worker was replaced: a run that saw it change was cut off
    this._disposed = false;
    this.backend = null;
    this.convLowering = null; // how the wasm computes convolutions here: 'matrix-products' | 'direct'
    // Whether the CPU runs its relaxed SIMD module (www/wasm-modules.js): decided here, where the
    // module is compiled, and passed to the workers, whose glue must match it.
    this._relaxedSimd = hasRelaxedSimd();
    this.requestedPrecision = 'f32';
    this.precision = null; // what the network computes in: 'f32' | 'f16'
    this.model = null; // {architecture, numClasses, baseWidth}
    this.weightsSource = null; // what loadWeights loaded: {url} | {bytes} | {random: numClasses}
    this._worker = null; // the ModelWorker that owns the run, the model and the image
    this._startFailure = null; // why the last worker could not start (then _worker is null)
    this._modules = new Map(); // backend → Promise of its compiled wasm module (see _compiled)
    this._helpers = []; // CPU only: more ModelWorkers taking shares of a run, {worker, weights, image}
    this._helpersStarted = Promise.resolve(); // the last _helpersFor()
    this._others = undefined; // the helpers' sums of the last run, for smoothed()
    this._weights = null; // kept for restarts: {bytes} | {random}
    this._image = null; // kept for restarts: {bytes} | {rgba, width, height}
    this._stops = 0; // stop() calls so far: a run or attribute() ends when it changes (_stopWatch)
    this._onStop = new Set(); // called by stop(): running attribute()s stop waiting for helpers
    this.crop = null; // ImageData of the 224×224 centre crop the model sees
    this.lastClassification = null;
  }

  /** Whether the model runs on the CPU module that fuses its multiply-adds (relaxed SIMD). */
  get relaxedSimd() {
    return this.backend === 'cpu' && this._relaxedSimd;
  }

  _notice(message, level = 'info') {
    try { this.onNotice?.(message, level); } catch { /* the page's problem */ }
  }

  async _startWorker(backend) {
    const worker = new ModelWorker();
    this._worker = worker;
    try {
      // The adapter decides how convolutions run fastest (ConvLowering in the core crate).
      const choice = choosePrecision(this.requestedPrecision, { backend, adapter: this.adapter });
      const before = { backend: this.backend, precision: this.precision };
      const { backend: running, convLowering, precision } = await this._raw('init', {
        ...await this._moduleArgs(backend), adapter: this.adapter?.description, precision: choice.precision,
      });
      this.backend = running;
      this.convLowering = convLowering;
      this.precision = precision;
      // V8 optimises wasm code only once it runs: a narrow pass while the page waits for its
      // weights brought a first visit's first map 0.2–0.3 s sooner (returning visits, whose code
      // V8 has cached, unchanged). Not on WebGPU: no gain on SwiftShader, a real GPU's untried.
      // Unawaited: the calls after it queue behind it in the worker; a trap shows on the next one.
      // Once: a restarted worker gets the same compiled module, whose optimised code V8 keeps.
      if (running === 'cpu' && before.backend === null) this._raw('warmUp').catch(() => {});
      // Only the backend that started says why f16 fell back: once, and again only if a restart
      // changed the precision.
      if (choice.reason && precision !== before.precision) this._notice(choice.reason, 'warn');
      if (before.backend !== null && (running !== before.backend || precision !== before.precision)) {
        try { this.onBackendChange?.(); } catch { /* the page's problem */ }
      }
    } catch (error) {
      worker.terminate();
      this._worker = null;
      if (this._disposed) throw new SmoothGradError('StateError', DISPOSED.message);
      // A trap's message is "unreachable": the panic says why.
      const reason = error.panic || error.message;
      // The CPU has a module of its own (a fifth of the size), so it may load where WebGPU's did not.
      const unloaded = /could not be loaded/.test(reason);
      if (backend === 'webgpu') {
        const instead = 'on the CPU inside WebAssembly instead, which is slower.';
        this._notice(unloaded ? `${reason} Running ${instead}` : `WebGPU could not start (${reason}); running ${instead}`, 'warn');
        this.backendReason = `WebGPU failed to start: ${reason}`;
        this._modules.delete('webgpu'); // not needed again: let it be collected
        return this._startWorker('cpu');
      }
      // The relaxed SIMD build missing (a site copied without it) or refused: the plain one runs
      // the same maps, a little slower.
      if (unloaded && this._relaxedSimd) {
        this._relaxedSimd = false;
        this._modules.delete('cpu');
        return this._startWorker('cpu');
      }
      // Only a first start can be a site served wrong; a restart's module was there before.
      const message = unloaded && this.backend === null
        ? `${reason} Build the site with scripts/build-site.sh and serve dist/ over http.` : reason;
      this._startFailure = message;
      throw new SmoothGradError(kindOf(error), message);
    }
  }

  /** What a worker's init needs to load `backend`'s wasm module: which one, and it compiled. */
  async _moduleArgs(backend) {
    return { backend, relaxedSimd: this._relaxedSimd, module: await this._compiled(backend) };
  }

  /** `backend`'s wasm module, compiled once here and handed to every worker on that backend (a
   * restart after a trap then skips the compilation); undefined makes the worker fetch it itself. */
  _compiled(backend) {
    if (!this._modules.has(backend)) {
      this._modules.set(backend, (async () => {
        try {
          const response = await fetch(wasmModule(backend, this._relaxedSimd).wasm);
          if (!response.ok) return undefined;
          return /application\/wasm/.test(response.headers.get('content-type') ?? '')
            ? await WebAssembly.compileStreaming(response)
            : await WebAssembly.compile(await response.arrayBuffer());
        } catch {
          return undefined;
        }
      })());
    }
    return this._modules.get(backend);
  }

  _raw(op, args, transfer = []) {
    return this._worker.call(op, args, transfer);
  }

  /** Sends one operation; a trap or a lost device replaces the worker (state restored) and
   * throws a kind "OutOfMemory", "DeviceLost" or "Crash" SmoothGradError for the caller to retry. */
  async _call(op, args, transfer, retried = false) {
    // A retry sends `args` again: a retried op must transfer nothing (a transferred buffer is
    // detached after the first send).
    // A call made while the model restarts waits for the new worker to have the weights and image.
    await this._restarting?.catch(() => {});
    if (this._disposed) throw new SmoothGradError('StateError', DISPOSED.message);
    if (!this._worker) {
      throw new SmoothGradError('BackendError', `The model could not be started again (${withoutFullStop(this._startFailure)}); reload the page.`);
    }
    try {
      return await this._raw(op, args, transfer);
    } catch (error) {
      // Sent to the worker a trap in another call replaced: one-shot calls are done again on the
      // new one; a SmoothGrad run's calls end the run, for explain() to run it again.
      if (error.restarted) {
        if (RETRIED_OPS.has(op) && !retried) return this._call(op, args, transfer, true);
        if (RUN_OPS.has(op)) throw runCutOff();
      }
      // A lost device is reported by the wasm (CubeCL's "poisoned" device) without a trap, but
      // every later call on it would fail too.
      const lost = error.name === 'DeviceLost';
      if (!error.trap && !lost) throw new SmoothGradError(kindOf(error), error.message);
      const panic = withoutFullStop(error.panic || error.message);
      const kind = lost ? 'DeviceLost' : /out of memory|outofmemory|oom|allocat/i.test(panic) ? 'OutOfMemory'
        : /device.*lost|lost.*device|devicelost/i.test(panic) ? 'DeviceLost' : 'Crash';
      const failed = this.backend === 'webgpu' ? 'GPU' : 'model'; // before a restart that may fall back
      await this._restart(kind, panic);
      // One-shot operations are simply done again on the fresh worker (a SmoothGrad run is
      // retried by explain(), which may also halve its micro-batch).
      if (RETRIED_OPS.has(op) && !retried && kind !== 'OutOfMemory') {
        this._notice('The model was restarted; trying again.', 'info');
        return this._call(op, args, transfer, true);
      }
      const what = kind === 'OutOfMemory' ? `The ${failed} ran out of memory`
        : kind === 'DeviceLost' ? 'The GPU device was lost' : 'The model crashed';
      throw new SmoothGradError(kind, `${what} (${panic}). The model was restarted with your weights, image and settings.`, { panic });
    }
  }

  async _restart(kind, panic) {
    this._restarts += 1;
    this._worker?.terminate();
    const what = kind === 'OutOfMemory' ? `Out of ${this.backend === 'webgpu' ? 'GPU ' : ''}memory`
      : kind === 'DeviceLost' ? 'GPU device lost' : 'The WebAssembly module stopped';
    this._notice(`${what} (${panic}): restarting the model…`, 'warn');
    this._restarting = (async () => {
      await this._startWorker(this.backend ?? 'cpu');
      try {
        await this._sync(this._worker, {});
      } catch (error) {
        throw new SmoothGradError(kindOf(error), `The model restarted but could not take back your weights and image (${withoutFullStop(error.panic || error.message)}); load them again.`);
      }
    })();
    try {
      await this._restarting;
    } finally {
      this._restarting = null;
    }
  }

  /** Sends `worker` the weights and image it lacks (`had`: the ones it was last given), and
   * returns those it was sent: new ones that come while it loads are for the next sync. */
  async _sync(worker, had) {
    const { _weights: weights, _image: image } = this;
    if (had.weights !== weights) {
      if (weights?.bytes) await worker.call('loadWeights', ...handedOver(weights.bytes));
      else if (weights?.random) await worker.call('loadRandomWeights', { numClasses: weights.random });
    }
    if (had.image !== image) {
      if (image?.bytes) await worker.call('setImage', { bytes: image.bytes });
      else if (image?.rgba) await worker.call('setImageRgba', image);
    }
    return { weights, image };
  }

  /** `count` helper workers on the CPU backend with this model and image; kept between runs.
   * One call at a time: an attribute() stopped while its helpers start leaves them starting, and
   * the next call must not send them work before they are. */
  _helpersFor(count) {
    this._helpersStarted = this._helpersStarted.catch(() => {}).then(() => this._startHelpers(count));
    return this._helpersStarted;
  }

  async _startHelpers(count) {
    while (this._helpers.length > count) this._helpers.pop().worker.terminate();
    while (this._helpers.length < count) {
      const worker = new ModelWorker();
      this._helpers.push({ worker, weights: null, image: null });
      await worker.call('init', await this._moduleArgs('cpu'));
    }
    await Promise.all(this._helpers.map(async (helper) => {
      Object.assign(helper, await this._sync(helper.worker, helper));
    }));
    return this._helpers.map((helper) => helper.worker);
  }

  _dropHelpers() {
    for (const helper of this._helpers) helper.worker.terminate();
    this._helpers = [];
  }

  /** Loads a .safetensors checkpoint (torchvision/timm names; the ResNet's depth, width and
   * classes are read from it). `source`: a URL, bytes (Uint8Array/ArrayBuffer/Blob), or nothing
   * for the default: weights/resnet50.safetensors beside the site, else the Hugging Face hub.
   * onProgress({loaded, total, fromCache, url}) reports the download. Returns the model info. */
  async loadWeights(source, options = {}) {
    const { onProgress, cache = 'cross-origin' } = checkOptions('loadWeights', options, ['onProgress', 'cache']);
    checkOnProgress('loadWeights', onProgress);
    let bytes = await toBytes(source);
    let url = null;
    let fromCache = false;
    let keep = async () => {};
    if (!bytes && (source === undefined || source === null || source === '')) {
      const notHtml = (r) => !/text\/html/i.test(r.headers.get('content-type') ?? '');
      try {
        ({ bytes, url, fromCache, keep } = await fetchBytes(LOCAL_WEIGHTS_URL, { onProgress, cache: 'never', accept: notHtml }));
      } catch (local) {
        try {
          ({ bytes, url, fromCache, keep } = await fetchBytes(HUB_WEIGHTS_URL, { onProgress, cache }));
        } catch (hub) {
          throw new SmoothGradError('NetworkError',
            `No ResNet-50 weights could be loaded: not on this site (${local.message}) nor from the Hugging Face hub (${hub.message}).`,
            { url: HUB_WEIGHTS_URL });
        }
      }
    } else if (!bytes) {
      ({ bytes, url, fromCache, keep } = await fetchBytes(String(source), { onProgress, cache }));
    }
    let model;
    try {
      model = await this._call('loadWeights', ...handedOver(bytes));
    } catch (error) {
      if (!fromCache || error.kind !== 'WeightsError') throw error;
      // A cached copy that does not load (cut off, kept by an older version of this page):
      // dropped, and the file downloaded again.
      await forget(url);
      this._notice(`The cached copy of ${url} did not load (${error.message}): downloading it again.`, 'warn');
      ({ bytes, keep } = await fetchBytes(url, { onProgress, cache, fresh: true }));
      fromCache = false;
      model = await this._call('loadWeights', ...handedOver(bytes));
    }
    this._weights = { bytes };
    this.model = model;
    this.weightsSource = { url, fromCache, random: false };
    this.lastClassification = null;
    await keep();
    return model;
  }

  /** A randomly initialised ResNet-50: the pipeline runs, the maps mean nothing. */
  async loadRandomWeights(numClasses) {
    numClasses ??= 1000;
    // The wasm takes a 32-bit unsigned integer: 2.5 would build 2 classes, -1 four billion and
    // 2³² none. The cap is a classifier layer of 800 MB.
    if (!Number.isInteger(numClasses) || numClasses < 1 || numClasses > MAX_RANDOM_CLASSES) {
      throw new SmoothGradError('OptionsError', `numClasses must be a whole number from 1 to ${MAX_RANDOM_CLASSES} (got ${numClasses}).`);
    }
    const model = await this._call('loadRandomWeights', { numClasses });
    this._weights = { random: numClasses };
    this.model = model;
    this.weightsSource = { url: null, fromCache: false, random: true };
    this.lastClassification = null;
    return model;
  }

  /** Sets the image: encoded file bytes (PNG/JPEG/WebP/GIF/BMP) as Uint8Array/ArrayBuffer/Blob,
   * an ImageData, a canvas, an <img>/ImageBitmap, or a URL. Returns the 224×224 crop the model
   * sees, as ImageData. */
  async setImage(input) {
    let image;
    if (typeof input === 'string' || input instanceof URL) {
      const { bytes } = await fetchBytes(String(input), { cache: 'never' });
      image = { bytes };
    } else if (typeof ImageData !== 'undefined' && input instanceof ImageData) {
      image = { rgba: new Uint8Array(input.data.buffer.slice(0)), width: input.width, height: input.height };
    } else if (input && typeof input.getContext === 'function') {
      const data = input.getContext('2d').getImageData(0, 0, input.width, input.height);
      image = { rgba: new Uint8Array(data.data.buffer), width: data.width, height: data.height };
    } else if (input && (typeof ImageBitmap !== 'undefined' && input instanceof ImageBitmap ||
               typeof HTMLImageElement !== 'undefined' && input instanceof HTMLImageElement)) {
      const width = input.naturalWidth ?? input.width;
      const height = input.naturalHeight ?? input.height;
      if (!width || !height) {
        // An <img> whose file has loaded with no pixels could not be fetched or decoded.
        const broken = input.complete && Boolean(input.currentSrc || input.src);
        throw new SmoothGradError('ImageError', broken
          ? 'This <img> has no pixels: its file could not be loaded or decoded.'
          : `This image has no pixels yet (${width}×${height}): pass it once it has loaded, or give its URL.`);
      }
      const canvas = new OffscreenCanvas(width, height);
      const context = canvas.getContext('2d');
      context.drawImage(input, 0, 0);
      const data = context.getImageData(0, 0, width, height);
      image = { rgba: new Uint8Array(data.data.buffer), width, height };
    } else {
      const bytes = await toBytes(input);
      if (!bytes) throw new SmoothGradError('ImageError', 'Give an image as file bytes, a Blob/File, ImageData, a canvas, an <img> or a URL.');
      image = { bytes };
    }
    if (image.bytes && image.bytes.length > MAX_IMAGE_BYTES) {
      throw new SmoothGradError('ImageError', `This image file is ${(image.bytes.length / 1048576).toFixed(0)} MB; the limit is ${MAX_IMAGE_BYTES / 1048576} MB. Use a smaller photo (the model sees 224×224 pixels anyway).`);
    }
    if (image.rgba && image.width * image.height > 100e6) {
      throw new SmoothGradError('ImageError', `This image has ${image.width}×${image.height} pixels, too many; use a smaller one (the model sees 224×224 pixels anyway).`);
    }
    let crop;
    try {
      crop = image.bytes
        ? await this._call('setImage', { bytes: image.bytes })
        : await this._call('setImageRgba', image);
    } catch (error) {
      if (error.kind === 'ImageError' && /limit/i.test(error.message)) {
        error.message += '. The image has too many pixels to decode here: use a smaller photo (the model sees 224×224 pixels anyway).';
      }
      throw error;
    }
    this._image = image;
    this.lastClassification = null;
    this.crop = new ImageData(new Uint8ClampedArray(crop.buffer, crop.byteOffset, crop.byteLength), SIDE, SIDE);
    return this.crop;
  }

  /** Classifies the image (sets it first when given). Returns {top: [{index, name, probability}]
   * (topK, default 5), probabilities, logits, crop}. `attribute: method` (and igSteps) adds
   * `attribution: {method, target, map}`, the method's map of the top-1 class as attribute()
   * gives it: gradient, guided-backprop and input-x-gradient take the classes and the map from
   * one forward pass, so the first map of a new image comes sooner than classify() then
   * attribute(). Later calls for the same image (attribute() of another method or class,
   * classify() again) replay that pass's convolutions: each then costs about a backward pass, until
   * new weights load or a run starts. */
  async classify(input, options = {}) {
    const { topK = 5, attribute, igSteps } = checkOptions('classify', options, ['topK', 'attribute', 'igSteps']);
    if (!Number.isInteger(topK) || topK < 1) {
      throw new SmoothGradError('OptionsError', `topK must be a whole number ≥ 1 (got ${String(topK)}).`);
    }
    if (input !== undefined) await this.setImage(input);
    const asked = attribute === undefined ? undefined : withIgSteps({ attribute }, attribute, igSteps);
    const { logits, probabilities, target, map } = await this._call('classify', { options: asked });
    // By logits, which tell apart classes whose probabilities round alike: the top-1 is then the
    // class the device chose for the map.
    const order = Array.from(logits.keys()).sort((a, b) => logits[b] - logits[a]);
    const numClasses = this.model?.numClasses ?? probabilities.length;
    const top = order.slice(0, topK).map((index) => ({ index, name: className(index, numClasses), probability: probabilities[index] }));
    this.lastClassification = { top, probabilities, logits, crop: this.crop };
    if (map) this.lastClassification.attribution = { method: attribute, target, map };
    return this.lastClassification;
  }

  async _defaultTarget(target) {
    if (target !== undefined && target !== null && target !== '') return Number(target);
    const classified = this.lastClassification ?? await this.classify();
    return classified.top[0].index;
  }

  /** The method's map of the clean image, planar [3, 224, 224] (Float32Array).
   * Options: method, target (default: the top-1 class), and for Integrated Gradients igSteps,
   * workers and onProgress. Integrated Gradients is computed a pass of its steps at a time (10,
   * fewer on a GPU with small buffer limits: igPassSteps):
   * onProgress({done, total, elapsedMs, workers}) follows each pass (done and total count
   * steps, `workers` those it still has: once a helper fails, the model's worker finishes alone);
   * on the CPU backend `workers` share the steps ('auto' as explain(): one per core, no more than
   * it has passes; a number as explain()'s); stop() ends it after the current pass, and it then
   * resolves to null (a part of the path integral is no map). A new image or weights while it
   * computes make it throw a StateError rather than mix two in one map. classify({attribute})
   * computes its map in one go, without progress. */
  async attribute(options = {}) {
    const { method = 'gradient', target, igSteps, workers = 'auto', onProgress } =
      checkOptions('attribute', options, ['method', 'target', 'igSteps', 'workers', 'onProgress']);
    checkOnProgress('attribute', onProgress);
    const stopped = this._stopWatch();
    const asked = withIgSteps({ method, target: await this._defaultTarget(target) }, method, igSteps);
    const steps = asked.igSteps ?? DEFAULT_OPTIONS.igSteps;
    const count = this._workerCount(workers, method === 'integrated-gradients' ? steps : 1, IG_STEPS_PER_PASS);
    // Steps the wasm refuses go to it whole, for its message.
    const validSteps = Number.isInteger(steps) && steps >= 1 && steps <= MAX_IG_STEPS;
    if (method !== 'integrated-gradients' || !validSteps) return this._call('attribute', { options: asked });
    return this._integratedGradients(asked, steps, count, stopped, onProgress);
  }

  /** Integrated Gradients (`asked`: {target, igSteps}) a pass at a time, its `steps` split between
   * `count` workers: each carries its share of the path's gradients from pass to pass, and the
   * model's worker makes the map of them all. That worker starts at once, helpers once they are
   * ready; the passes a failed helper left are done after by the model's worker. null once
   * `stopped()`. */
  async _integratedGradients(asked, steps, count, stopped, onProgress) {
    if (stopped()) return null;
    const t0 = performance.now();
    const { _image: image, _weights: weights } = this;
    const size = igPassSteps({ backend: this.backend, adapter: this.adapter, model: this.model, precision: this.precision });
    const queues = splitRange(steps, count).map(([start, end]) => passes(start, end, size));
    const shares = [];
    let done = 0;
    let failed = false;
    let working = count; // the workers it still has
    // Settles once the work is given up (stop(), or the owner failed): helpers still starting
    // are not waited for then.
    let giveUp;
    const givenUp = new Promise((resolve) => { giveUp = resolve; });
    this._onStop.add(giveUp);
    const drive = async (call, queue, index) => {
      while (queue.length && !stopped() && !failed) {
        const stepRange = queue[0];
        shares[index] = await call('integratedGradientsShare', { options: { ...asked, stepRange }, earlier: shares[index] });
        queue.shift();
        done += stepRange[1] - stepRange[0];
        try {
          onProgress?.({ done, total: steps, elapsedMs: performance.now() - t0, workers: working });
        } catch (e) { console.error(e); }
      }
    };
    const owner = (op, args) => this._call(op, args);
    const helpers = count > 1 ? this._helpersFor(count - 1).catch(asHelper) : null;
    const outcomes = await Promise.allSettled([
      drive(owner, queues[0], 0).catch((error) => { failed = true; giveUp(); throw error; }),
      ...queues.slice(1).map(async (queue, i) => {
        try {
          const ready = await Promise.race([helpers, givenUp]);
          if (ready) await drive((op, args) => ready[i].call(op, args).catch(asHelper), queue, i + 1);
        } catch (error) {
          working -= 1;
          throw error;
        }
      }),
    ]).finally(() => this._onStop.delete(giveUp));
    // Disposed meanwhile (whatever the cut-off calls said): no helper failed.
    if (this._disposed) throw new SmoothGradError('StateError', DISPOSED.message);
    if (outcomes[0].status === 'rejected') throw outcomes[0].reason;
    const failure = outcomes.find((outcome) => outcome.status === 'rejected');
    if (failure) {
      this._dropHelpers();
      working = 1;
    }
    if (stopped()) return null;
    if (failure) {
      this._notice(`A helper worker failed (${failure.reason.message}): the model's worker does its Integrated Gradients steps.`, 'warn');
      await drive(owner, queues.flat(), count);
      if (stopped()) return null;
    }
    const map = await this._call('integratedGradientsFromShares', { shares: shares.filter(Boolean) });
    // The passes are calls of their own: another image or weights may have come between two.
    if (this._image !== image || this._weights !== weights) {
      throw new SmoothGradError('StateError', 'The image or the weights changed while Integrated Gradients was computed: ask for its map again.');
    }
    return map;
  }

  /** SmoothGrad of `method`: the map averaged over `samples` noisy copies (noise σ = noiseLevel ×
   * the input's range), `microBatch` copies at a time ('auto': from the GPU's limits), shared by
   * `workers` workers on the CPU backend ('auto': one per core, see autoWorkers; a number, at
   * most one per core or MAX_CPU_WORKERS, whichever is more; always 1 on WebGPU). The running
   * map is passed to onProgress({done, total, map, elapsedMs, samplesPerSecond, microBatch,
   * workers}) after every micro-batch; stop() ends the run early (result.stopped). `smoothing` (a
   * name, or a function returning one, read at each step: an answer that is no name keeps the
   * last one) picks the running map's variant; the result has all four in `maps`. Returns {map,
   * maps, done, total, stopped, elapsedMs, samplesPerSecond, microBatch, workers, target, seed};
   * `workers` there and in onProgress counts those the run still has (once a helper fails, the
   * others are let go and the model's worker finishes alone). The same seed gives the same map
   * whatever the micro-batch and the number of workers.
   * `methods: [name, …]` instead of `method` runs several over the same noisy copies in one run:
   * Gradient, Guided Backprop and Input × Gradient share each copy's forward pass (Gradient with
   * Guided Backprop: one forward and two backward passes a sample, not two of each). `map` and
   * `maps` then hold every method's map one after another; `byMethod` has each one's {map, maps},
   * and onProgress gets `byMethod` with each one's running map. */
  async explain(options = {}) {
    // Taken before anything is awaited, so a stop() from then on ends this run.
    const stopRequested = this._stopWatch();
    const given = checkOptions('explain', options, [...Object.keys(DEFAULT_OPTIONS), 'methods', 'target', 'onProgress']);
    const o = { ...DEFAULT_OPTIONS, ...given };
    checkOnProgress('explain', o.onProgress);
    const methods = checkMethods(given);
    // What the run computes: a method's name, or several names.
    const method = methods ?? o.method;
    const smoothingAsked = () => (typeof o.smoothing === 'function' ? o.smoothing() : o.smoothing);
    // A wrong one is refused before the run starts; mid-run, failing the run for it would throw
    // away what it had summed.
    let smoothing = checkChoice('smoothing', smoothingAsked(), SMOOTHINGS);
    const smoothingNow = () => {
      const asked = smoothingAsked();
      if (SMOOTHINGS.includes(asked)) smoothing = asked;
      return smoothing;
    };
    const target = await this._defaultTarget(o.target);
    let microBatch;
    let workers;
    let plannedFor; // the backend microBatch and workers were worked out for
    const plan = () => {
      plannedFor = this.backend;
      microBatch = o.microBatch === 'auto'
        ? autoMicroBatch({ backend: this.backend, adapter: this.adapter, model: this.model, samples: Number(o.samples), precision: this.precision, method })
        : atMostSamples(o.microBatch, o.samples);
      workers = this._workerCount(o.workers, Number(o.samples), microBatch);
    };
    plan();
    this._others = undefined;
    let deviceRetries = 0;
    let reruns = 0; // after a restart another call caused
    for (;;) {
      const start = withIgSteps({ ...(methods ? { methods } : { method }), target, samples: o.samples, noiseLevel: o.noiseLevel, microBatch, seed: o.seed },
        method, o.igSteps);
      try {
        const t0 = performance.now();
        const rate = (done) => {
          const elapsedMs = performance.now() - t0;
          return { elapsedMs, samplesPerSecond: done / Math.max(elapsedMs / 1000, 1e-9) };
        };
        const run = await this._share(start, workers, smoothingNow, stopRequested, (step) => {
          const split = methods ? { byMethod: splitByMethod(methods, step.map) } : {};
          try {
            o.onProgress?.({ total: Number(o.samples), microBatch, ...step, ...split, ...rate(step.done) });
          } catch (e) { console.error(e); }
        });
        const map = run.maps ? run.maps[smoothingNow()] : null;
        const which = methods ? { methods, byMethod: mapsByMethod(methods, run.maps, smoothingNow()) } : { method };
        return { map, maps: run.maps, done: run.done, total: Number(o.samples),
          stopped: run.stopped, ...rate(run.done), microBatch, workers: run.workers, target, seed: o.seed, ...which,
          samples: o.samples, noiseLevel: o.noiseLevel };
      } catch (error) {
        // Disposed meanwhile (whatever the cut-off calls said): nothing to run again.
        if (this._disposed) throw new SmoothGradError('StateError', DISPOSED.message);
        if (error.helper) {
          this._dropHelpers();
          this._notice(`A helper worker failed (${error.message}): SmoothGrad runs again on one worker.`, 'warn');
          workers = 1;
          continue;
        }
        // A restart that fell back from WebGPU to the CPU: whatever failed on the GPU, run it
        // again on the CPU with the CPU's "auto" (the GPU's micro-batch on one worker ran a
        // fraction as fast, with a far larger heap). Once: the backend changes only that way.
        if (this.backend !== plannedFor && !stopRequested()) {
          this._notice(`${withoutFullStop(error.message)}. Running SmoothGrad again on the CPU.`, 'warn');
          plan();
          continue;
        }
        // Cut off by a restart another call caused: nothing to change, run it again.
        if (error.restarted) {
          if (reruns >= 1 || stopRequested()) throw error;
          reruns += 1;
          this._notice('The model restarted during SmoothGrad: running it again.', 'warn');
          continue;
        }
        // An unexplained trap mid-run is most often memory too (an allocation failure in the
        // wasm heap aborts without a panic message): halve the micro-batch for both.
        if ((error.kind === 'OutOfMemory' || error.kind === 'Crash') && microBatch > 1 && !stopRequested()) {
          const smaller = Math.max(1, Math.floor(microBatch / 2));
          const what = error.kind === 'Crash' ? 'The model stopped' : `Out of ${this.backend === 'webgpu' ? 'GPU ' : ''}memory`;
          this._notice(`${what} at micro-batch ${microBatch}: retrying with micro-batch ${smaller}.`, 'warn');
          microBatch = smaller;
          continue;
        }
        if ((error.kind === 'DeviceLost' || error.kind === 'Crash') && deviceRetries < 1 && !stopRequested()) {
          deviceRetries += 1;
          this._notice(`${error.message} Running SmoothGrad again.`, 'warn');
          continue;
        }
        throw error;
      }
    }
  }

  _workerCount(requested, samples, microBatch) {
    if (requested === 'auto' || requested === undefined) return autoWorkers({ backend: this.backend, samples, microBatch });
    if (!Number.isInteger(requested) || requested < 1) {
      throw new SmoothGradError('OptionsError', `workers must be 'auto' or a whole number ≥ 1 (got ${requested}).`);
    }
    if (this.backend !== 'cpu') return 1;
    const count = Math.min(requested, Math.max(1, Math.floor(samples) || 1));
    // Each worker holds a model of its own (a third of a GB for ResNet-50): far more than the
    // cores would take the tab's memory and gain nothing. Not capped by navigator.deviceMemory
    // as "auto" is: a count asked for is the caller's to size.
    const cap = Math.max(MAX_CPU_WORKERS, globalThis.navigator?.hardwareConcurrency || 1);
    if (count <= cap) return count;
    this._notice(`workers: ${requested} is more than this device runs at once; ${cap} share the run (one per core, at least ${MAX_CPU_WORKERS}).`, 'info');
    return cap;
  }

  /** Runs `start` on `workers` workers, each on its share of the samples, every micro-batch's
   * map merged with the others' latest sums; returns {maps, done, stopped, workers} (those it
   * still has; `onStep` gets {done, map, smoothing, workers} likewise). A helper that fails
   * mid-run leaves the samples it had not done to the model's worker; one that fails to start
   * is thrown with `helper: true`: the run can go on without it. */
  async _share(start, workers, smoothingNow, stopRequested, onStep) {
    const restarts = this._restarts;
    const { _image: image, _weights: weights } = this;
    // Why the run cannot go on, if it cannot: setImage() or loadWeights() ended it in the wasm
    // (which says "call start() first"), or a worker that replaced the run's after a trap
    // elsewhere has no run (explain() runs it again: on the same image and weights only).
    const ended = () => {
      if (this._image !== image || this._weights !== weights) {
        return new SmoothGradError('StateError', 'The image or the weights changed while SmoothGrad ran: ask for its map again.');
      }
      return this._restarts !== restarts ? runCutOff() : null;
    };
    const owner = async (op, args) => {
      const before = ended();
      if (before) throw before;
      try {
        return await this._call(op, args);
      } catch (error) {
        throw (error.kind === 'StateError' && ended()) || error;
      }
    };
    const pooled = workers > 1;
    const shares = splitRange(Number(start.samples), workers);
    const startShare = (call, i) => call('start', { options: pooled ? { ...start, sampleRange: shares[i] } : start });
    // The owner first, before any helper is started: it refuses bad options (`samples: 2.5`)
    // before helpers load the weights for nothing.
    await startShare(owner, 0);
    const helpers = pooled ? await this._helpersFor(workers - 1).catch(asHelper) : [];
    const calls = [owner, ...helpers.map((worker) => (op, args) => worker.call(op, args).catch(asHelper))];
    await Promise.all(calls.slice(1).map((call, i) => startShare(call, i + 1)));
    const sums = calls.map(() => null); // each worker's latest {count, sum, sumOfSquares}
    const count = (parts) => parts.reduce((n, part) => n + (part?.count ?? 0), 0);
    let reported = 0;
    let stopped = false;
    let failed = false;
    let working = calls.length; // the workers it still has
    const drive = async (call, index) => {
      for (;;) {
        if (failed || this._disposed) return;
        if (stopRequested()) { stopped = true; return; }
        const smoothing = smoothingNow();
        const others = pooled ? sums.filter((part, j) => j !== index && part) : undefined;
        const step = await call('step', { smoothing, others });
        if (pooled) sums[index] = step.sums;
        // The map holds exactly these samples; a tick older than one already shown is skipped.
        const done = pooled ? count([step.sums, ...others]) : step.done;
        if (done > reported) {
          reported = done;
          onStep({ done, map: step.map, smoothing, workers: working });
        }
        if (step.done >= step.total) return;
      }
    };
    // The owner's failure ends the run. A helper's leaves the samples it had not done to the
    // owner, after its own share: those it did are in its last sums, kept.
    const outcomes = await Promise.allSettled(calls.map((call, i) => drive(call, i).catch((error) => {
      if (i === 0) failed = true;
      else working -= 1;
      throw error;
    })));
    if (outcomes[0].status === 'rejected') throw outcomes[0].reason;
    const left = outcomes.flatMap((outcome, i) => (outcome.status === 'rejected'
      ? [{ range: [shares[i][0] + (sums[i]?.count ?? 0), shares[i][1]], error: outcome.reason }] : []));
    if (left.length) {
      this._dropHelpers();
      working = 1;
    }
    if (left.length && !stopRequested()) {
      this._notice(`A helper worker failed (${left[0].error.message}): the model's worker does the samples it had left.`, 'warn');
    }
    for (const { range } of left) {
      if (range[0] >= range[1]) continue;
      if (stopRequested()) {
        stopped = true;
        break;
      }
      // The owner's sums so far stay beside the run it starts for these samples.
      sums.push(sums[0]);
      sums[0] = null;
      await owner('start', { options: { ...start, sampleRange: range } });
      await drive(owner, 0);
    }
    this._others = pooled ? sums.slice(1).filter(Boolean) : undefined;
    const done = pooled ? count(sums) : reported;
    const maps = done > 0 ? await owner('smoothedAll', { others: this._others, smoothings: SMOOTHINGS }) : null;
    // The last ticks' maps may have missed a share that finished meanwhile.
    if (done > reported) {
      const smoothing = smoothingNow();
      onStep({ done, map: maps[smoothing], smoothing, workers: working });
    }
    return { maps, done, stopped, workers: working };
  }

  /** Whether stop() was called since: what a run or an attribute() asks before each step. */
  _stopWatch() {
    const stops = this._stops;
    return () => this._stops !== stops;
  }

  /** The last run's running map for another smoothing (mean | mean-of-squares | variance | abs-mean);
   * after a run of several `methods`, their maps one after another, in the order given. */
  async smoothed(smoothing) {
    return this._call('smoothed', { smoothing: checkChoice('smoothing', smoothing ?? 'mean', SMOOTHINGS), others: this._others });
  }

  /** Ends a running explain() after its current micro-batch, and an attribute() of Integrated
   * Gradients after its current pass. */
  stop() {
    this._stops += 1;
    for (const giveUp of this._onStop) giveUp();
  }

  /** Renders a map ([3, 224, 224]) to RGBA 224×224: options sign (abs | positive | negative |
   * signed), clipPercentile, gamma, colormap (viridis | grey | red-blue), overlay (0..1, over the
   * input crop). Draws into `canvas` when given; returns the ImageData. */
  async render(map, canvas, display = {}) {
    const options = { ...DEFAULT_DISPLAY, ...checkOptions('render', display, Object.keys(DEFAULT_DISPLAY)) };
    if (canvas && typeof canvas.getContext !== 'function') {
      throw new SmoothGradError('OptionsError', `render() draws into a canvas (or none), not ${typeof canvas === 'object' ? 'this object' : `the ${typeof canvas} '${canvas}'`}.`);
    }
    const rgba = await this._call('render', { map, options });
    const image = new ImageData(new Uint8ClampedArray(rgba.buffer, rgba.byteOffset, rgba.byteLength), SIDE, SIDE);
    if (canvas) {
      canvas.width = SIDE;
      canvas.height = SIDE;
      canvas.getContext('2d').putImageData(image, 0, 0);
    }
    return image;
  }

  /** Ends the workers (and the GPU device with them). */
  dispose() {
    this._disposed = true;
    this._worker?.terminate(DISPOSED);
    this._worker = null;
    for (const helper of this._helpers) helper.worker.terminate(DISPOSED);
    this._helpers = [];
  }
}
