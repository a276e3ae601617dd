// The demo page: wires index.html's controls to www/api.js (the same API course pages use).
// URL parameters (all optional; the page writes its settings back so a view can be shared):
//   backend=auto|webgpu|cpu  precision=f32|f16  weights=<url>  image=<url>  target=<class index>
//   methods=gradient,guided-backprop,...  samples=50  noise=15 (% of the range)  microBatch=auto|N
//   seed=0  igSteps=50  smoothing=mean|mean-of-squares|variance|abs-mean
//   sign=abs|positive|negative|signed  clip=99  gamma=1  colormap=viridis|grey|red-blue  overlay=0..1
//   autorun=1|0 (run SmoothGrad after each new image or target; default 1)
// For tests and the console, window.__smoothgrad mirrors the page's state and results.

import {
  SmoothGrad, SmoothGradError, METHODS, METHOD_NAMES, SMOOTHINGS, DEFAULT_DISPLAY, PRECISIONS, BACKENDS, className,
  autoMicroBatch, MAX_IMAGE_BYTES, MAX_IG_STEPS, WEBGPU_BROWSERS, withoutFullStop,
} from './api.js';
import { IMAGENET_CLASSES } from './imagenet-classes.js';

const $ = (id) => document.getElementById(id);
const here = new URL('.', import.meta.url); // .../www/
const SAMPLE_IMAGES = [
  { file: 'chelsea.png', label: 'cat' },
  { file: 'coffee.png', label: 'coffee' },
  { file: 'astronaut.png', label: 'astronaut' },
  { file: 'rocket.jpg', label: 'rocket' },
];
const KIND_TITLES = {
  ImageError: 'That image cannot be used',
  WeightsError: 'Those weights cannot be used',
  OptionsError: 'Invalid setting',
  TargetError: 'Invalid target class',
  StateError: 'Not ready',
  BackendError: 'The model could not start',
  DeviceError: 'The GPU failed',
  NetworkError: 'Download failed',
  OutOfMemory: 'Out of memory',
  DeviceLost: 'GPU device lost',
  Crash: 'The model stopped',
};

const params = new URLSearchParams(location.search);

// Everything a test (or a curious student in the console) may read.
const exposed = {
  status: 'starting', backend: null, backendReason: null, model: null, weights: null,
  image: null, probabilities: null, top5: null, target: null,
  maps: {}, smoothgrad: {}, runs: {}, messages: [], errors: [], lastError: null,
  completed: 0, api: null,
};
window.__smoothgrad = exposed;

const state = {
  sg: null,
  hasImage: false,
  userTarget: null, // a class index the user chose, or null for the top-1
  maps: {}, // method → plain map (Float32Array)
  plainIgSteps: null, // the Integrated Gradients steps of the plain map shown
  smooth: {}, // method → {maps: {smoothing → Float32Array}, running, params}
  generation: 0,
  stoppedGeneration: null, // the task whose SmoothGrad the user stopped
  task: Promise.resolve(),
  picked: { image: false, weights: false }, // chosen by the user: the defaults then stay unloaded
  failedWeights: null, // {source, label} of the last weights that did not load: what Retry tries
};

// ---------------------------------------------------------------- status messages

function say(text, level = 'info') {
  const entry = { level, text, time: new Date().toISOString() };
  exposed.messages.push(entry);
  const line = document.createElement('p');
  line.className = level;
  line.textContent = text;
  const status = $('status');
  status.prepend(line);
  while (status.children.length > 4) status.lastElementChild.remove();
}

function showError(error, context) {
  const kind = error instanceof SmoothGradError ? error.kind : (error?.name || 'Error');
  const title = KIND_TITLES[kind] || 'Something went wrong';
  const message = error?.message ?? String(error);
  exposed.errors.push({ kind, message, context });
  exposed.lastError = { kind, message, context };
  say(`${title}: ${message}`, 'error');
  if (!(error instanceof SmoothGradError)) console.error(error);
}

function setStatus(status) {
  exposed.status = status;
  document.body.dataset.status = status;
}

// ---------------------------------------------------------------- controls and URL

const controls = {
  methods: () => [...document.querySelectorAll('input[name=method]')].filter((c) => c.checked).map((c) => c.value),
  smoothing: () => $('smoothing').value,
  display: () => ({
    sign: $('sign').value,
    clipPercentile: displayNumber('clip', 'clip percentile', (x) => x >= 0 && x <= 100, 'a number from 0 to 100'),
    gamma: displayNumber('gamma', 'gamma', (x) => x > 0, 'a number > 0'),
    colormap: $('colormap').value,
    overlay: displayNumber('overlay', 'overlay', (x) => x >= 0 && x <= 1, 'a number from 0 to 1'),
  }),
};

/** A display field's number; one the renderer would refuse (an emptied box, gamma 0) is put back
 * to the page's default with a warning, so every map still draws. */
function displayNumber(id, name, valid, range) {
  const field = $(id);
  const value = Number(field.value);
  if (field.value.trim() !== '' && Number.isFinite(value) && valid(value)) return value;
  say(`${name} must be ${range} (got “${field.value}”): using ${field.defaultValue}.`, 'warn');
  field.value = field.defaultValue;
  return Number(field.defaultValue);
}

