// The dedicated worker that owns the wasm module (one Explainer per worker: WebGPU can be
// initialised only once per worker, so switching backend or recovering from a trap means a new
// worker). Speaks a small request/response protocol with www/api.js:
//   main → worker  {id, op, args}
//   worker → main  {id, ok: true, result} | {id, ok: false, error: {name, message, trap, panic}}
// A call can be answered twice (as trapped by a trap outside it, then by its own end): the first
// answer counts.
// Calls into the Explainer run one at a time (a queue): the Rust object is borrowed by each call,
// and an async call (classify, smoothed, ...) must finish before the next one starts.

import { wasmModule } from './wasm-modules.js';

let wasm = null; // the module namespace of the backend's wasm-bindgen glue (www/wasm-modules.js)
let explainer = null;
let trapped = null; // the panic message once the instance trapped: it cannot be used any more
let simulated = null; // test hook: {op, message} makes that op fail as a trap would

// A wasm-bindgen result may be a plain object, a Map (serde-wasm-bindgen) or a class instance
// (getters on its prototype, which postMessage would drop): copy the named fields out.
function field(value, key) {
  if (value instanceof Map) return value.get(key);
  return value[key];
}
function plain(value, keys) {
  const out = {};
  for (const key of keys) out[key] = field(value, key);
  if (typeof value.free === 'function') value.free();
  return out;
}

const ops = {
  async init({ backend, module, relaxedSimd, adapter, precision = 'f32' }) {
    const { glue } = wasmModule(backend, relaxedSimd);
    try {
      wasm = await import(glue);
      await wasm.default(module ? { module_or_path: module } : undefined);
    } catch (e) {
      throw Object.assign(new Error(`The ${backend} WebAssembly module could not be loaded (${e && e.message}).`), { name: 'BackendError' });
    }
    explainer = await wasm.Explainer.create(backend, adapter);
    explainer.setPrecision(precision);
    return { backend: explainer.backend, convLowering: explainer.convLowering, precision: explainer.precision };
  },
  async warmUp() {
    await explainer.warmUp();
    return null;
  },
  loadWeights({ bytes }) {
    return plain(explainer.loadWeights(bytes), ['architecture', 'numClasses', 'baseWidth']);
  },
  loadRandomWeights({ numClasses }) {
    return plain(explainer.loadRandomWeights(numClasses), ['architecture', 'numClasses', 'baseWidth']);
  },
  setImage({ bytes }) {
    return explainer.setImage(bytes);
  },
  setImageRgba({ rgba, width, height }) {
    return explainer.setImageRgba(rgba, width, height);
  },
  async classify({ options }) {
    return plain(await explainer.classify(options), ['logits', 'probabilities', 'target', 'map']);
  },
  attribute({ options }) {
    return explainer.attribute(options);
  },
  // Integrated Gradients a pass at a time, its steps shared by workers: each carries its share
  // (`earlier`: the passes it did so far), one makes the map of them all.
  integratedGradientsShare({ options, earlier }) {
    return explainer.integratedGradientsShare(options, earlier);
  },
  integratedGradientsFromShares({ shares }) {
    return explainer.integratedGradientsFromShares(shares);
  },
  start({ options }) {
    explainer.start(options);
    return null;
  },
  // One micro-batch, then the running map: awaiting smoothed() is the sync point. When workers
  // share the run, `others` are the other workers' latest sums (merged into the map) and this
  // worker's own sums come back for them.
  async step({ smoothing, others }) {
    const { done, total } = plain(explainer.step(), ['done', 'total']);
    const sums = others ? plain(await explainer.sums(), ['count', 'sum', 'sumOfSquares']) : undefined;
    const map = await explainer.smoothed(smoothing, others);
    return { done, total, map, sums };
  },
  smoothed({ smoothing, others }) {
    return explainer.smoothed(smoothing, others);
  },
  // The map of each of `smoothings` (api.js's SMOOTHINGS).
  async smoothedAll({ others, smoothings }) {
    const maps = {};
    for (const smoothing of smoothings) maps[smoothing] = await explainer.smoothed(smoothing, others);
    return maps;
  },
  render({ map, options }) {
    return explainer.render(map, options);
  },
  // Test hook (e2e): the next call of `op` (after `after` more that succeed) fails exactly like a
  // wasm trap with `message` as the Rust panic message, so the page's restart path can be
  // exercised without exhausting a GPU.
  simulateTrap({ op, message, after = 0 }) {
    simulated = { op, message, after };
    return null;
  },
};

