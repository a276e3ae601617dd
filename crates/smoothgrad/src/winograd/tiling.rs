//! The tilings of Winograd's minimal filtering, by their transforms along one dimension: the CPU
//! backend runs them as they are, the GPU backend's kernels unroll them as matrices.

/// Smallest image side that takes F(4×4, 3×3). On the CPU backend in wasm (one thread, batch 1
/// and 2) F(4×4, 3×3) took 0.56–0.75 of F(2×2, 3×3)'s time on ResNet-50's 56×56 and 28×28 layers
/// and 0.68–0.95 on its 14×14 and 7×7 ones, where its transformed kernels would hold 190 MB more
/// (36 values per kernel, twice: the input gradient has its own) for a few percent of a pass. The
/// GPU backend, untimed on a GPU, follows the CPU's choice.
pub const LARGE_TILES_FROM: usize = 28;

/// The output tile's side for an image of `height` × `width`: 4 from [`LARGE_TILES_FROM`] on, else 2.
pub fn tile_side(height: usize, width: usize) -> usize {
    if height.min(width) >= LARGE_TILES_FROM { 4 } else { 2 }
}

/// One tiling of Winograd's minimal filtering F(m×m, 3×3), given by its three transforms along one
/// dimension (`Bᵀ`, `G`, `Aᵀ`): each `M`×`M` output tile comes from an `N`×`N` window of the
/// input, `N = M + 2`, by `N²` products per channel pair.
pub trait Tiling<const M: usize, const N: usize> {
    /// `Bᵀ x` of one row or column of a window.
    fn input(x: [f32; N]) -> [f32; N];
    /// `G g` of one row or column of a 3×3 kernel.
    fn kernel(g: [f32; 3]) -> [f32; N];
    /// `Aᵀ m` of one row or column of a tile's products.
    fn output(m: [f32; N]) -> [f32; M];
    /// Where the points make `G` times a flipped kernel a permutation of `G g`'s rows, that
    /// permutation: the input gradient's kernels are then the forward's, read in another order.
    /// Only the CPU backend's convolutions read it.
    #[cfg_attr(not(feature = "flex"), allow(dead_code))]
    const FLIP: Option<[usize; N]>;
}

/// F(2×2, 3×3) at the points 0, 1, −1 (Lavin & Gray's matrices).
pub struct F2;

impl Tiling<2, 4> for F2 {
    fn input([x0, x1, x2, x3]: [f32; 4]) -> [f32; 4] {
        [x0 - x2, x1 + x2, x2 - x1, x1 - x3]
    }

    fn kernel([g0, g1, g2]: [f32; 3]) -> [f32; 4] {
        [g0, 0.5 * (g0 + g1 + g2), 0.5 * (g0 - g1 + g2), g2]
    }

    fn output([m0, m1, m2, m3]: [f32; 4]) -> [f32; 2] {
        [m0 + m1 + m2, m1 - m2 - m3]
    }

    const FLIP: Option<[usize; 4]> = Some([3, 1, 2, 0]);
}

/// F(4×4, 3×3) at the points 0, −1, 1, ½, −2: of the sets of small points tried, the one whose
/// f32 results stay closest to the exact convolution (ResNet-50's layers, against f64: 1.7–3.4e-6
/// relative, where the usual 0, ±1, ±2 give 4.5–7.3e-6 and F(2×2, 3×3) 0.4–0.8e-6). Not
/// symmetric, so the input gradient has kernels of its own.
pub struct F4;

impl Tiling<4, 6> for F4 {
    fn input([x0, x1, x2, x3, x4, x5]: [f32; 6]) -> [f32; 6] {
        [
            x0 - 1.5 * x1 - 2.0 * x2 + 1.5 * x3 + x4,
            x1 - 2.5 * x2 + 0.5 * x3 + x4,
            0.5 * x2 - x1 + 2.5 * x3 + x4,
            2.0 * (x3 - x1) - x2 + x4,
            0.5 * (x1 - x3) - x2 + x4,
            x1 - 1.5 * x2 - 2.0 * x3 + 1.5 * x4 + x5,
        ]
    }

    fn kernel([g0, g1, g2]: [f32; 3]) -> [f32; 6] {
        [
            g0,
            (g1 - g0 - g2) / 3.0,
            (g0 + g1 + g2) / 3.0,
            -(16.0 * g0 + 8.0 * g1 + 4.0 * g2) / 15.0,
            (g0 - 2.0 * g1 + 4.0 * g2) / 15.0,
            g2,
        ]
    }

    fn output([m0, m1, m2, m3, m4, m5]: [f32; 6]) -> [f32; 4] {
        [
            m0 + m1 + m2 + m3 + m4,
            m2 - m1 + 0.5 * m3 - 2.0 * m4,
            m1 + m2 + 0.25 * m3 + 4.0 * m4,
            m2 - m1 + 0.125 * m3 - 8.0 * m4 + m5,
        ]
    }

    const FLIP: Option<[usize; 6]> = None;
}