function applyParams() {
  const ignored = (key, value, choices, kept) => say(`Unknown ${key} “${value}” in the address (use ${choices}): ${kept}.`, 'warn');
  const set = (id, key) => {
    if (!params.has(key)) return;
    const field = $(id);
    const value = params.get(key);
    const choices = field.tagName === 'SELECT' ? [...field.options].map((option) => option.value) : null;
    if (choices && !choices.includes(value)) return ignored(key, value, choices.join(', '), `keeping ${field.value}`);
    // A number the run would refuse keeps the default now, rather than failing the first run.
    try {
      RUN_FIELDS[id]?.(value);
    } catch (error) {
      return say(`${withoutFullStop(error.message)} in the address: keeping ${field.value}.`, 'warn');
    }
    field.value = value;
  };
  set('samples-n', 'samples');
  set('noise', 'noise');
  set('micro-batch', 'microBatch');
  set('seed', 'seed');
  set('ig-steps', 'igSteps');
  set('smoothing', 'smoothing');
  set('sign', 'sign');
  set('clip', 'clip');
  set('gamma', 'gamma');
  set('colormap', 'colormap');
  set('overlay', 'overlay');
  if (params.has('methods')) {
    const wanted = params.get('methods').split(',');
    const unknown = wanted.filter((method) => !METHODS.includes(method));
    if (unknown.length) ignored('method', unknown.join(','), METHODS.join(', '), 'left out');
    if (unknown.length < wanted.length) {
      for (const box of document.querySelectorAll('input[name=method]')) box.checked = wanted.includes(box.value);
    }
  }
  const target = params.get('target') ?? '';
  if (/^\d+$/.test(target)) {
    state.userTarget = Number(target);
    $('target').value = target;
  } else if (target !== '') {
    ignored('target', target, 'a class number', 'explaining the top-1 class');
  }
}

function syncUrl() {
  const p = new URLSearchParams();
  for (const key of ['backend', 'precision', 'weights', 'image']) if (params.has(key)) p.set(key, params.get(key));
  if (state.userTarget !== null) p.set('target', String(state.userTarget));
  p.set('methods', controls.methods().join(','));
  p.set('samples', $('samples-n').value);
  p.set('noise', $('noise').value);
  p.set('microBatch', $('micro-batch').value);
  p.set('seed', $('seed').value);
  if (controls.methods().includes('integrated-gradients')) p.set('igSteps', $('ig-steps').value);
  p.set('smoothing', controls.smoothing());
  const d = controls.display();
  p.set('sign', d.sign);
  p.set('clip', String(d.clipPercentile));
  p.set('gamma', String(d.gamma));
  p.set('colormap', d.colormap);
  p.set('overlay', String(d.overlay));
  if (params.has('autorun')) p.set('autorun', params.get('autorun'));
  for (const [key, value] of p) params.set(key, value);
  history.replaceState(null, '', `${location.pathname}?${p}`);
}

/** Each run setting's form field (by id), read and checked: a wrong value is an OptionsError
 * that names it. */
const RUN_FIELDS = {
  'samples-n': (text) => {
    const n = Number(text);
    if (!Number.isInteger(n) || n < 1) throw badSetting(`samples n must be a whole number ≥ 1 (got “${text}”).`);
    return n;
  },
  noise: (text) => {
    const noise = Number(text);
    if (text.trim() === '' || !Number.isFinite(noise) || noise < 0) throw badSetting(`noise σ must be a number ≥ 0 (% of the input range; the paper uses 15), got “${text}”.`);
    return noise;
  },
  'micro-batch': (text) => {
    const asked = text.trim().toLowerCase();
    if (asked === 'auto' || asked === '') return 'auto';
    const microBatch = Number(asked);
    if (!Number.isInteger(microBatch) || microBatch < 1) throw badSetting(`micro-batch must be “auto” or a whole number ≥ 1 (got “${text}”).`);
    return microBatch;
  },
  seed: (text) => {
    const seed = Number(text);
    if (!Number.isInteger(seed) || seed < 0 || seed > Number.MAX_SAFE_INTEGER) throw badSetting(`seed must be a whole number ≥ 0 (got “${text}”).`);
    return seed;
  },
  // The core refuses more than MAX_IG_STEPS.
  'ig-steps': (text) => {
    const igSteps = Number(text);
    if (!Number.isInteger(igSteps) || igSteps < 1 || igSteps > MAX_IG_STEPS) {
      throw badSetting(`IG steps must be a whole number from 1 to ${MAX_IG_STEPS} (got “${text}”).`);
    }
    return igSteps;
  },
};

const badSetting = (message) => new SmoothGradError('OptionsError', message);
const readField = (id) => RUN_FIELDS[id]($(id).value);

/** The form's SmoothGrad settings, checked; throws an OptionsError naming the bad field. */
function readRunOptions() {
  const samples = readField('samples-n');
  const noiseLevel = readField('noise') / 100;
  const microBatch = readField('micro-batch');
  const seed = readField('seed');
  // Checked only when Integrated Gradients runs: a bad value there does not stop the others.
  const igSteps = controls.methods().includes('integrated-gradients') ? readField('ig-steps') : undefined;
  return { samples, noiseLevel, microBatch, seed, igSteps };
}

