//! Winograd's minimal filtering on burn's GPU backend, F(4×4, 3×3) or F(2×2, 3×3) by the image's
//! size as on the CPU ([`tile_side`]): a kernel transforms the input's `N`×`N` windows into `N²`
//! planes `[N², in, batch · tiles]`, one the kernels into `[N², out, in]`, the `N²` products go
//! through [`crate::product`] (`[out, in]` times `[in, batch · tiles]`: the batch's tiles side by
//! side, so that even layer 4's 7×7 images make long products), and a third kernel transforms each
//! tile's `N²` sums back into its outputs. The kernels unroll the CPU's tilings as matrices.
//!
//! Against the unfolded lowering (`conv.rs`), which writes and reads 9 values per input value, the
//! transformed input is 4 (F(2×2)) or 2.25 (F(4×4)) per input value, and the products 2.25 or 4
//! times fewer multiply-adds. The kernels are transformed on every call (`N²`/9 of the weights
//! written, a few microseconds on a GPU); the CPU backend caches them, where that cost matched the
//! products'.

use super::Direction;
use super::tiling::{F2, F4, Tiling, tile_side};
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
    let filters = transform_filters(weight, direction, channels_out, channels_in, &tiles);
    let products = <CubeBackend as ConvProductBackend>::conv_product(filters, transformed);
    transform_output(products, channels_out, &tiles)
}

/// How a batch of images is cut into `side`×`side` output tiles (the last row and column of tiles
/// partly outside an image whose size `side` does not divide), each read from a window two values
/// wider and higher of the zero-padded input.
struct Tiles {
    side: usize,
    dims: TileDims,
}

/// [`Tiles`]' sizes that its kernels read at run time.
#[derive(CubeLaunch, CubeType)]
struct TileDims {
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
        let side = tile_side(height, width);
        let (down, across) = (height.div_ceil(side), width.div_ceil(side));
        let dims = TileDims { height, width, across, per_image: down * across, columns: batch * down * across };
        Self { side, dims }
    }

    /// Values in a transformed window: one matrix product per value.
    fn values(&self) -> usize {
        (self.side + 2).pow(2)
    }

    fn launch(&self) -> TileDimsLaunch {
        let dims = &self.dims;
        TileDimsLaunch::new(dims.height, dims.width, dims.across, dims.per_image, dims.columns)
    }
}

/// One of a tiling's transforms along one dimension as the matrix that kernels unroll: `rows` ×
/// `columns` values, row by row (at most 6 × 6).
#[derive(Clone, Copy, Debug)]
struct Transform {
    rows: usize,
    columns: usize,
    values: [f32; 36],
}

impl Transform {
    /// The matrix of the linear `transform`: its column `j` is `transform` of the `j`-th unit vector.
    fn of<const I: usize, const O: usize>(transform: fn([f32; I]) -> [f32; O]) -> Self {
        let mut values = [0.0; 36];
        for column in 0..I {
            let unit = std::array::from_fn(|i| if i == column { 1.0 } else { 0.0 });
            for (row, value) in transform(unit).into_iter().enumerate() {
                values[row * I + column] = value;
            }
        }
        Self { rows: O, columns: I, values }
    }

    fn at(&self, row: usize, column: usize) -> f32 {
        self.values[row * self.columns + column]
    }
}

/// The three transforms of the tiling with output tiles of `side` × `side`: `Bᵀ`, `G`, `Aᵀ`.
#[derive(Clone, Copy, Debug)]
struct Transforms {
    input: Transform,
    kernel: Transform,
    output: Transform,
}

impl Transforms {
    fn of(side: usize) -> Self {
        match side {
            2 => Self::by::<F2, 2, 4>(),
            4 => Self::by::<F4, 4, 6>(),
            _ => unreachable!("no tiling has {side}×{side} output tiles"),
        }
    }

    fn by<T: Tiling<M, N>, const M: usize, const N: usize>() -> Self {
        Self { input: Transform::of(T::input), kernel: Transform::of(T::kernel), output: Transform::of(T::output) }
    }
}

