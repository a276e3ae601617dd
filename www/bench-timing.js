// Timing shared by the browser benchmark (bench-worker.js) and its TF.js reference
// (scripts/bench-tfjs/), so both figures mean the same thing.

/** Median milliseconds of `runs` runs of `work` after one warm-up. */
export async function median(runs, work) {
  await work();
  const times = [];
  for (let run = 0; run < runs; run += 1) {
    const started = performance.now();
    await work();
    times.push(performance.now() - started);
  }
  times.sort((a, b) => a - b);
  return times[Math.floor(times.length / 2)];
}