// ---------------------------------------------------------------- the map grid

const figures = {}; // key ('input' | method | 'sg:' + method) → {figure, canvas}

function figure(key, title, exportable) {
  const fig = document.createElement('figure');
  fig.dataset.key = key;
  const canvas = document.createElement('canvas');
  canvas.width = 224;
  canvas.height = 224;
  canvas.id = `canvas-${key.replace(':', '-')}`;
  const caption = document.createElement('figcaption');
  const name = document.createElement('span');
  name.textContent = title;
  caption.append(name);
  if (exportable) {
    const tools = document.createElement('span');
    tools.className = 'export';
    for (const [label, fn] of [['PNG', exportPng], ['.f32', exportF32], ['.json', exportJson]]) {
      const button = document.createElement('button');
      button.type = 'button';
      button.textContent = label;
      button.title = `download this map as ${label}`;
      button.addEventListener('click', () => fn(key).catch((e) => showError(e)));
      tools.append(button);
    }
    caption.append(tools);
  }
  fig.append(canvas, caption);
  figures[key] = { figure: fig, canvas };
  return fig;
}

function buildGrid() {
  const grid = $('maps');
  grid.append(figure('input', 'Input (the 224×224 crop the model sees)', false));
  for (const method of METHODS) {
    grid.append(figure(method, METHOD_NAMES[method], true));
    grid.append(figure(`sg:${method}`, `SmoothGrad + ${METHOD_NAMES[method]}`, true));
  }
  layoutGrid();
}

function layoutGrid() {
  const enabled = controls.methods();
  let row = 1;
  for (const method of METHODS) {
    const on = enabled.includes(method);
    for (const [key, column] of [[method, 2], [`sg:${method}`, 3]]) {
      const f = figures[key].figure;
      f.hidden = !on;
      f.style.gridRow = String(row);
      f.style.gridColumn = String(column);
    }
    if (on) row += 1;
  }
  figures.input.figure.style.gridRow = '1';
  figures.input.figure.style.gridColumn = '1';
}

function mapFor(key) {
  if (key.startsWith('sg:')) {
    const run = state.smooth[key.slice(3)];
    if (!run) return null;
    return run.maps?.[controls.smoothing()] ?? run.running;
  }
  return state.maps[key] ?? null;
}

async function draw(key) {
  const map = mapFor(key);
  const { canvas } = figures[key];
  if (!map) {
    canvas.getContext('2d').clearRect(0, 0, canvas.width, canvas.height);
    return;
  }
  await state.sg.render(map, canvas, controls.display());
}

function redrawAll() {
  const keys = Object.keys(figures).filter((k) => k !== 'input' && !figures[k].figure.hidden);
  return Promise.all(keys.map((k) => draw(k).catch((e) => showError(e, 'render'))));
}

function clearMaps() {
  state.maps = {};
  exposed.maps = {};
  clearCanvases((key) => key !== 'input');
  clearSmoothGrad();
}

/** The SmoothGrad maps, when what they explain (image or target) is no longer what is shown. */
function clearSmoothGrad() {
  state.smooth = {};
  exposed.smoothgrad = {};
  exposed.runs = {};
  clearCanvases((key) => key.startsWith('sg:'));
}

function clearCanvases(which) {
  for (const [key, { canvas }] of Object.entries(figures)) {
    if (which(key)) canvas.getContext('2d').clearRect(0, 0, canvas.width, canvas.height);
  }
}

// ---------------------------------------------------------------- exports

function download(blob, name) {
  const a = document.createElement('a');
  a.href = URL.createObjectURL(blob);
  a.download = name;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(a.href), 10_000);
}

function describeMap(key) {
  const sg = key.startsWith('sg:');
  const method = sg ? key.slice(3) : key;
  const run = sg ? state.smooth[method] : null;
  // What the map was computed with, not what the form says now.
  const target = run?.params?.target ?? exposed.target;
  const info = {
    map: sg ? `SmoothGrad + ${METHOD_NAMES[method]}` : METHOD_NAMES[method],
    method,
    smoothgrad: sg,
    shape: [3, 224, 224], layout: 'CHW (channel-major), per channel of the normalised input image',
    dtype: 'float32, little-endian',
    target,
    targetName: target === null ? null : className(target, exposed.model?.numClasses),
    image: exposed.image,
    model: exposed.model,
    weights: exposed.weights,
    backend: exposed.backend,
    precision: exposed.precision,
    display: controls.display(),
    url: location.href,
  };
  if (sg && run) Object.assign(info, { smoothing: controls.smoothing(), ...run.params });
  if (method === 'integrated-gradients') info.igSteps = run?.params?.igSteps ?? state.plainIgSteps;
  return info;
}

function fileStem(key) {
  const info = describeMap(key);
  const parts = [info.smoothgrad ? `smoothgrad-${info.method}-${info.smoothing}` : info.method, `class${info.target}`];
  if (info.smoothgrad) parts.push(`n${info.samples}`, `sigma${info.noiseLevel}`, `seed${info.seed}`);
  return parts.join('_');
}

