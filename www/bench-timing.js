// Timing shared by the browser benchmark (bench-worker.js), its TF.js reference
// (scripts/bench-tfjs/), the A/B comparison (scripts/bench-ab/) and the profile
// (scripts/profile-cpu.mjs), so their figures mean the same thing.

/** The milliseconds of each of `runs` runs of `work`, one after the other. */
export async function times(runs, work) {
  const taken = [];
  for (let run = 0; run < runs; run += 1) {
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

/** Median milliseconds of `runs` runs of `work` after one warm-up. */
export async function median(runs, work) {
  await work();
  return middle(await times(runs, work));
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
  const [aloneMs, togetherMs] = [[], []];
  for (let run = 0; run <= runs; run += 1) {
    const [a, t] = [await times(1, alone), await times(1, together)];
    // The first of each is the warm-up.
    if (run > 0) {
      aloneMs.push(...a);
      togetherMs.push(...t);
    }
  }
  const [eachAlone, shared] = [middle(aloneMs), middle(togetherMs)];
  return { micro_batch: microBatch, each_alone_ms: eachAlone, shared_forward_ms: shared, shared_over_alone: shared / eachAlone };
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