function transferables(result) {
  const list = [];
  const add = (v) => {
    if (ArrayBuffer.isView(v) && !list.includes(v.buffer)) list.push(v.buffer);
  };
  if (result && typeof result === 'object') {
    add(result);
    for (const v of Object.values(result)) {
      add(v);
      if (v && typeof v === 'object' && !ArrayBuffer.isView(v)) Object.values(v).forEach(add);
    }
  }
  return list;
}

function describe(e) {
  if (e?.name === 'Trap') return { name: 'Trap', message: e.message, trap: true, panic: trapped };
  const isTrap = e instanceof WebAssembly.RuntimeError || e?.simulatedTrap === true;
  if (isTrap) {
    // The first trap's panic says why: a GPU out of memory is often followed by more errors
    // (about the buffer that was never made), each a panic of its own.
    if (trapped === null) {
      let panic = e.simulatedTrap ? e.message : undefined;
      if (panic === undefined) {
        try { panic = wasm?.takePanicMessage?.(); } catch { /* the instance is gone */ }
      }
      trapped = panic ?? String(e?.message ?? e);
    }
    return { name: 'Trap', message: String(e?.message ?? e), trap: true, panic: trapped };
  }
  if (e instanceof Error) return { name: e.name || 'Error', message: e.message, trap: false };
  // wasm-bindgen can throw plain values (a string, a JsValue object).
  if (e && typeof e === 'object' && 'message' in e) {
    return { name: e.name || 'Error', message: String(e.message), trap: false };
  }
  return { name: 'Error', message: String(e), trap: false };
}

let queue = Promise.resolve();
let running = null; // the id of the call in flight

// A panic in code the browser calls back (wgpu's error handler, a future woken by a GPU promise)
// traps outside any call, and the call waiting for that code is never answered: it is answered
// here as trapped, so that the page replaces this worker (its later calls are cut off with it).
function trappedOutside(error) {
  if (!(error instanceof WebAssembly.RuntimeError)) return false;
  const described = describe(error);
  if (running !== null) self.postMessage({ id: running, ok: false, error: described });
  return true;
}
self.addEventListener('error', (event) => {
  if (trappedOutside(event.error)) event.preventDefault();
});
self.addEventListener('unhandledrejection', (event) => {
  if (trappedOutside(event.reason)) event.preventDefault();
});

self.onmessage = (event) => {
  const { id, op, args } = event.data;
  queue = queue.then(async () => {
    running = id;
    try {
      if (!(op in ops)) throw Object.assign(new Error(`unknown operation ${op}`), { name: 'StateError' });
      if (trapped !== null) {
        throw Object.assign(new Error(`the WebAssembly instance stopped after: ${trapped}`), { name: 'Trap' });
      }
      if (op !== 'init' && op !== 'simulateTrap' && explainer === null) {
        throw Object.assign(new Error('the model is not initialised yet'), { name: 'StateError' });
      }
      if (simulated?.op === op && simulated.after > 0) {
        simulated.after -= 1;
      } else if (simulated?.op === op) {
        const message = simulated.message;
        simulated = null;
        throw Object.assign(new Error(message), { simulatedTrap: true });
      }
      const result = await ops[op](args ?? {});
      self.postMessage({ id, ok: true, result }, transferables(result));
    } catch (e) {
      self.postMessage({ id, ok: false, error: describe(e) });
    } finally {
      running = null;
    }
  });
};