async function exportPng(key) {
  if (!mapFor(key)) throw new SmoothGradError('StateError', 'That map is not computed yet.');
  const blob = await new Promise((resolve) => figures[key].canvas.toBlob(resolve, 'image/png'));
  download(blob, `${fileStem(key)}.png`);
}

async function exportF32(key) {
  const map = mapFor(key);
  if (!map) throw new SmoothGradError('StateError', 'That map is not computed yet.');
  const bytes = new DataView(new ArrayBuffer(map.length * 4));
  map.forEach((v, i) => bytes.setFloat32(i * 4, v, true));
  download(new Blob([bytes.buffer], { type: 'application/octet-stream' }), `${fileStem(key)}.f32`);
}

async function exportJson(key) {
  if (!mapFor(key)) throw new SmoothGradError('StateError', 'That map is not computed yet.');
  const json = JSON.stringify({ ...describeMap(key), data: `${fileStem(key)}.f32` }, null, 2);
  download(new Blob([json], { type: 'application/json' }), `${fileStem(key)}.json`);
}

// ---------------------------------------------------------------- the work (one task at a time)

/** Stops whatever runs and queues `fn`, given its generation number. Every task runs, so no
 * image or weights the user chose is dropped, but it should skip its analysis when a newer task
 * was scheduled (`analyse` does). Controls stay usable meanwhile. */
function schedule(fn) {
  state.generation += 1;
  const generation = state.generation;
  state.sg?.stop();
  state.task = state.task.catch(() => {}).then(async () => {
    if (!state.sg) return; // the backend did not start: that error is shown already
    setStatus('busy');
    try {
      await fn(generation);
    } catch (e) {
      showError(e);
    } finally {
      if (generation === state.generation) {
        setStatus('idle');
        $('stop').disabled = true;
      }
      exposed.completed += 1;
    }
  });
  return state.task;
}

const current = (generation) => generation === state.generation;

function showTop5(classification) {
  const list = $('top5');
  list.replaceChildren();
  for (const { index, name, probability } of classification.top) {
    const li = document.createElement('li');
    const button = document.createElement('button');
    button.type = 'button';
    button.className = 'class-choice';
    button.dataset.index = String(index);
    button.textContent = name;
    button.title = `explain class ${index} (${name})`;
    button.addEventListener('click', () => chooseTarget(index));
    const p = document.createElement('span');
    p.className = 'probability';
    p.textContent = probability < 1e-5 ? '< 0.001 %' : `${(probability * 100).toFixed(probability < 0.001 ? 3 : 1)} %`;
    li.append(button, ' ', p);
    list.append(li);
  }
  markTarget();
}

function markTarget() {
  for (const button of document.querySelectorAll('#top5 .class-choice')) {
    button.classList.toggle('target', Number(button.dataset.index) === exposed.target);
  }
}

function fillClassNames(numClasses) {
  const list = $('class-names');
  list.replaceChildren();
  for (let i = 0; i < numClasses; i += 1) {
    const option = document.createElement('option');
    option.value = `${i}: ${className(i, numClasses)}`;
    list.append(option);
  }
}

/** Classifies (when asked), computes the plain maps, then SmoothGrad (when autorun). */
async function analyse(generation, { classify = true, smoothgrad = autorun() } = {}) {
  const sg = state.sg;
  if (!current(generation) || !sg.model || !state.hasImage) return;
  let attribution = null; // a ticked method's map of the top-1, from classify's own pass
  if (classify || !sg.lastClassification) {
    // Integrated Gradients has no pass at the clean image to share (and its steps are checked
    // below, after the classes are shown).
    const shared = state.userTarget === null ? controls.methods().find((m) => m !== 'integrated-gradients') : undefined;
    const classification = await classifyWithMap(sg, shared);
    if (!current(generation)) return;
    attribution = classification.attribution ?? null;
    exposed.probabilities = classification.probabilities;
    exposed.top5 = classification.top;
    showTop5(classification);
  }
  const top1 = sg.lastClassification.top[0].index;
  const target = state.userTarget ?? top1;
  if (target !== exposed.target) clearSmoothGrad();
  exposed.target = target;
  markTarget();
  if (state.userTarget === null) $('target').placeholder = `top-1: ${top1}: ${className(top1, sg.model.numClasses)}`;
  state.maps = {};
  exposed.maps = {};
  // Read after classifying: a box unticked meanwhile starts no new analysis, so this one obeys it.
  const methods = controls.methods();
  const igSteps = methods.includes('integrated-gradients') ? readField('ig-steps') : undefined;
  state.plainIgSteps = igSteps ?? null;
  for (const method of methods) {
    const map = attribution?.method === method && attribution.target === target
      ? attribution.map : await plainMap(sg, { method, target, igSteps }, generation);
    if (!current(generation)) return;
    if (!map) {
      // Stopped: the methods not mapped this time show nothing rather than an older map.
      clearCanvases((key) => METHODS.includes(key) && !(key in state.maps));
      return;
    }
    state.maps[method] = map;
    exposed.maps[method] = map;
    await draw(method);
  }
  if (smoothgrad) await runSmoothGrad(generation);
}

