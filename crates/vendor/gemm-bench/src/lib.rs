//! One export for the browser: `multiply(m, n, k)` runs `[m, k] × [k, n]` (row-major, as burn's
//! CPU backend multiplies weights by columns) once on buffers kept between calls.

use std::sync::Mutex;

/// Left operand, right operand and product, grown on demand.
static BUFFERS: Mutex<(Vec<f32>, Vec<f32>, Vec<f32>)> = Mutex::new((Vec::new(), Vec::new(), Vec::new()));

/// `[m, k] × [k, n]` with gemm on one thread; returns one element so the work is not elided.
#[unsafe(no_mangle)]
pub extern "C" fn multiply(m: usize, n: usize, k: usize) -> f32 {
    // gemm picks its wasm SIMD kernels only when told the engine has them.
    gemm::set_wasm_simd128(true);
    let mut buffers = BUFFERS.lock().expect("one caller at a time");
    let (lhs, rhs, product) = &mut *buffers;
    let filled = |length: usize| (0..length).map(|i| (i % 7) as f32 * 0.125).collect::<Vec<f32>>();
    if lhs.len() < m * k {
        *lhs = filled(m * k);
    }
    if rhs.len() < k * n {
        *rhs = filled(k * n);
    }
    product.resize(product.len().max(m * n), 0.0);
    // SAFETY: the three buffers hold at least m·k, k·n and m·n elements with the strides given.
    unsafe {
        gemm::gemm(
            m, n, k,
            product.as_mut_ptr(), 1, n as isize, false,
            lhs.as_ptr(), 1, k as isize,
            rhs.as_ptr(), 1, n as isize,
            0.0, 1.0, false, false, false,
            gemm::Parallelism::None,
        );
    }
    product[0]
}
