//! Winograd's F(2×2, 3×3) on burn's GPU backend: a kernel transforms the input's windows into 16
//! planes `[16, in, batch · tiles]`, one the kernels into `[16, out, in]`, the 16 products of a
//! batch of 16 go through [`crate::product`] (`[out, in]` times `[in, batch · tiles]`: the batch's
//! tiles side by side, so that even layer 4's 7×7 images make long products), and a third kernel
//! transforms each tile's 16 sums back into its 2×2 outputs.
//!
//! Against the unfolded lowering (`conv.rs`), which writes and reads 9 values per input value, the
//! transformed input is 4 per input value (16 per 2×2 tile) and the products 2.25 times fewer
//! multiply-adds. The kernels are transformed on every call (16/9 of the weights written, a few
//! microseconds on a GPU); the CPU backend caches them, where that cost matched the products'.

use super::Direction;
use crate::product::ConvProductBackend;
use burn::backend::TensorMetadata;
use burn::backend::cubecl::dtype_to_storage_type;
use burn::backend::ops::FloatTensorOps;
use burn::tensor::Shape;
use burn_cubecl::CubeBackend;
use burn_cubecl::cubecl;
use burn_cubecl::cubecl::client::Client;
use burn_cubecl::cubecl::prelude::*;
use burn_cubecl::tensor::CubeTensor;

/// Values in a transformed 4×4 window: one matrix product per value.
const TILE_VALUES: usize = 16;

/// The convolution `direction` names, of `x` `[batch, channels, height, width]` with the 3×3
/// `weight` at stride 1 and padding 1.
pub fn conv3x3(x: CubeTensor, weight: CubeTensor, direction: Direction) -> CubeTensor {
    let [batch, channels_in, height, width] = x.shape().dims::<4>();
    let [kernel_out, kernel_in, ..] = weight.shape().dims::<4>();
    let channels_out = match direction {
        Direction::Forward => kernel_out,
        Direction::InputGradient => kernel_in,
    };
    let tiles = Tiles::new(batch, height, width);
    let transformed = transform_input(x, channels_in, &tiles);
    let filters = transform_filters(weight, direction, channels_out, channels_in);
    let products = <CubeBackend as ConvProductBackend>::conv_product(filters, transformed);
    transform_output(products, channels_out, &tiles)
}

/// How a batch of images is cut into 2×2 output tiles (the last row and column of tiles half
/// outside an odd-sized image), each read from a 4×4 window of the zero-padded input.
#[derive(CubeLaunch, CubeType)]
struct Tiles {
    height: usize,
    width: usize,
    /// Tiles across an image.
    across: usize,
    /// Tiles per image.
    per_image: usize,
    /// Tiles of the whole batch: the columns of the products.
    columns: usize,
}

impl Tiles {
    fn new(batch: usize, height: usize, width: usize) -> Self {
        let (down, across) = (height.div_ceil(2), width.div_ceil(2));
        Self { height, width, across, per_image: down * across, columns: batch * down * across }
    }

    fn launch(&self) -> TilesLaunch {
        TilesLaunch::new(self.height, self.width, self.across, self.per_image, self.columns)
    }
}

/// `values[first + i · step]` for `i` in 0..4 replaced by `Bᵀ` times them, with
/// `Bᵀ = [1 0 −1 0; 0 1 1 0; 0 −1 1 0; 0 1 0 −1]`.
#[cube]
fn mix_window<E: Float>(values: &mut Array<E>, #[comptime] first: usize, #[comptime] step: usize) {
    let (d0, d1) = (values[first], values[comptime!(first + step)]);
    let (d2, d3) = (values[comptime!(first + 2 * step)], values[comptime!(first + 3 * step)]);
    values[first] = d0 - d2;
    values[comptime!(first + step)] = d1 + d2;
    values[comptime!(first + 2 * step)] = d2 - d1;
    values[comptime!(first + 3 * step)] = d1 - d3;
}