/** `asked.method`'s plain map. Integrated Gradients' takes a pass per 10 steps (16–30 s for 50
 * on a CPU): its progress shows, and Stop ends it without a map (null). */
async function plainMap(sg, asked, generation) {
  if (asked.method !== 'integrated-gradients') return sg.attribute({ method: asked.method, target: asked.target });
  const label = METHOD_NAMES[asked.method];
  const show = (text, fraction) => current(generation) && showProgress(text, fraction);
  let last = { done: 0, total: asked.igSteps, elapsedMs: 0, workers: 1 };
  $('stop').disabled = false;
  show(`${label}: 0/${asked.igSteps} steps`, 0);
  const map = await sg.attribute({ ...asked, onProgress: (p) => {
    last = p;
    show(`${label}: ${p.done}/${p.total} steps · ${seconds(p.elapsedMs)}${timeLeft(p)}${workersText(p.workers)}`, p.done / p.total);
  } });
  const summary = `${label}: ${last.done}/${last.total} steps in ${seconds(last.elapsedMs)}${workersText(last.workers)}`;
  if (map) {
    show(summary, 1);
  } else if (current(generation)) {
    show(`${summary} — stopped, no map`, last.done / last.total);
    say(`Stopped: ${label} had done ${last.done} of its ${last.total} steps, and a part of the path is no map.`, 'info');
  }
  return map;
}

/** The classes, with `method`'s map of the top-1 from the same pass when a method is given. That
 * pass also goes backward: where it runs out of memory (the model has restarted), the classes
 * are asked for alone, so they show even where no map fits. */
async function classifyWithMap(sg, method) {
  try {
    return await sg.classify(undefined, { attribute: method });
  } catch (error) {
    if (method === undefined || error.kind !== 'OutOfMemory') throw error;
    return sg.classify();
  }
}

const workersText = (workers) => (workers > 1 ? ` · ${workers} workers` : '');
const seconds = (ms) => `${(ms / 1000).toFixed(1)} s`;

/** " · about 12 s left" at the rate so far (`done` of `total` in `elapsedMs`), once there is
 * one. */
function timeLeft({ done, total, elapsedMs }) {
  if (!(done > 0 && done < total && elapsedMs > 0)) return '';
  const left = ((total - done) * elapsedMs) / done / 1000;
  return ` · about ${left < 90 ? `${Math.ceil(left)} s` : `${Math.round(left / 60)} min`} left`;
}

/** The run's progress line, and its bar where `fraction` is given. */
function showProgress(text, fraction) {
  if (fraction !== undefined) $('progress').value = fraction;
  $('progress-text').textContent = text;
}

async function runSmoothGrad(generation) {
  const sg = state.sg;
  const options = readRunOptions();
  const target = exposed.target;
  $('stop').disabled = false;
  for (const methods of runGroups(controls.methods())) {
    if (!current(generation) || state.stoppedGeneration === generation) return;
    const stopped = await runSmoothGradOf(methods, sg, options, target, generation);
    if (stopped) return;
  }
}

/** The ticked methods' SmoothGrad runs: those made from the gradient at the image in one run,
 * where they share each noisy copy's forward pass; Integrated Gradients in a run of its own (its
 * passes are along a path, and ten times as many). */
function runGroups(methods) {
  const shared = methods.filter((method) => method !== 'integrated-gradients');
  const alone = methods.filter((method) => method === 'integrated-gradients');
  return [shared, ...alone.map((method) => [method])].filter((group) => group.length);
}

/** SmoothGrad of `methods` in one run, each map drawn as it goes; whether it was stopped. */
async function runSmoothGradOf(methods, sg, options, target, generation) {
  const label = `SmoothGrad + ${methods.map((method) => METHOD_NAMES[method]).join(', ')}`;
  // Known from the start, so a map exported mid-run says what it is.
  const params = Object.fromEntries(methods.map((method) => [method, { target, samples: options.samples,
    noiseLevel: options.noiseLevel, seed: options.seed, microBatch: null, requestedMicroBatch: options.microBatch, done: 0,
    igSteps: method === 'integrated-gradients' ? options.igSteps : undefined }]));
  for (const method of methods) {
    state.smooth[method] = { maps: null, running: null, params: params[method] };
    exposed.smoothgrad[method] = null;
  }
  const each = (update) => methods.forEach((method) => Object.assign(params[method], update));
  showProgress(`${label}: 0/${options.samples} samples`, 0);
  const result = await sg.explain({
    ...(methods.length > 1 ? { methods } : { method: methods[0] }), target, ...options,
    smoothing: () => controls.smoothing(),
    onProgress: (p) => {
      if (!current(generation)) return;
      const running = p.byMethod ?? { [methods[0]]: p.map };
      for (const method of methods) state.smooth[method].running = running[method];
      each({ done: p.done, microBatch: p.microBatch });
      showProgress(`${label}: ${p.done}/${p.total} samples · ${seconds(p.elapsedMs)}${timeLeft(p)} · ${p.samplesPerSecond.toFixed(2)} samples/s · micro-batch ${p.microBatch}${workersText(p.workers)}`, p.done / p.total);
      for (const method of methods) draw(`sg:${method}`).catch((e) => showError(e, 'render'));
    },
  });
  each({ done: result.done, microBatch: result.microBatch });
  const maps = result.byMethod ?? { [methods[0]]: { map: result.map, maps: result.maps } };
  for (const method of methods) {
    state.smooth[method] = { maps: maps[method].maps, running: maps[method].map, params: params[method] };
    exposed.smoothgrad[method] = maps[method].maps;
    // The run's figures, shared by its methods: `methods` says which ran together.
    exposed.runs[method] = { done: result.done, total: result.total, stopped: result.stopped,
      elapsedMs: result.elapsedMs, samplesPerSecond: result.samplesPerSecond, microBatch: result.microBatch,
      workers: result.workers, methods };
    if (current(generation)) await draw(`sg:${method}`);
  }
  const summary = `${label}: ${result.done}/${result.total} samples in ${seconds(result.elapsedMs)} (${result.samplesPerSecond.toFixed(2)} samples/s, micro-batch ${result.microBatch}${workersText(result.workers)}, ${sg.backend})`;
  showProgress(result.stopped ? `${summary} — stopped` : summary);
  if (result.stopped) say(`Stopped: ${summary}.`, 'info');
  return result.stopped;
}

