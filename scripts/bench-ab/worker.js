// The worker of scripts/bench-ab.mjs: both builds of the site in one worker, so that the two are
// timed on the same core, alternating, at the same minutes (this machine's speed drifts by ±30 %
// between minutes, which hides a 5–10 % change between two runs of the benchmark).
import { alternated, classifyAndMap, smoothgrad, timedOnce } from '/timing/bench-timing.js';

/** The wasm-bindgen glue that `site`'s page loads for `backend` (a site built before the CPU
 * path had a module of its own has one module for both). */
async function glue(site, backend) {
  try {
    const { wasmModule } = await import(`/${site}/www/wasm-modules.js`);
    return wasmModule(backend).glue;
  } catch {
    return `/${site}/www/pkg/smoothgrad_web.js`;
  }
}

/** `site`'s explainer on `backend`, from the wasm module its page loads for that backend, and
 * `newImage()`, which sets the sample image again (untimed, before each run: a build that shares
 * an image's forward pass between calls would otherwise time replays of its first). */
async function build(site, backend) {
  const { default: init, Explainer } = await import(await glue(site, backend));
  await init();
  const explainer = await Explainer.create(backend, null);
  explainer.loadRandomWeights(1000);
  const image = new Uint8Array(await (await fetch(`/${site}/www/samples/chelsea.png`)).arrayBuffer());
  const newImage = () => explainer.setImage(image);
  newImage();
  return { explainer, newImage };
}

self.onmessage = async ({ data: { backend, rounds, samples, microBatch, weightsUrl } }) => {
  try {
    const builds = [await build('a', backend), await build('b', backend)];
    // A full-size checkpoint, fetched once: each load copies it into the wasm, as the page's does.
    const weights = weightsUrl && new Uint8Array(await (await fetch(weightsUrl)).arrayBuffer());
    const work = {
      ...(weights ? {
        load_weights: (explainer) => explainer.loadWeights(weights),
        // The page's first map after new weights: that pass also transforms the CPU's Winograd
        // kernels (kept after, while the weights live), which the figures below never see.
        load_weights_then_map: async (explainer) => {
          await explainer.loadWeights(weights);
          await classifyAndMap(explainer);
        },
      } : {}),
      forward_b1: (explainer) => explainer.classify(),
      forward_backward_b1: (explainer) => explainer.attribute({ method: 'gradient', target: 0 }),
      classify_and_gradient_b1: classifyAndMap,
      [`smoothgrad_${samples}_mb${microBatch}`]: (explainer) => smoothgrad(explainer, 0, samples, microBatch),
    };
    const times = {};
    for (const [figure, run] of Object.entries(work)) {
      const [a, b] = await alternated(Number(rounds), ...builds.map(({ explainer, newImage }) => timedOnce(() => run(explainer), newImage)));
      times[figure] = { a, b };
      self.postMessage({ progress: `${figure}: ${rounds} rounds` });
    }
    self.postMessage({ times });
  } catch (error) {
    self.postMessage({ error: `${error.name}: ${error.message}` });
  }
};