/// One thread per window and channel, in the planes' order (neighbouring threads, neighbouring
/// tiles): `V = Bᵀ d B` of the window `d`, written to the 16 planes `[16, channels, columns]`.
#[cube(launch)]
fn input_kernel<E: Float>(x: &Tensor<E>, transformed: &mut Tensor<E>, tiles: &Tiles, #[define(E)] _dtype: ElemType) {
    let plane = x.shape(1) * tiles.columns;
    if ABSOLUTE_POS >= plane {
        terminate!();
    }
    let column = ABSOLUTE_POS % tiles.columns;
    let channel = ABSOLUTE_POS / tiles.columns;
    let tile = column % tiles.per_image;
    let start = (column / tiles.per_image) * x.stride(0) + channel * x.stride(1);
    // The window's first row and column in the padded image, one row and column above the image's.
    let (top, left) = ((tile / tiles.across) * 2, (tile % tiles.across) * 2);
    let mut window = Array::<E>::new(16usize);
    #[unroll]
    for r in 0..4usize {
        #[unroll]
        for c in 0..4usize {
            let (row, col) = (top + r, left + c);
            let mut value = E::from_int(0);
            if row >= 1 && row <= tiles.height && col >= 1 && col <= tiles.width {
                value = x[start + (row - 1) * x.stride(2) + (col - 1) * x.stride(3)];
            }
            window[r * 4 + c] = value;
        }
    }
    #[unroll]
    for c in 0..4usize {
        mix_window(&mut window, c, 4usize);
    }
    #[unroll]
    for r in 0..4usize {
        mix_window(&mut window, comptime!(4usize * r), 1usize);
    }
    #[unroll]
    for value in 0..16usize {
        transformed[value * plane + ABSOLUTE_POS] = window[value];
    }
}

/// `values[first + i · step]` for `i` in 0..4 set to `G` times `kernel[from + j · along]` for `j`
/// in 0..3, with `G = [1 0 0; ½ ½ ½; ½ −½ ½; 0 0 1]`.
#[cube]
fn expand_kernel<E: Float>(
    kernel: &Array<E>,
    values: &mut Array<E>,
    #[comptime] from: usize,
    #[comptime] along: usize,
    #[comptime] first: usize,
    #[comptime] step: usize,
) {
    let (g0, g1, g2) = (kernel[from], kernel[comptime!(from + along)], kernel[comptime!(from + 2 * along)]);
    let half = E::new(0.5);
    values[first] = g0;
    values[comptime!(first + step)] = (g0 + g1 + g2) * half;
    values[comptime!(first + 2 * step)] = (g0 - g1 + g2) * half;
    values[comptime!(first + 3 * step)] = g2;
}

/// One thread per channel pair `(out, in)` of the convolution computed (`[out][in]` order):
/// `U = G g Gᵀ` of its kernel `g` (for the input gradient, `weight`'s kernel `(in, out)` flipped),
/// written to the 16 planes `[16, out, in]`.
#[cube(launch)]
fn filter_kernel<E: Float>(
    weight: &Tensor<E>,
    filters: &mut Tensor<E>,
    #[comptime] input_gradient: bool,
    #[define(E)] _dtype: ElemType,
) {
    let (outs, ins) = (filters.shape(1), filters.shape(2));
    if ABSOLUTE_POS >= outs * ins {
        terminate!();
    }
    let (out, inp) = (ABSOLUTE_POS / ins, ABSOLUTE_POS % ins);
    let mut start = out * weight.stride(0) + inp * weight.stride(1);
    if input_gradient {
        start = inp * weight.stride(0) + out * weight.stride(1);
    }
    let mut kernel = Array::<E>::new(9usize);
    #[unroll]
    for a in 0..3usize {
        #[unroll]
        for b in 0..3usize {
            let (tap_row, tap_column) = comptime!(if input_gradient { (2 - a, 2 - b) } else { (a, b) });
            kernel[a * 3 + b] = weight[start + tap_row * weight.stride(2) + tap_column * weight.stride(3)];
        }
    }
    // G g (4 × 3, by columns), then (G g) Gᵀ (4 × 4, by rows).
    let mut expanded = Array::<E>::new(12usize);
    #[unroll]
    for b in 0..3usize {
        expand_kernel(&kernel, &mut expanded, b, 3usize, b, 3usize);
    }
    let mut values = Array::<E>::new(16usize);
    #[unroll]
    for r in 0..4usize {
        expand_kernel(&expanded, &mut values, comptime!(3usize * r), 1usize, comptime!(4usize * r), 1usize);
    }
    let plane = outs * ins;
    #[unroll]
    for value in 0..16usize {
        filters[value * plane + ABSOLUTE_POS] = values[value];
    }
}

/// `Aᵀ` times `values[first + i · step]` for `i` in 0..4, with `Aᵀ = [1 1 1 0; 0 1 −1 −1]`.
#[cube]
fn reduce_tile<E: Float>(values: &Array<E>, #[comptime] first: usize, #[comptime] step: usize) -> (E, E) {
    let (m0, m1) = (values[first], values[comptime!(first + step)]);
    let (m2, m3) = (values[comptime!(first + 2 * step)], values[comptime!(first + 3 * step)]);
    (m0 + m1 + m2, m1 - m2 - m3)
}