function autorun() {
  return params.get('autorun') !== '0';
}

// ---------------------------------------------------------------- weights and images

async function loadWeights(source, label) {
  const sg = state.sg;
  $('weights-panel').hidden = false;
  $('weights-failed').hidden = true;
  $('weights-progress-row').hidden = false;
  $('weights-progress').removeAttribute('value');
  $('weights-progress-text').textContent = label ? `loading ${label}…` : 'looking for weights…';
  try {
    const model = await sg.loadWeights(source, {
      onProgress: ({ loaded, total, fromCache, url }) => {
        if (total) $('weights-progress').value = loaded / total;
        const mb = (x) => (x / 1048576).toFixed(1);
        $('weights-progress-text').textContent = fromCache
          ? `${url.split('/').slice(-3).join('/')} from the browser's cache`
          : `${url.split('/').slice(-3).join('/')}: ${mb(loaded)}${total ? ` of ${mb(total)}` : ''} MB`;
      },
    });
    showModel(model, sg.weightsSource);
    $('weights-progress-row').hidden = true;
    state.failedWeights = null;
    return true;
  } catch (e) {
    state.failedWeights = { source, label };
    showError(e, 'weights');
    $('weights-progress-row').hidden = true;
    $('weights-failed').hidden = false;
    if (!sg.model) setModelBadge('no model loaded', 'warn');
    return false;
  }
}

function showModel(model, source) {
  const where = source.random ? 'RANDOM WEIGHTS: the maps mean nothing'
    : source.url ? `${source.url.split('/').slice(-2).join('/')}${source.fromCache ? ' (cached)' : ''}`
      : 'from a file';
  setModelBadge(`${model.architecture}, ${model.numClasses} classes — ${where}`, source.random ? 'warn' : 'ok');
  exposed.model = model;
  exposed.weights = source.random ? 'random' : (source.url ?? 'file');
  fillClassNames(model.numClasses);
  showAutoMicroBatch();
  $('weights-failed').hidden = true;
  if (!source.random) $('weights-panel').hidden = true;
  say(source.random
    ? 'Running with randomly initialised weights: the predictions and maps are meaningless; load real weights to explain anything.'
    : `Loaded ${model.architecture} (${model.numClasses} classes).`, source.random ? 'warn' : 'info');
}

function setModelBadge(text, level) {
  const badge = $('model-badge');
  badge.textContent = text;
  badge.className = `badge ${level}`;
}

/** Loads weights with `load` (true when it worked); once they are in, the address names their
 * `url`, or none for a file or random weights, which a link cannot reproduce. */
function weightsChanged(load, url) {
  state.picked.weights = true;
  return schedule(async (generation) => {
    if (await load()) {
      if (url) params.set('weights', url); else params.delete('weights');
      keepTargetInRange();
      syncUrl();
      clearMaps();
      await analyse(generation);
    }
  });
}

/** A target the loaded model has no class for (the address's, or one typed for other weights)
 * goes back to the top-1, with a warning: every image would fail on it. */
function keepTargetInRange() {
  const classes = state.sg.model.numClasses;
  if (state.userTarget === null || state.userTarget < classes) return;
  say(`Target ${state.userTarget} is not a class of this model (0–${classes - 1}): explaining the top-1 class.`, 'warn');
  state.userTarget = null;
  $('target').value = '';
  syncUrl();
}

