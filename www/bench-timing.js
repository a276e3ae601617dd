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

/** SmoothGrad as the page runs it: read the running map after every micro-batch. */
export async function smoothgrad(explainer, target, samples, microBatch) {
  explainer.start({ method: 'gradient', target, samples, microBatch, seed: 0 });
  let progress;
  do {
    progress = explainer.step();
    await explainer.smoothed('mean');
  } while (progress.done < progress.total);
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
