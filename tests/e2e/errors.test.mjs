// Every error a user must recover from, provoked on the page (the fixture model, on the CPU
// backend: the same wasm and the same checks as on WebGPU, where SwiftShader would make each
// classification take seconds; restart.test.mjs covers the WebGPU-only failures): each gets a
// clear message in the status area, and the page still works afterwards.
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { writeFile, rm, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { useSite, openPage, pageState, statusText, waitForTasks, completed, badInputs, outputDir } from './harness.mjs';

const QUERY = new URLSearchParams({
  backend: 'cpu', weights: '/fixtures/narrow_resnet50.safetensors', image: '/fixtures/chelsea.png',
  methods: 'gradient', samples: '4', microBatch: '2', seed: '3', autorun: '0',
});
const site = useSite({ query: QUERY });
let bad;
before(async () => {
  bad = await badInputs();
});
const state = () => pageState(site.page);

/** Runs `act`, waits for the page's task, expects an error of `kind` whose message matches `pattern`. */
async function expectError(act, kind, pattern) {
  const before = await state();
  await act();
  await site.page.waitForFunction((n) => window.__smoothgrad.errors.length > n && window.__smoothgrad.status !== 'busy', before.errors, { timeout: 120_000 });
  const after = await state();
  console.log(`${after.lastError.kind}: ${after.lastError.message}`);
  assert.equal(after.lastError.kind, kind, JSON.stringify(after.lastError));
  assert.match(after.lastError.message, pattern);
  assert.match(await statusText(site.page), pattern); // shown on the page, not only in the console
  return after;
}

/** The page still works: the cat is classified again, with the same probabilities. */
async function stillUsable(reference) {
  const n = await completed(site.page);
  await site.page.locator('button.sample[data-sample="chelsea.png"]').click();
  await waitForTasks(site.page, n + 1, 120_000);
  const s = await state();
  assert.equal(s.probabilities.length, 10);
  if (reference) assert.deepEqual(s.probabilities, reference);
}

let catProbabilities;

test('the page starts: fixture weights by URL, the cat classified', async () => {
  const s = await state();
  assert.equal(s.model.numClasses, 10);
  assert.equal(s.lastError, null);
  catProbabilities = s.probabilities;
});

test('a file that is not an image', async () => {
  await expectError(() => site.page.setInputFiles('#image-file', { name: 'notes.txt', mimeType: 'text/plain', buffer: bad['notes.txt'] }),
    'ImageError', /image/i);
  await stillUsable(catProbabilities);
});

test('a corrupt image (truncated PNG)', async () => {
  await expectError(() => site.page.setInputFiles('#image-file', { name: 'corrupt.png', mimeType: 'image/png', buffer: bad['corrupt.png'] }),
    'ImageError', /./);
  await stillUsable(catProbabilities);
});

test('a huge image: 100000×100000 pixels in the header', async () => {
  await expectError(() => site.page.setInputFiles('#image-file', { name: 'huge.png', mimeType: 'image/png', buffer: bad['huge.png'] }),
    'ImageError', /too many pixels/);
  await stillUsable(catProbabilities);
});

test('a huge image file: over the 50 MB limit', async () => {
  const file = join(await outputDir(), 'big.bmp');
  await writeFile(file, Buffer.alloc(51 * 1024 * 1024));
  await expectError(() => site.page.setInputFiles('#image-file', file), 'ImageError', /MB; the limit is 50 MB/);
  await rm(file);
  await stillUsable(catProbabilities);
});

test('truncated weights: a clear message, random weights offered, the old model kept', async () => {
  await site.page.fill('#weights-url', '/gen/truncated.safetensors');
  await expectError(() => site.page.click('#weights-url-load'), 'WeightsError', /truncated: \d+ bytes of the \d+ its header announces/);
  assert.equal(await site.page.locator('#random-weights').isVisible(), true);
  assert.match(await site.page.locator('#random-weights').textContent(), /random weights/);
  // The address still names the weights in use, so a reload or a shared link gets them.
  assert.equal(new URL(site.page.url()).searchParams.get('weights'), '/fixtures/narrow_resnet50.safetensors');
  await stillUsable(catProbabilities);
});

test('weights with bytes appended: not called truncated', async () => {
  await site.page.fill('#weights-url', '/gen/appended.safetensors');
  await expectError(() => site.page.click('#weights-url-load'), 'WeightsError', /has 35 bytes more than the \d+ its header announces/);
  await stillUsable(catProbabilities);
});

test('weights of another model (not a ResNet checkpoint)', async () => {
  await site.page.fill('#weights-url', '/fixtures/reference.safetensors');
  await expectError(() => site.page.click('#weights-url-load'), 'WeightsError', /./);
  await stillUsable(catProbabilities);
});

test('weights that cannot be downloaded (404)', async () => {
  await site.page.fill('#weights-url', '/fixtures/no-such-file.safetensors');
  await expectError(() => site.page.click('#weights-url-load'), 'NetworkError', /HTTP 404/);
  // "Try the download again" tries that file, not the weights still in use.
  assert.equal(await site.page.locator('#retry-weights').isVisible(), true);
  await expectError(() => site.page.click('#retry-weights'), 'NetworkError', /no-such-file\.safetensors: HTTP 404/);
  // Recover by loading good weights from the same field.
  const n = await completed(site.page);
  await site.page.fill('#weights-url', '/fixtures/narrow_resnet50.safetensors');
  await site.page.click('#weights-url-load');
  await waitForTasks(site.page, n + 1);
  assert.deepEqual((await state()).probabilities, catProbabilities);
});

test('nonsense parameters in the form: n = 0, σ < 0, σ empty, micro-batch 0', async () => {
  for (const [id, value, pattern] of [
    ['#samples-n', '0', /samples n must be a whole number ≥ 1/],
    ['#noise', '-5', /noise σ must be a number ≥ 0/],
    ['#noise', '', /noise σ must be a number ≥ 0/],
    ['#micro-batch', '0', /micro-batch must be “auto” or a whole number ≥ 1/],
  ]) {
    const saved = await site.page.inputValue(id);
    await site.page.fill(id, value);
    const before = (await state()).errors;
    await site.page.click('#run');
    await site.page.waitForFunction((n) => window.__smoothgrad.errors.length > n, before);
    const s = await state();
    assert.equal(s.lastError.kind, 'OptionsError');
    assert.match(s.lastError.message, pattern);
    assert.match(await statusText(site.page), pattern);
    await site.page.fill(id, saved);
  }
});

test('IG steps over 4096: refused where Integrated Gradients runs, and only there', async () => {
  await site.page.fill('#ig-steps', '5000');
  const before = await state();
  await site.page.click('#run');
  await waitForTasks(site.page, before.completed + 1);
  assert.equal((await state()).errors, before.errors, 'a gradient-only run does not read the IG steps');
  const ig = 'input[name=method][value=integrated-gradients]';
  await expectError(() => site.page.check(ig), 'OptionsError', /IG steps must be a whole number from 1 to 4096 \(got “5000”\)/);
  await site.page.uncheck(ig);
  await site.page.fill('#ig-steps', '50');
  await stillUsable(catProbabilities);
});

test('display settings the renderer refuses (gamma emptied or 0, clip 150): the default back with a warning, every map drawn', async () => {
  for (const [id, value, pattern, fallback] of [
    ['#gamma', '', /gamma must be a number > 0 \(got “”\): using 1\./, '1'],
    ['#gamma', '0', /gamma must be a number > 0 \(got “0”\): using 1\./, '1'],
    ['#clip', '150', /clip percentile must be a number from 0 to 100 \(got “150”\): using 99\./, '99'],
  ]) {
    const before = await state();
    await site.page.fill(id, value);
    await site.page.dispatchEvent(id, 'change');
    await site.page.waitForFunction((n) => window.__smoothgrad.messages.length > n, before.messages.length);
    const s = await state();
    assert.match(s.messages.join('\n'), pattern);
    assert.equal(await site.page.inputValue(id), fallback);
    assert.equal(s.errors, before.errors, JSON.stringify(s.lastError));
  }
  // A new analysis draws its maps with the restored settings (a refused render stopped it before).
  await stillUsable(catProbabilities);
  assert.deepEqual(await site.page.evaluate(() => Object.keys(window.__smoothgrad.maps)), ['gradient']);
});

test('nonsense parameters in the address: each named in a warning, the defaults kept, the page drawing', async () => {
  const q = new URLSearchParams(QUERY);
  for (const [key, value] of [['sign', 'sideways'], ['colormap', 'rainbow'], ['methods', 'gradient,saliency'], ['target', 'cat']]) q.set(key, value);
  const { page, context, errors } = await openPage(site.browser, `${site.server.url}/?${q}`);
  await waitForTasks(page, 2);
  const s = await page.evaluate(() => ({
    messages: window.__smoothgrad.messages.map((m) => m.text).join('\n'), lastError: window.__smoothgrad.lastError,
    target: window.__smoothgrad.target, top1: window.__smoothgrad.top5[0].index, drawn: Object.keys(window.__smoothgrad.maps),
  }));
  assert.match(s.messages, /Unknown sign “sideways” in the address \(use abs, .*\): keeping abs\./);
  assert.match(s.messages, /Unknown colormap “rainbow” in the address .*: keeping viridis\./);
  assert.match(s.messages, /Unknown method “saliency” in the address .*: left out\./);
  assert.match(s.messages, /Unknown target “cat” in the address \(use a class number\): explaining the top-1 class\./);
  assert.equal(s.lastError, null, JSON.stringify(s.lastError));
  assert.equal(s.target, s.top1);
  assert.deepEqual(s.drawn, ['gradient']);
  const address = new URL(page.url()).searchParams;
  assert.deepEqual([address.get('sign'), address.get('colormap'), address.get('methods'), address.get('target')], ['abs', 'viridis', 'gradient', null]);
  assert.deepEqual(errors, []);
  await context.close();
});

test('numbers in the address that a run would refuse, and a target the model has no class for: each named in a warning, the default kept', async () => {
  const q = new URLSearchParams(QUERY);
  const asked = { samples: '0', noise: '-5', microBatch: 'fast', seed: '-1', igSteps: '9999', target: '5000', methods: 'gradient,integrated-gradients' };
  for (const [key, value] of Object.entries(asked)) q.set(key, value);
  const { page, context, errors } = await openPage(site.browser, `${site.server.url}/?${q}`);
  await waitForTasks(page, 2);
  const s = await page.evaluate(() => ({
    messages: window.__smoothgrad.messages.map((m) => m.text).join('\n'), lastError: window.__smoothgrad.lastError,
    target: window.__smoothgrad.target, top1: window.__smoothgrad.top5[0].index,
    fields: ['samples-n', 'noise', 'micro-batch', 'seed', 'ig-steps'].map((id) => document.getElementById(id).value),
  }));
  for (const message of [
    /samples n must be a whole number ≥ 1 \(got “0”\) in the address: keeping 50\./,
    /noise σ must be a number ≥ 0 \(.*\), got “-5” in the address: keeping 15\./,
    /micro-batch must be “auto” or a whole number ≥ 1 \(got “fast”\) in the address: keeping auto\./,
    /seed must be a whole number ≥ 0 \(got “-1”\) in the address: keeping 0\./,
    /IG steps must be a whole number from 1 to 4096 \(got “9999”\) in the address: keeping 50\./,
    /Target 5000 is not a class of this model \(0–9\): explaining the top-1 class\./,
  ]) assert.match(s.messages, message);
  assert.deepEqual(s.fields, ['50', '15', 'auto', '0', '50']);
  assert.equal(s.lastError, null, JSON.stringify(s.lastError));
  assert.equal(s.target, s.top1);
  const address = new URL(page.url()).searchParams;
  assert.deepEqual(['samples', 'noise', 'microBatch', 'seed', 'igSteps', 'target'].map((key) => address.get(key)), ['50', '15', 'auto', '0', '50', null]);
  assert.deepEqual(errors, []);
  await context.close();
});

test('nonsense parameters through the API reach the Rust checks', async () => {
  const cases = [
    [{ samples: 0 }, 'OptionsError'],
    [{ noiseLevel: -0.1 }, 'OptionsError'],
    [{ noiseLevel: Number.NaN }, 'OptionsError'],
    [{ microBatch: 0 }, 'OptionsError'],
    [{ workers: 0 }, 'OptionsError'],
    [{ workers: 1.5 }, 'OptionsError'],
    [{ method: 'saliency' }, 'OptionsError'],
    [{ target: 10 }, 'TargetError'],
    // A value of the wrong type is named by its option, in JS's words.
    [{ samples: 2.5 }, 'OptionsError', /^samples: invalid type: floating point `2\.5`, expected a whole number ≥ 0$/],
    [{ seed: -1 }, 'OptionsError', /^seed: invalid type: floating point `-1(\.0)?`, expected a whole number ≥ 0$/],
    // Not a name: it used to reach the wasm as an empty string, and the model crashed.
    [{ smoothing: 3 }, 'OptionsError', /^unknown smoothing '3': choose one of mean, mean-of-squares, variance, abs-mean$/],
    // Falsy, they used to run as 'mean'.
    [{ smoothing: 0 }, 'OptionsError', /^unknown smoothing '0': /],
    [{ smoothing: '' }, 'OptionsError', /^unknown smoothing '': /],
  ];
  await site.page.evaluate(defineRefused);
  for (const [options, kind, message = /.{10}/] of cases) {
    const error = await site.page.evaluate(
      (o) => refused(() => window.__smoothgrad.api.explain({ method: 'gradient', samples: 2, microBatch: 1, ...o })), options);
    console.log(`explain(${JSON.stringify(options)}) → ${JSON.stringify(error)}`);
    assert.ok(error, `explain(${JSON.stringify(options)}) did not fail`);
    assert.equal(error.name, 'SmoothGradError');
    assert.equal(error.kind, kind, `${JSON.stringify(options)}: ${error.message}`);
    assert.match(error.message, message);
  }
});

test('explain()\'s methods: each way they cannot run is refused by name', async () => {
  const cases = [
    [{ method: 'gradient', methods: ['gradient'] }, /^explain\(\) takes either 'method' or 'methods', not both\.$/],
    [{ methods: 'gradient' }, /^explain\(\)'s methods must be an array of method names \(got string\)\.$/],
    [{ methods: [] }, /^a set of attribution methods needs at least one method$/],
    [{ methods: ['gradient', 'gradient'] }, /^`methods` names gradient more than once$/],
    [{ methods: ['gradient', 'saliency'] }, /^unknown method 'saliency': choose one of gradient, /],
  ];
  await site.page.evaluate(defineRefused);
  for (const [options, message] of cases) {
    const error = await site.page.evaluate((o) => refused(() => window.__smoothgrad.api.explain({ samples: 2, microBatch: 1, ...o })), options);
    assert.equal(error?.kind, 'OptionsError', `${JSON.stringify(options)}: ${error?.message}`);
    assert.match(error.message, message);
  }
});

test('a backend, a topK, a smoothing or a class count that is none: refused by name before any work', async () => {
  await site.page.evaluate(defineRefused);
  const outcomes = await site.page.evaluate(async () => {
    const { SmoothGrad } = await import('/www/api.js');
    const sg = window.__smoothgrad.api;
    return {
      create: await refused(() => SmoothGrad.create({ backend: 'gpu' })),
      topKZero: await refused(() => sg.classify(undefined, { topK: 0 })),
      topKText: await refused(() => sg.classify(undefined, { topK: 'all' })),
      smoothed: await refused(() => sg.smoothed(3)),
      explain: await refused(() => sg.explain({ method: 'gradient', samples: 2, smoothing: () => 'median' })),
      // The wasm would have built 2 classes, four billion for -1 and none for 2³².
      randomClasses: await refused(() => sg.loadRandomWeights(2.5)),
      randomNegative: await refused(() => sg.loadRandomWeights(-1)),
      randomWrapped: await refused(() => sg.loadRandomWeights(2 ** 32)),
      // A function's later answer that is no name keeps the last one, and the run its sums.
      keptVariance: await (async () => {
        let asked = 0;
        const run = await sg.explain({ method: 'gradient', samples: 2, microBatch: 1, smoothing: () => (asked++ ? 'median' : 'variance') });
        return run.map === run.maps.variance && run.done === 2;
      })(),
    };
  });
  assertOptionsErrors(outcomes, {
    create: /^unknown backend 'gpu': choose one of auto, webgpu, cpu$/,
    topKZero: /^topK must be a whole number ≥ 1 \(got 0\)\.$/,
    topKText: /^topK must be a whole number ≥ 1 \(got all\)\.$/,
    smoothed: /^unknown smoothing '3': choose one of mean, mean-of-squares, variance, abs-mean$/,
    explain: /^unknown smoothing 'median': /,
    randomClasses: /^numClasses must be a whole number from 1 to 100000 \(got 2\.5\)\.$/,
    randomNegative: /^numClasses must be a whole number from 1 to 100000 \(got -1\)\.$/,
    randomWrapped: /^numClasses must be a whole number from 1 to 100000 \(got 4294967296\)\.$/,
  });
  assert.equal(outcomes.keptVariance, true);
  await stillUsable(catProbabilities);
});

test('options the wasm refuses start no helper worker; a micro-batch above the samples is reported as the one that ran', async () => {
  await site.page.evaluate(defineRefused);
  const r = await site.page.evaluate(async () => {
    const sg = window.__smoothgrad.api;
    sg._dropHelpers();
    const error = await refused(() => sg.explain({ method: 'gradient', samples: 2.5, microBatch: 1, workers: 2 }));
    const helpers = sg._helpers.length;
    const run = await sg.explain({ method: 'gradient', samples: 2, microBatch: 1000, workers: 1 });
    return { error, helpers, microBatch: run.microBatch, done: run.done };
  });
  assert.equal(r.error?.kind, 'OptionsError', JSON.stringify(r.error));
  assert.match(r.error.message, /^samples: invalid type: floating point `2\.5`/);
  // Before, two workers' run started its helper first, which then loaded the weights for nothing.
  assert.equal(r.helpers, 0);
  assert.deepEqual({ microBatch: r.microBatch, done: r.done }, { microBatch: 2, done: 2 });
});

/** Gives the page `window.refused(call)`: null once `call()` resolves, else the {kind, name,
 * message} it threw. Set again before each use, as a test may have reloaded the page. */
function defineRefused() {
  window.refused = async (call) => {
    try {
      await call();
      return null;
    } catch (e) {
      return { kind: e.kind, name: e.name, message: e.message };
    }
  };
}

/** Each call named in `expected` was refused (by `window.refused`) with an OptionsError whose
 * message matches. */
function assertOptionsErrors(outcomes, expected) {
  for (const [call, message] of Object.entries(expected)) {
    assert.equal(outcomes[call]?.kind, 'OptionsError', `${call}: ${JSON.stringify(outcomes[call])}`);
    assert.match(outcomes[call].message, message);
  }
}

test('options left undefined or null take their defaults, as the wasm\'s do; a canvas that is none is refused', async () => {
  await site.page.evaluate(defineRefused);
  const r = await site.page.evaluate(async () => {
    const sg = window.__smoothgrad.api;
    const run = await sg.explain({ method: undefined, samples: 2, noiseLevel: undefined, seed: null, workers: null, smoothing: null });
    const map = await sg.attribute({ method: null, target: undefined });
    return {
      run: { method: run.method, noiseLevel: run.noiseLevel, seed: run.seed, total: run.total, done: run.done, mapLength: run.map.length },
      classes: (await sg.classify(undefined, { topK: null })).top.length,
      mapLength: map.length,
      canvas: await refused(() => sg.render(map, 'nope')),
    };
  });
  assert.deepEqual(r.run, { method: 'gradient', noiseLevel: 0.15, seed: 0, total: 2, done: 2, mapLength: 3 * 224 * 224 });
  assert.equal(r.classes, 5);
  assert.equal(r.mapLength, 3 * 224 * 224);
  assertOptionsErrors({ canvas: r.canvas }, { canvas: /^render\(\) draws into a canvas \(or none\), not the string 'nope'\.$/ });
});

test('the image set while SmoothGrad runs (API): the run fails saying so; an <img> not loaded yet is refused', async () => {
  await site.page.evaluate(defineRefused);
  const r = await site.page.evaluate(async () => {
    const sg = window.__smoothgrad.api;
    const bytes = new Uint8Array(await (await fetch('/fixtures/chelsea.png')).arrayBuffer());
    let ticked;
    const ticking = new Promise((resolve) => { ticked = resolve; });
    const run = refused(() => sg.explain({ method: 'gradient', samples: 1000, microBatch: 1, workers: 1, onProgress: () => ticked() }));
    await ticking;
    await sg.setImage(bytes);
    return { run: await run, unloaded: await refused(() => sg.setImage(new Image())) };
  });
  // It said "no SmoothGrad run: call start() first", a call the API's user never makes.
  assert.deepEqual(r.run, { kind: 'StateError', name: 'SmoothGradError',
    message: 'The image or the weights changed while SmoothGrad ran: ask for its map again.' });
  assert.equal(r.unloaded.kind, 'ImageError', JSON.stringify(r.unloaded));
  assert.match(r.unloaded.message, /^This image has no pixels yet \(0×0\)/);
  await stillUsable(catProbabilities);
});

test('a misspelt option through the API is refused by name, not dropped for its default', async () => {
  await site.page.evaluate(defineRefused);
  const outcomes = await site.page.evaluate(async () => {
    const { SmoothGrad } = await import('/www/api.js');
    const sg = window.__smoothgrad.api;
    return {
      create: await refused(() => SmoothGrad.create({ backend: 'cpu', precison: 'f16' })),
      loadWeights: await refused(() => sg.loadWeights('/fixtures/narrow_resnet50.safetensors', { onprogress: () => {} })),
      classify: await refused(() => sg.classify(undefined, { topk: 3 })),
      attribute: await refused(() => sg.attribute({ methods: 'gradient' })),
      explain: await refused(() => sg.explain({ method: 'gradient', samples: 2, noiselevel: 0.3 })),
      render: await refused(() => sg.render(new Float32Array(3 * 224 * 224), null, { colourmap: 'grey' })),
      classesAfter: (await sg.classify(undefined, { topK: 3 })).top.length,
    };
  });
  const expected = {
    create: /create\(\) has no option 'precison': it takes backend, precision, onNotice, onBackendChange\./,
    loadWeights: /loadWeights\(\) has no option 'onprogress' \(did you mean 'onProgress'\?\)/,
    classify: /classify\(\) has no option 'topk' \(did you mean 'topK'\?\)/,
    attribute: /attribute\(\) has no option 'methods': it takes method, target, igSteps, workers, onProgress\./,
    explain: /explain\(\) has no option 'noiselevel' \(did you mean 'noiseLevel'\?\): it takes method, samples, noiseLevel, /,
    render: /render\(\) has no option 'colourmap': it takes sign, clipPercentile, gamma, colormap, overlay\./,
  };
  assertOptionsErrors(outcomes, expected);
  assert.equal(outcomes.classesAfter, 3);
});

test('an onProgress that is no function is refused before the work starts, not at its first tick', async () => {
  await site.page.evaluate(defineRefused);
  const outcomes = await site.page.evaluate(async () => {
    const sg = window.__smoothgrad.api;
    const ticks = [];
    await sg.explain({ method: 'gradient', samples: 2, microBatch: 1, onProgress: (p) => ticks.push(p.done) });
    return {
      loadWeights: await refused(() => sg.loadWeights('/fixtures/narrow_resnet50.safetensors', { onProgress: 'log' })),
      attribute: await refused(() => sg.attribute({ method: 'integrated-gradients', igSteps: 3, onProgress: {} })),
      explain: await refused(() => sg.explain({ method: 'gradient', samples: 2, onProgress: true })),
      ticks,
    };
  });
  assertOptionsErrors(outcomes, {
    loadWeights: /^loadWeights\(\)'s onProgress must be a function \(got string\)\.$/,
    attribute: /^attribute\(\)'s onProgress must be a function \(got object\)\.$/,
    explain: /^explain\(\)'s onProgress must be a function \(got boolean\)\.$/,
  });
  assert.deepEqual(outcomes.ticks, [1, 2], 'a function is taken');
  await stillUsable(catProbabilities);
});

test('a class index out of range typed as target: the Rust TargetError on the page', async () => {
  await expectError(async () => {
    await site.page.fill('#target', '12');
    await site.page.press('#target', 'Enter');
    await site.page.locator('#target').blur();
  }, 'TargetError', /./);
  await site.page.fill('#target', '');
  await site.page.locator('#target').dispatchEvent('change');
  await stillUsable(catProbabilities);
});

test('an unknown class name typed as target', async () => {
  const before = (await state()).errors;
  await site.page.fill('#target', 'platypus');
  await site.page.locator('#target').dispatchEvent('change');
  await site.page.waitForFunction((n) => window.__smoothgrad.errors.length > n, before);
  assert.match((await state()).lastError.message, /No class is called “platypus”/);
  await site.page.fill('#target', '');
  await site.page.locator('#target').dispatchEvent('change');
});

test('out of memory mid-run (a trap): the worker restarts and SmoothGrad retries with half the micro-batch', async () => {
  const settings = { n: await site.page.inputValue('#samples-n'), seed: await site.page.inputValue('#seed'), url: site.page.url() };
  await site.page.evaluate(() => window.__smoothgrad.api._raw('simulateTrap', {
    op: 'step', message: 'panicked at burn-flex: out of memory: failed to allocate 300 MiB',
  }));
  const n = await completed(site.page);
  await site.page.click('#run');
  await waitForTasks(site.page, n + 1);
  const s = await state();
  assert.ok(s.messages.some((m) => /Out of memory at micro-batch 2: retrying with micro-batch 1/.test(m)), s.messages.join('\n'));
  assert.match(await statusText(site.page), /micro-batch 1/);
  const run = await site.page.evaluate(() => window.__smoothgrad.runs.gradient);
  assert.equal(run.microBatch, 1);
  assert.equal(run.done, 4);
  assert.equal(await site.page.inputValue('#samples-n'), settings.n); // nothing the user set is lost
  assert.equal(await site.page.inputValue('#seed'), settings.seed);
  assert.equal(site.page.url(), settings.url);
  await stillUsable(catProbabilities);
});

test('out of memory in the pass that classifies and maps a new image: the classes alone, then the map', async () => {
  await site.page.evaluate(() => window.__smoothgrad.api._raw('simulateTrap', {
    op: 'classify', message: 'panicked at burn-flex: out of memory: failed to allocate 300 MiB',
  }));
  const errorsBefore = (await state()).errors;
  await stillUsable(catProbabilities);
  const s = await state();
  assert.ok(s.messages.some((m) => /Out of memory \(panicked at burn-flex: out of memory/.test(m)), s.messages.join('\n'));
  assert.equal(s.errors, errorsBefore, `no error left for the user: ${JSON.stringify(s.lastError)}`);
  assert.equal(await site.page.evaluate(() => window.__smoothgrad.maps.gradient?.length), 3 * 224 * 224, 'the map drawn');
});

test('a SmoothGrad run cut off by a restart another call caused is run again, not failed; one disposed of is not', async () => {
  // On one worker and shared with a helper: the run's share on the replaced worker is gone either way.
  for (const workers of [1, 2]) {
    const before = (await state()).messages.filter((m) => /restarted during SmoothGrad: running it again/.test(m)).length;
    const outcome = await site.page.evaluate(async (workers) => {
      const sg = window.__smoothgrad.api;
      await sg._raw('simulateTrap', { op: 'render', message: 'panicked at burn-flex: index out of bounds' });
      const renders = [];
      const result = await sg.explain({
        method: 'gradient', samples: 4, microBatch: 1, seed: 3, workers,
        // Sent before the run's next step: its trap restarts the worker that step goes to.
        onProgress: (p) => { if (!renders.length) renders.push(sg.render(p.map)); },
      });
      const rendered = await Promise.allSettled(renders);
      return { done: result.done, stopped: result.stopped, workers: result.workers, rendered: rendered.map((r) => r.status) };
    }, workers);
    assert.deepEqual(outcome, { done: 4, stopped: false, workers, rendered: ['fulfilled'] });
    const after = (await state()).messages.filter((m) => /restarted during SmoothGrad: running it again/.test(m)).length;
    assert.equal(after, before + 1);
  }
  const disposed = await site.page.evaluate(async () => {
    const { SmoothGrad } = await import('/www/api.js');
    const notices = [];
    const sg = await SmoothGrad.create({ backend: 'cpu', onNotice: (m) => notices.push(m) });
    await sg.loadRandomWeights(10);
    await sg.setImage(await (await fetch('/fixtures/chelsea.png')).blob());
    const error = await sg.explain({ method: 'gradient', samples: 8, microBatch: 1, seed: 3, workers: 2, onProgress: () => sg.dispose() })
      .then(() => null, (e) => ({ kind: e.kind, message: e.message }));
    return { error, notices };
  });
  assert.deepEqual(disposed.error, { kind: 'StateError', message: 'This SmoothGrad instance was disposed.' });
  assert.ok(!disposed.notices.some((m) => /again/.test(m)), disposed.notices.join('\n'));
  await stillUsable(catProbabilities);
});

test('drag-and-drop and paste of an image file', async () => {
  for (const type of ['drop', 'paste']) {
    const n = await completed(site.page);
    await site.page.evaluate(async (kind) => {
      const bytes = await (await fetch('/fixtures/chelsea.png')).arrayBuffer();
      const file = new File([bytes], `dropped-${kind}.png`, { type: 'image/png' });
      const data = new DataTransfer();
      data.items.add(file);
      const event = kind === 'drop'
        ? new DragEvent('drop', { dataTransfer: data, bubbles: true, cancelable: true })
        : new ClipboardEvent('paste', { clipboardData: data, bubbles: true, cancelable: true });
      document.body.dispatchEvent(event);
    }, type);
    await waitForTasks(site.page, n + 1);
    const s = await state();
    assert.deepEqual(s.probabilities, catProbabilities);
    assert.equal(await site.page.evaluate(() => window.__smoothgrad.image), `dropped-${type}.png`);
  }
});

test('Stop ends a run early and keeps what was summed', async () => {
  await site.page.fill('#samples-n', '400');
  await site.page.fill('#micro-batch', '1');
  const n = await completed(site.page);
  await site.page.click('#run');
  await site.page.waitForFunction(() => /SmoothGrad \+ Gradient: [1-9]\d*\/400 samples · [\d.]+ s · about [1-9]\d* (s|min) left/.test(document.querySelector('#progress-text').textContent), null, { timeout: 120_000 });
  // Exported mid-run, the map says what it explains and how far the run had got.
  const [json] = await Promise.all([site.page.waitForEvent('download'), site.page.locator('figure[data-key="sg:gradient"] .export button', { hasText: '.json' }).click()]);
  const exported = JSON.parse(await readFile(await json.path(), 'utf8'));
  assert.deepEqual([exported.target, exported.samples, exported.microBatch, exported.seed], [await site.page.evaluate(() => window.__smoothgrad.target), 400, 1, 3]);
  assert.ok(exported.done >= 1 && exported.done < 400, JSON.stringify(exported));
  await site.page.click('#stop');
  await waitForTasks(site.page, n + 1);
  const run = await site.page.evaluate(() => window.__smoothgrad.runs.gradient);
  assert.equal(run.stopped, true);
  assert.ok(run.done >= 1 && run.done < 400, JSON.stringify(run));
  assert.match(await site.page.locator('#progress-text').textContent(), /stopped/);
  assert.equal(await site.page.evaluate(() => window.__smoothgrad.smoothgrad.gradient.mean.length), 3 * 224 * 224);
  await site.page.fill('#samples-n', '4');
  await site.page.fill('#micro-batch', '2');
});