async function readImageSource(source) {
  if (source instanceof Blob) {
    if (source.size > MAX_IMAGE_BYTES) {
      throw new SmoothGradError('ImageError', `“${source.name ?? 'the image'}” is ${(source.size / 1048576).toFixed(0)} MB; the limit is ${MAX_IMAGE_BYTES / 1048576} MB. Use a smaller photo (the model sees 224×224 pixels anyway).`);
    }
    return { bytes: new Uint8Array(await source.arrayBuffer()), name: source.name || 'pasted image' };
  }
  const url = new URL(source, location.href);
  let response;
  try {
    response = await fetch(url);
  } catch (e) {
    throw new SmoothGradError('NetworkError', `Could not fetch the image ${url}: ${e.message}.`);
  }
  if (!response.ok) throw new SmoothGradError('NetworkError', `Could not fetch the image ${url}: HTTP ${response.status}.`);
  return { bytes: new Uint8Array(await response.arrayBuffer()), name: url.pathname.split('/').pop() };
}

/** A new input image: from a File/Blob (picker, drop, paste) or a URL (samples, ?image=). */
function useImage(source, { urlParam } = {}) {
  state.picked.image = true;
  return schedule(async (generation) => {
    const { bytes, name } = await readImageSource(source);
    const crop = await state.sg.setImage(bytes);
    state.hasImage = true;
    exposed.image = name;
    const canvas = figures.input.canvas;
    canvas.getContext('2d').putImageData(crop, 0, 0);
    figures.input.figure.querySelector('figcaption span').textContent = `Input: ${name} (the 224×224 crop the model sees)`;
    if (urlParam) params.set('image', urlParam); else params.delete('image');
    syncUrl();
    clearMaps();
    await analyse(generation);
  });
}

function chooseTarget(index) {
  state.userTarget = index;
  $('target').value = `${index}: ${className(index, state.sg.model?.numClasses ?? 1000)}`;
  syncUrl();
  return schedule((generation) => analyse(generation, { classify: false }));
}

function parseTarget(text) {
  const value = text.trim();
  if (value === '') return null;
  const numeric = /^(-?\d+)\s*(:.*)?$/.exec(value);
  if (numeric) return Number(numeric[1]);
  const numClasses = state.sg?.model?.numClasses ?? 1000; // the backend may still be starting
  const lower = value.toLowerCase();
  for (let i = 0; i < numClasses; i += 1) if (className(i, numClasses).toLowerCase() === lower) return i;
  throw new SmoothGradError('TargetError', `No class is called “${value}”; pick one from the list or type its number (0–${numClasses - 1}).`);
}

// ---------------------------------------------------------------- wiring

function wire() {
  const samples = $('samples');
  for (const { file, label } of SAMPLE_IMAGES) {
    const button = document.createElement('button');
    button.type = 'button';
    button.className = 'sample';
    button.dataset.sample = file;
    button.title = `use the sample photo ${file}`;
    const img = document.createElement('img');
    img.src = new URL(`samples/${file}`, here).href;
    img.alt = label;
    img.loading = 'lazy';
    button.append(img);
    button.addEventListener('click', () => useImage(new URL(`samples/${file}`, here).href, { urlParam: `www/samples/${file}` }));
    samples.append(button);
  }
  $('image-file').addEventListener('change', (e) => {
    const file = e.target.files?.[0];
    if (file) useImage(file);
    e.target.value = '';
  });
  document.addEventListener('dragover', (e) => { e.preventDefault(); document.body.classList.add('dragging'); });
  document.addEventListener('dragleave', (e) => { if (!e.relatedTarget) document.body.classList.remove('dragging'); });
  document.addEventListener('drop', (e) => {
    e.preventDefault();
    document.body.classList.remove('dragging');
    const file = e.dataTransfer?.files?.[0];
    if (file) useImage(file);
    else say('Drop an image file (PNG, JPEG, WebP, GIF or BMP).', 'warn');
  });
  document.addEventListener('paste', (e) => {
    const item = [...(e.clipboardData?.items ?? [])].find((i) => i.kind === 'file');
    const file = item?.getAsFile();
    if (file) { e.preventDefault(); useImage(file); }
  });

  $('target').addEventListener('change', () => {
    try {
      const index = parseTarget($('target').value);
      state.userTarget = index;
      syncUrl();
      schedule((generation) => analyse(generation, { classify: false }));
    } catch (e) {
      showError(e);
    }
  });

  $('run').addEventListener('click', () => {
    try {
      readRunOptions();
    } catch (e) {
      showError(e);
      return;
    }
    syncUrl();
    // The plain maps again too: a target typed or a method ticked just before may not have been drawn.
    schedule((generation) => analyse(generation, { classify: false, smoothgrad: true }));
  });
  $('stop').addEventListener('click', () => {
    state.stoppedGeneration = state.generation; // also ends the methods still to come
    state.sg?.stop();
  });
  $('new-seed').addEventListener('click', () => {
    $('seed').value = String(Math.floor(Math.random() * 2 ** 31));
    syncUrl();
  });
  for (const id of ['samples-n', 'noise', 'micro-batch', 'seed', 'ig-steps']) $(id).addEventListener('change', syncUrl);
  $('samples-n').addEventListener('change', showAutoMicroBatch);
  for (const box of document.querySelectorAll('input[name=method]')) {
    box.addEventListener('change', () => {
      layoutGrid();
      showAutoMicroBatch();
      syncUrl();
      if (box.checked && state.sg?.model && state.hasImage) {
        schedule((generation) => analyse(generation, { classify: false }));
      }
    });
  }
  for (const id of ['smoothing', 'sign', 'clip', 'gamma', 'colormap', 'overlay']) {
    $(id).addEventListener(id === 'overlay' ? 'input' : 'change', () => {
      syncUrl();
      if (state.sg) redrawAll();
    });
  }

  $('random-weights').addEventListener('click', () => weightsChanged(async () => {
    try {
      const model = await state.sg.loadRandomWeights(1000);
      showModel(model, state.sg.weightsSource);
      return true;
    } catch (e) {
      showError(e, 'weights');
      return false;
    }
  }));
  $('retry-weights').addEventListener('click', () => {
    const { source, label } = state.failedWeights ?? {};
    weightsChanged(() => loadWeights(source, label), typeof source === 'string' ? source : undefined);
  });
  $('weights-url-load').addEventListener('click', () => {
    const url = $('weights-url').value.trim();
    if (!url) { say('Type the URL of a .safetensors checkpoint first.', 'warn'); return; }
    weightsChanged(() => loadWeights(url, url), url);
  });
  $('weights-file').addEventListener('change', (e) => {
    const file = e.target.files?.[0];
    e.target.value = '';
    if (file) weightsChanged(() => loadWeights(file, file.name));
  });
}

