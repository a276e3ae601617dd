//! The site's wasm modules (`scripts/build-site.sh`): the web crate's `#[wasm_bindgen]` exports,
//! linked into a module built with one backend's feature (`webgpu` or `cpu`).

use smoothgrad_web as _;
