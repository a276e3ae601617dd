// The site's two builds of the wasm (scripts/build-site.sh), one backend each: burn's CPU backend,
// a fraction of the size, for the machines without hardware WebGPU, and WebGPU. A worker loads
// only the one its backend needs.

/** The wasm-bindgen output name of each backend's module, in www/pkg/. */
export const WASM_MODULES = Object.freeze({ webgpu: 'smoothgrad_web', cpu: 'smoothgrad_web_cpu' });

/** The URLs of `backend`'s module: its JS glue and its `.wasm`. */
export function wasmModule(backend) {
  const name = WASM_MODULES[backend];
  if (!name) throw Object.assign(new Error(`unknown backend '${backend}': choose webgpu or cpu`), { name: 'OptionsError' });
  return {
    glue: new URL(`./pkg/${name}.js`, import.meta.url),
    wasm: new URL(`./pkg/${name}_bg.wasm`, import.meta.url),
  };
}