/** The backend badge and what depends on the backend, at the start and after a restart changed it. */
function showBackend() {
  const sg = state.sg;
  exposed.backend = sg.backend;
  exposed.backendReason = sg.backendReason;
  exposed.precision = sg.precision;
  const badge = $('backend-badge');
  const half = sg.precision === 'f16' ? ' · f16' : '';
  badge.textContent = (sg.backend === 'webgpu' ? `WebGPU${sg.adapter?.description ? ` · ${sg.adapter.description}` : ''}` : 'CPU (WebAssembly)') + half;
  badge.title = sg.backendReason ?? '';
  badge.className = `badge ${sg.backend === 'webgpu' ? 'ok' : 'info'}`;
  if (!navigator.gpu && sg.backend === 'cpu') badge.title = `No WebGPU in this browser (${WEBGPU_BROWSERS} have it)`;
  showAutoMicroBatch();
}

async function main() {
  applyParams();
  buildGrid();
  wire();
  const requested = params.get('backend') ?? 'auto';
  if (!BACKENDS.includes(requested)) {
    say(`Unknown backend “${requested}” (use auto, webgpu or cpu): choosing automatically.`, 'warn');
  }
  const precision = params.get('precision') ?? 'f32';
  if (!PRECISIONS.includes(precision)) say(`Unknown precision “${precision}” (use ${PRECISIONS.join(' or ')}): computing in f32.`, 'warn');
  const created = SmoothGrad.create({
    backend: BACKENDS.includes(requested) ? requested : 'auto',
    precision: PRECISIONS.includes(precision) ? precision : 'f32',
    onNotice: (message, level) => say(message, level),
    onBackendChange: () => showBackend(),
  });
  // What the user does while the backend starts waits for it.
  state.task = created.catch(() => {});
  try {
    state.sg = await created;
  } catch (e) {
    showError(e, 'backend');
    setStatus('error');
    $('backend-badge').textContent = 'not running';
    return;
  }
  exposed.api = state.sg;
  showBackend();

  const weightsParam = params.get('weights');
  // The defaults are queued at once, so what the user picks during a long first download comes
  // after them and wins; what was picked while the backend started replaces them.
  if (!state.picked.weights) {
    schedule(async (generation) => {
      if (!(await loadWeights(weightsParam ?? undefined, weightsParam ?? undefined))) return;
      keepTargetInRange();
      await analyse(generation);
    });
  }
  if (state.picked.image) return;
  const image = params.get('image') ?? 'www/samples/chelsea.png';
  await useImage(new URL(image, location.href).href, { urlParam: params.has('image') ? image : undefined });
}

function showAutoMicroBatch() {
  const auto = describeAuto();
  const ig = controls.methods().includes('integrated-gradients') && auto > 1 ? '; 1 for Integrated Gradients' : '';
  $('micro-batch-auto').textContent = auto ? `(auto = ${auto} on ${state.sg.backend === 'webgpu' ? 'this GPU' : 'the CPU'}${ig})` : '';
}

// Micro-batch "auto" is resolved by the API per run; show what it would be for the run of the
// methods that share their forward pass (Gradient's alone where none is ticked).
export function describeAuto() {
  const sg = state.sg;
  const method = runGroups(controls.methods()).find((group) => !group.includes('integrated-gradients')) ?? 'gradient';
  return sg ? autoMicroBatch({ backend: sg.backend, adapter: sg.adapter, model: sg.model, samples: Number($('samples-n').value), precision: sg.precision, method }) : null;
}
exposed.describeAuto = describeAuto;
exposed.smoothings = SMOOTHINGS;
exposed.defaults = DEFAULT_DISPLAY;
exposed.classes = IMAGENET_CLASSES;

main().catch((e) => { showError(e); setStatus('error'); });