/// `to[to_first + r · to_step]` set to row `r` of `matrix` times `from[from_first + c · from_step]`
/// (`c` along the row), for every row: unrolled, without the matrix's zeros.
#[cube]
fn apply<E: Float>(
    from: &Array<E>,
    to: &mut Array<E>,
    #[comptime] matrix: Transform,
    #[comptime] from_first: usize,
    #[comptime] from_step: usize,
    #[comptime] to_first: usize,
    #[comptime] to_step: usize,
) {
    #[unroll]
    for r in 0..matrix.rows {
        let mut sum = E::from_int(0);
        #[unroll]
        for c in 0..matrix.columns {
            let coefficient = comptime!(matrix.at(r, c));
            if comptime!(coefficient != 0.0) {
                sum += from[comptime!(from_first + c * from_step)] * E::new(coefficient);
            }
        }
        to[comptime!(to_first + r * to_step)] = sum;
    }
}

/// `L x Lᵀ` of the square `x` (`matrix.columns` on a side) into `to` (`matrix.rows` on a side),
/// where `L` is `matrix`: columns first, then rows.
#[cube]
fn apply_both_ways<E: Float>(x: &Array<E>, to: &mut Array<E>, #[comptime] matrix: Transform) {
    let (inner, outer) = comptime!((matrix.columns, matrix.rows));
    let mut columns = Array::<E>::new(comptime!(inner * outer));
    #[unroll]
    for c in 0..inner {
        apply(x, &mut columns, matrix, c, inner, c, inner);
    }
    #[unroll]
    for r in 0..outer {
        apply(&columns, to, matrix, comptime!(r * inner), 1usize, comptime!(r * outer), 1usize);
    }
}

/// One thread per window and channel, in the planes' order (neighbouring threads, neighbouring
/// tiles): `V = Bᵀ d B` of the window `d`, written to the `N²` planes `[N², channels, columns]`.
#[cube(launch)]
fn input_kernel<E: Float>(
    x: &Tensor<E>,
    transformed: &mut Tensor<E>,
    tiles: &TileDims,
    #[comptime] side: usize,
    #[define(E)] _dtype: ElemType,
) {
    let transforms = comptime!(Transforms::of(side));
    let (window, values) = comptime!((side + 2, (side + 2) * (side + 2)));
    let plane = x.shape(1) * tiles.columns;
    if ABSOLUTE_POS >= plane {
        terminate!();
    }
    let column = ABSOLUTE_POS % tiles.columns;
    let channel = ABSOLUTE_POS / tiles.columns;
    let tile = column % tiles.per_image;
    let start = (column / tiles.per_image) * x.stride(0) + channel * x.stride(1);
    // The window's first row and column in the padded image, one row and column above the image's.
    let (top, left) = ((tile / tiles.across) * side, (tile % tiles.across) * side);
    let mut d = Array::<E>::new(values);
    #[unroll]
    for r in 0..window {
        #[unroll]
        for c in 0..window {
            let (row, col) = (top + r, left + c);
            let mut value = E::from_int(0);
            if row >= 1 && row <= tiles.height && col >= 1 && col <= tiles.width {
                value = x[start + (row - 1) * x.stride(2) + (col - 1) * x.stride(3)];
            }
            d[comptime!(r * window + c)] = value;
        }
    }
    let mut v = Array::<E>::new(values);
    apply_both_ways(&d, &mut v, comptime!(transforms.input));
    #[unroll]
    for value in 0..values {
        transformed[value * plane + ABSOLUTE_POS] = v[value];
    }
}

/// One thread per channel pair `(out, in)` of the convolution computed (`[out][in]` order):
/// `U = G g Gᵀ` of its kernel `g` (for the input gradient, `weight`'s kernel `(in, out)` flipped),
/// written to the `N²` planes `[N², out, in]`.
#[cube(launch)]
fn filter_kernel<E: Float>(
    weight: &Tensor<E>,
    filters: &mut Tensor<E>,
    #[comptime] input_gradient: bool,
    #[comptime] side: usize,
    #[define(E)] _dtype: ElemType,
) {
    let transforms = comptime!(Transforms::of(side));
    let values = comptime!((side + 2) * (side + 2));
    let (outs, ins) = (filters.shape(1), filters.shape(2));
    if ABSOLUTE_POS >= outs * ins {
        terminate!();
    }
    let (out, inp) = (ABSOLUTE_POS / ins, ABSOLUTE_POS % ins);
    let mut start = out * weight.stride(0) + inp * weight.stride(1);
    if input_gradient {
        start = inp * weight.stride(0) + out * weight.stride(1);
    }
    let mut g = Array::<E>::new(9usize);
    #[unroll]
    for a in 0..3usize {
        #[unroll]
        for b in 0..3usize {
            let (tap_row, tap_column) = comptime!(if input_gradient { (2 - a, 2 - b) } else { (a, b) });
            g[a * 3 + b] = weight[start + tap_row * weight.stride(2) + tap_column * weight.stride(3)];
        }
    }
    let mut u = Array::<E>::new(values);
    apply_both_ways(&g, &mut u, comptime!(transforms.kernel));
    let plane = outs * ins;
    #[unroll]
    for value in 0..values {
        filters[value * plane + ABSOLUTE_POS] = u[value];
    }
}

