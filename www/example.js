// A course exercise built on the JS API alone (www/api.js): classify a photo, then compare its
// gradient with SmoothGrad. Errors are SmoothGradError with a `.kind` and a message to act on.
import { SmoothGrad, SmoothGradError } from './api.js';

const params = new URLSearchParams(location.search);
const log = (text) => { document.getElementById('log').textContent += `${text}\n`; };
const canvas = (id) => document.getElementById(id);

try {
  const sg = await SmoothGrad.create({ backend: params.get('backend') ?? 'auto', onNotice: log });
  log(`backend: ${sg.backend} (${sg.backendReason})`);

  const model = await sg.loadWeights(params.get('weights') ?? undefined, {
    onProgress: ({ loaded, total }) => { document.title = `weights ${Math.round((100 * loaded) / (total || loaded || 1))} %`; },
  });
  log(`model: ${model.architecture}, ${model.numClasses} classes`);

  // Any image: a URL, file bytes, a Blob, ImageData or a canvas.
  const { top, crop } = await sg.classify(new URL('samples/chelsea.png', import.meta.url).href);
  canvas('input').width = 224;
  canvas('input').height = 224;
  canvas('input').getContext('2d').putImageData(crop, 0, 0);
  for (const { index, name, probability } of top) log(`${(probability * 100).toFixed(1)} %  ${name} (${index})`);

  const gradient = await sg.attribute({ method: 'gradient', target: top[0].index });
  await sg.render(gradient, canvas('gradient'), { sign: 'abs', clipPercentile: 99 });

  const result = await sg.explain({
    method: 'gradient',
    target: top[0].index,
    samples: Number(params.get('samples') ?? 50), // n in the paper
    noiseLevel: 0.15, // σ as a fraction of the input's range: try 0 and 0.5
    seed: 0,
    onProgress: ({ done, total, map }) => {
      log(`SmoothGrad ${done}/${total}`);
      sg.render(map, canvas('smoothgrad'));
    },
  });
  await sg.render(result.map, canvas('smoothgrad'));
  log(`done: ${result.done} samples in ${(result.elapsedMs / 1000).toFixed(1)} s`);
  window.__example = { top, gradient, smoothgrad: result.map };
} catch (e) {
  log(e instanceof SmoothGradError ? `${e.kind}: ${e.message}` : `error: ${e}`);
  window.__example = { error: { kind: e.kind, message: e.message } };
}
