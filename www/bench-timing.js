// Timing shared by the browser benchmark (bench-worker.js), its TF.js reference
// (scripts/bench-tfjs/), the A/B comparison (scripts/bench-ab/) and the profile
// (scripts/profile-cpu.mjs), so their figures mean the same thing.

/** The milliseconds of each of `runs` runs of `work`, one after the other, each after an
 * untimed `before` (the wasm's explainer shares an image's forward pass between calls: a figure
 * of the pass itself sets the image again first). */
export async function times(runs, work, before = () => {}) {
  const taken = [];
  for (let run = 0; run < runs; run += 1) {
    await before();
    const started = performance.now();
    await work();
    taken.push(performance.now() - started);
  }
  return taken;
}

/** The middle of `values` once sorted (of an even count, the upper of the two). */
export function middle(values) {
  return [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];
}

/** Median milliseconds of `runs` runs of `work` after one warm-up, each after `before`. */
export async function median(runs, work, before = () => {}) {
  await before();
  await work();
  return middle(await times(runs, work, before));
}

/** SmoothGrad as the page runs it: read the running map after every micro-batch. `method`: a
 * name, or an array of names run together (a build older than that takes only a name). */
export async function smoothgrad(explainer, target, samples, microBatch, method = 'gradient') {
  const methods = Array.isArray(method) ? { methods: method } : { method };
  explainer.start({ ...methods, target, samples, microBatch, seed: 0 });
  let progress;
  do {
    progress = explainer.step();
    await explainer.smoothed('mean');
  } while (progress.done < progress.total);
}

/** SmoothGrad of Gradient and of Guided Backprop, the page's default view: each method's run
 * alone, one after the other, against one run of both, which shares each sample's forward pass
 * between them. Median of `runs` after a warm-up, the two alternated so that drift hits both. */
export async function sharedForward(explainer, target, samples, microBatch, runs) {
  const alone = async () => {
    for (const method of ['gradient', 'guided-backprop']) await smoothgrad(explainer, target, samples, microBatch, method);
  };
  const together = () => smoothgrad(explainer, target, samples, microBatch, ['gradient', 'guided-backprop']);
  const [eachAlone, shared] = (await alternated(runs, timedOnce(alone), timedOnce(together))).map(middle);
  return { micro_batch: microBatch, each_alone_ms: eachAlone, shared_forward_ms: shared, shared_over_alone: shared / eachAlone };
}

/** The plain maps of Gradient and Guided Backprop as the page asks for them, call by call: a new
 * image's classes with Gradient's map, then Guided Backprop's, then both again for another
 * class. Each call from its own forward pass (the image set again, untimed, before each; each
 * such first pass records, as every first pass does) against the wasm's way, the image's later
 * calls replaying its first pass's convolutions. Medians of `runs` after a warm-up, alternated. */
export async function sharedPlainMaps(explainer, image, runs) {
  const [alone, shared] = await alternated(runs, () => plainMaps(explainer, image, false), () => plainMaps(explainer, image, true));
  const figure = (key) => {
    const [eachAlone, sharedForward] = [alone, shared].map((rounds) => middle(rounds.map((round) => round[key])));
    return { each_alone_ms: eachAlone, shared_forward_ms: sharedForward, shared_over_alone: sharedForward / eachAlone };
  };
  return { new_image: figure('new_image'), another_class: figure('another_class') };
}

/** One round of sharedPlainMaps: `{new_image, another_class}` milliseconds. */
async function plainMaps(explainer, image, shared) {
  let ms = 0;
  const call = async (work) => {
    if (!shared) explainer.setImage(image);
    const started = performance.now();
    const result = await work();
    ms += performance.now() - started;
    return result;
  };
  if (shared) explainer.setImage(image); // alone, `call` sets it before each call
  const { target } = await call(() => explainer.classify({ attribute: 'gradient' }));
  await call(() => explainer.attribute({ method: 'guided-backprop', target }));
  const newImage = ms;
  const other = target === 0 ? 1 : 0;
  for (const method of ['gradient', 'guided-backprop']) await call(() => explainer.attribute({ method, target: other }));
  return { new_image: newImage, another_class: ms - newImage };
}

/** A function that times one run of `work` (after an untimed `before`): its milliseconds. */
export function timedOnce(work, before) {
  return async () => (await times(1, work, before))[0];
}

/** The results of `a()` and of `b()`, taken in turn `runs` times after a warm-up of each, so
 * that drift hits both; which goes first alternates, so neither always follows the other's
 * garbage. */
export async function alternated(runs, a, b) {
  const arms = [a, b];
  const results = [[], []];
  for (let run = 0; run <= runs; run += 1) {
    for (const index of run % 2 ? [1, 0] : [0, 1]) {
      const result = await arms[index]();
      // The first of each is the warm-up.
      if (run > 0) results[index].push(result);
    }
  }
  return results;
}

/** A new image's classes and gradient map of its top-1, as the page gets them: both from one
 * pass (classify's `attribute`), or, from a build without it (bench-ab's older site), classify
 * then attribute. */
export async function classifyAndMap(explainer) {
  const classified = await explainer.classify({ attribute: 'gradient' });
  if (classified.map) return classified;
  const { probabilities } = classified;
  const target = probabilities.indexOf(Math.max(...probabilities));
  return { ...classified, target, map: await explainer.attribute({ method: 'gradient', target }) };
}