/// One thread per tile and channel, in the planes' order: `Aᵀ m A` of the tile's 16 sums `m`,
/// written as its 2×2 outputs (those inside the image) into `out` `[batch, channels, h, w]`.
#[cube(launch)]
fn output_kernel<E: Float>(products: &Tensor<E>, out: &mut Tensor<E>, tiles: &Tiles, #[define(E)] _dtype: ElemType) {
    let plane = out.shape(1) * tiles.columns;
    if ABSOLUTE_POS >= plane {
        terminate!();
    }
    let column = ABSOLUTE_POS % tiles.columns;
    let channel = ABSOLUTE_POS / tiles.columns;
    let tile = column % tiles.per_image;
    let (top, left) = ((tile / tiles.across) * 2, (tile % tiles.across) * 2);
    let start = (column / tiles.per_image) * out.stride(0) + channel * out.stride(1);
    let (row_stride, column_stride) = (out.stride(2), out.stride(3));
    let mut sums = Array::<E>::new(16usize);
    #[unroll]
    for value in 0..16usize {
        sums[value] = products[value * plane + ABSOLUTE_POS];
    }
    // Aᵀ m (2 × 4, by columns), then (Aᵀ m) A (2 × 2, by rows).
    let mut half = Array::<E>::new(8usize);
    #[unroll]
    for c in 0..4usize {
        let (upper, lower) = reduce_tile(&sums, c, 4usize);
        half[c] = upper;
        half[comptime!(4usize + c)] = lower;
    }
    #[unroll]
    for r in 0..2usize {
        let row = top + r;
        let (left_value, right_value) = reduce_tile(&half, comptime!(4usize * r), 1usize);
        if row < tiles.height {
            let at = start + row * row_stride + left * column_stride;
            out[at] = left_value;
            if left + 1 < tiles.width {
                out[at + column_stride] = right_value;
            }
        }
    }
}

/// The 16 planes `[16, channels, columns]` of `x`'s transformed windows.
fn transform_input(x: CubeTensor, channels: usize, tiles: &Tiles) -> CubeTensor {
    let shape = Shape::new([TILE_VALUES, channels, tiles.columns]);
    launch_elementwise(x, shape, channels * tiles.columns, |client, count, dim, x, out, dtype| {
        input_kernel::launch(client, count, dim, x, out, tiles.launch(), dtype)
    })
}

/// The 16 planes `[16, out, in]` of the kernels of the convolution `direction` names.
fn transform_filters(weight: CubeTensor, direction: Direction, outs: usize, ins: usize) -> CubeTensor {
    let shape = Shape::new([TILE_VALUES, outs, ins]);
    let input_gradient = direction == Direction::InputGradient;
    launch_elementwise(weight, shape, outs * ins, |client, count, dim, weight, out, dtype| {
        filter_kernel::launch(client, count, dim, weight, out, input_gradient, dtype)
    })
}

/// The image `[batch, channels, h, w]` that the products `[16, channels, columns]` make.
fn transform_output(products: CubeTensor, channels: usize, tiles: &Tiles) -> CubeTensor {
    let batch = tiles.columns / tiles.per_image;
    let shape = Shape::new([batch, channels, tiles.height, tiles.width]);
    launch_elementwise(products, shape, channels * tiles.columns, |client, count, dim, products, out, dtype| {
        output_kernel::launch(client, count, dim, products, out, tiles.launch(), dtype)
    })
}

/// A new tensor of `shape` and `input`'s type, written by `launch` with one thread for each of
/// `threads`.
fn launch_elementwise(
    input: CubeTensor,
    shape: Shape,
    threads: usize,
    launch: impl FnOnce(&Client, CubeCount, CubeDim, TensorArg, TensorArg, ElemType),
) -> CubeTensor {
    let (client, device, dtype) = (input.client.clone(), input.device.clone(), input.dtype);
    let out = CubeBackend::float_empty(shape, &device, dtype.into());
    let cube_dim = CubeDim::new(&client, threads);
    let cube_count = cubecl::calculate_cube_count_elemwise(&client, threads, cube_dim);
    launch(&client, cube_count, cube_dim, input.into_tensor_arg(), out.clone().into_tensor_arg(), dtype_to_storage_type(dtype));
    out
}
