// The site's builds of the wasm (scripts/build-site.sh): burn's CPU backend, a fraction of the
// size, for the machines without hardware WebGPU, and WebGPU. The CPU's is built twice: the second
// fuses the multiply-adds of its matrix products (relaxed SIMD; 10–15 % off every pass in
// Chromium), but a browser without relaxed SIMD cannot compile it, so there the first runs. A
// worker loads only the one it runs.

/** The wasm-bindgen output name of each module, in www/pkg/. */
export const WASM_MODULES = Object.freeze({
  webgpu: 'smoothgrad_web',
  cpu: 'smoothgrad_web_cpu',
  cpuRelaxedSimd: 'smoothgrad_web_cpu_relaxed_simd',
});

// A module of one function, (v128) → v128, that is one f32x4.relaxed_madd.
const RELAXED_SIMD_PROBE = new Uint8Array([
  0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, // header
  0x01, 0x06, 0x01, 0x60, 0x01, 0x7b, 0x01, 0x7b, // types: (v128) → v128
  0x03, 0x02, 0x01, 0x00, // functions: one of type 0
  0x0a, 0x0d, 0x01, 0x0b, 0x00, // code: one body of 11 bytes, no locals
  0x20, 0x00, 0x20, 0x00, 0x20, 0x00, 0xfd, 0x85, 0x02, 0x0b, // 3 × local.get 0, f32x4.relaxed_madd, end
]);

/** Whether this browser's WebAssembly has relaxed SIMD (Chromium's since version 114). */
export function hasRelaxedSimd() {
  return WebAssembly.validate(RELAXED_SIMD_PROBE);
}

/** The URLs of the module that runs `backend`: its JS glue and its `.wasm`. On the CPU, the one
 * with relaxed SIMD where `relaxedSimd` (by default where this browser has it). */
export function wasmModule(backend, relaxedSimd = hasRelaxedSimd()) {
  if (backend !== 'webgpu' && backend !== 'cpu') {
    throw Object.assign(new Error(`unknown backend '${backend}': choose webgpu or cpu`), { name: 'OptionsError' });
  }
  const name = WASM_MODULES[backend === 'cpu' && relaxedSimd ? 'cpuRelaxedSimd' : backend];
  return {
    glue: new URL(`./pkg/${name}.js`, import.meta.url),
    wasm: new URL(`./pkg/${name}_bg.wasm`, import.meta.url),
  };
}