/// One thread per tile and channel, in the planes' order: `Aᵀ m A` of the tile's `N²` sums `m`,
/// written as its outputs (those inside the image) into `out` `[batch, channels, h, w]`.
#[cube(launch)]
fn output_kernel<E: Float>(
    products: &Tensor<E>,
    out: &mut Tensor<E>,
    tiles: &TileDims,
    #[comptime] side: usize,
    #[define(E)] _dtype: ElemType,
) {
    let transforms = comptime!(Transforms::of(side));
    let values = comptime!((side + 2) * (side + 2));
    let plane = out.shape(1) * tiles.columns;
    if ABSOLUTE_POS >= plane {
        terminate!();
    }
    let column = ABSOLUTE_POS % tiles.columns;
    let channel = ABSOLUTE_POS / tiles.columns;
    let tile = column % tiles.per_image;
    let (top, left) = ((tile / tiles.across) * side, (tile % tiles.across) * side);
    let start = (column / tiles.per_image) * out.stride(0) + channel * out.stride(1);
    let (row_stride, column_stride) = (out.stride(2), out.stride(3));
    let mut m = Array::<E>::new(values);
    #[unroll]
    for value in 0..values {
        m[value] = products[value * plane + ABSOLUTE_POS];
    }
    let mut y = Array::<E>::new(comptime!(side * side));
    apply_both_ways(&m, &mut y, comptime!(transforms.output));
    #[unroll]
    for r in 0..side {
        #[unroll]
        for c in 0..side {
            let (row, col) = (top + r, left + c);
            if row < tiles.height && col < tiles.width {
                out[start + row * row_stride + col * column_stride] = y[comptime!(r * side + c)];
            }
        }
    }
}

/// The `N²` planes `[N², channels, columns]` of `x`'s transformed windows.
fn transform_input(x: CubeTensor, channels: usize, tiles: &Tiles) -> CubeTensor {
    let shape = Shape::new([tiles.values(), channels, tiles.dims.columns]);
    launch_elementwise(x, shape, channels * tiles.dims.columns, |client, count, dim, x, out, dtype| {
        input_kernel::launch(client, count, dim, x, out, tiles.launch(), tiles.side, dtype)
    })
}

/// The `N²` planes `[N², out, in]` of the kernels of the convolution `direction` names, for
/// `tiles`' window.
fn transform_filters(weight: CubeTensor, direction: Direction, outs: usize, ins: usize, tiles: &Tiles) -> CubeTensor {
    let (shape, side) = (Shape::new([tiles.values(), outs, ins]), tiles.side);
    let input_gradient = direction == Direction::InputGradient;
    launch_elementwise(weight, shape, outs * ins, |client, count, dim, weight, out, dtype| {
        filter_kernel::launch(client, count, dim, weight, out, input_gradient, side, dtype)
    })
}

/// The image `[batch, channels, h, w]` that the products `[N², channels, columns]` make.
fn transform_output(products: CubeTensor, channels: usize, tiles: &Tiles) -> CubeTensor {
    let dims = &tiles.dims;
    let shape = Shape::new([dims.columns / dims.per_image, channels, dims.height, dims.width]);
    launch_elementwise(products, shape, channels * dims.columns, |client, count, dim, products, out, dtype| {
        output_kernel::launch(client, count, dim, products, out, tiles.launch(), tiles.side, dtype)
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
