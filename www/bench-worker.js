// The browser half of the speed benchmark (issue 4): the same figures as the native `bench`
// example, measured through the wasm API in a dedicated worker, as the page runs it.
import { classifyAndMap, median, sharedForward, sharedPlainMaps, smoothgrad } from './bench-timing.js';
import { chooseBackend } from './api.js';
import { hasRelaxedSimd, wasmModule } from './wasm-modules.js';

const now = () => performance.now();
const say = (progress) => self.postMessage({ progress });

async function bytes(url) {
  const response = await fetch(url);
  if (!response.ok) throw new Error(`${url}: HTTP ${response.status}`);
  return new Uint8Array(await response.arrayBuffer());
}

self.onmessage = async ({ data: params }) => {
  const backend = params.backend ?? 'webgpu';
  const samples = Number(params.samples ?? 50);
  const runs = Number(params.runs ?? 3);
  const microBatches = (params.microBatches ?? '1,10,25,50').split(',').map(Number);
  const image = params.image ?? 'samples/chelsea.png';
  try {
    // As the page does, tell the wasm which adapter runs it; `adapter=<description>` overrides
    // that, to compare the ways of convolving on one adapter.
    const adapter = backend === 'webgpu' ? (await chooseBackend('webgpu')).adapter : null;
    const started = now();
    const relaxedSimd = hasRelaxedSimd();
    const { default: init, Explainer } = await import(wasmModule(backend, relaxedSimd).glue);
    const { memory } = await init();
    const explainer = await Explainer.create(backend, params.adapter ?? adapter?.description);
    const ready = now();
    const model = params.weights ? explainer.loadWeights(await bytes(params.weights)) : explainer.loadRandomWeights(1000);
    const imageBytes = await bytes(image);
    explainer.setImage(imageBytes);
    const { target } = await classifyAndMap(explainer);
    const firstMap = now();
    say(`first gradient map after ${(firstMap - started).toFixed(0)} ms`);

    // The image set again before each: its later calls would replay its first pass.
    const newImage = () => explainer.setImage(imageBytes);
    const forward = await median(runs, () => explainer.classify(), newImage);
    say(`forward: ${forward.toFixed(1)} ms`);
    const forwardBackward = await median(runs, () => explainer.attribute({ method: 'gradient', target }), newImage);
    say(`forward+backward: ${forwardBackward.toFixed(1)} ms`);
    const classifiedAndMapped = await median(runs, () => classifyAndMap(explainer), newImage);
    say(`classes and gradient map: ${classifiedAndMapped.toFixed(1)} ms`);
    const plainMaps = await sharedPlainMaps(explainer, imageBytes, runs);
    say(`plain maps of Gradient and Guided Backprop: ${plainMaps.new_image.shared_over_alone.toFixed(3)}× (new image), ${plainMaps.another_class.shared_over_alone.toFixed(3)}× (another class) the time of each from its own pass`);
    const smoothgradFigures = [];
    for (const microBatch of microBatches) {
      const ms = await median(runs, () => smoothgrad(explainer, target, samples, microBatch));
      smoothgradFigures.push({ micro_batch: microBatch, ms });
      say(`SmoothGrad-${samples}, micro-batch ${microBatch}: ${ms.toFixed(0)} ms`);
    }
    // `sharedForward=1`: three SmoothGrad runs a round more, so only where asked for.
    const shared = params.sharedForward === '1' ? await sharedForward(explainer, target, samples, microBatches.at(-1), runs) : null;
    if (shared) say(`SmoothGrad-${samples} of Gradient and Guided Backprop: ${shared.shared_over_alone.toFixed(3)}× the time of each alone`);
    self.postMessage({
      project: 'smoothgrad (burn, wasm)',
      backend,
      adapter,
      conv_lowering: explainer.convLowering,
      // On the CPU: which of its two modules ran (www/wasm-modules.js).
      relaxed_simd: backend === 'cpu' ? relaxedSimd : null,
      userAgent: self.navigator.userAgent,
      model: { ...model, weights: params.weights ? params.weights : 'random' },
      runs,
      samples,
      startup_ms: { wasm_and_device: ready - started, to_first_gradient_map: firstMap - started },
      // The wasm heap only grows: this is the peak of every run above (CPU backend: the model's
      // weights and activations; WebGPU: what stays on the host).
      wasm_memory_bytes: memory.buffer.byteLength,
      forward_b1: { ms: forward },
      forward_backward_b1: { ms: forwardBackward },
      // A new image's classes and first map (the page's first step), from one pass.
      classify_and_gradient_b1: { ms: classifiedAndMapped },
      // The page's plain maps, sharing the image's forward pass between calls, against each call
      // from its own pass.
      gradient_and_guided_backprop_plain_maps: plainMaps,
      smoothgrad: smoothgradFigures,
      gradient_and_guided_backprop_smoothgrad: shared,
    });
  } catch (error) {
    self.postMessage({ error: `${error.name}: ${error.message}` });
  }
};
