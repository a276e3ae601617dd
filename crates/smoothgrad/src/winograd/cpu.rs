//! Winograd's minimal filtering on burn's CPU backend, through gemm: F(4×4, 3×3) on large images,
//! F(2×2, 3×3) on small ones.
//!
//! Most of a ResNet-50 pass on the page's CPU path is gemm's micro-kernel, and most ResNet-50
//! 3×3 convolutions have stride 1, so fewer multiplications there is the lever that is left.

use super::Direction;
use super::tiling::{F2, F4, Tiling, tile_side};
use burn::backend::TensorMetadata;
use burn::tensor::{Bytes, DType, Shape};
use burn_flex::{FlexTensor, Layout};
use std::sync::{Arc, Mutex};

/// Images are transformed a chunk at a time, its transformed inputs and products each about this
/// size at most, as burn-flex bounds its im2col columns.
const CHUNK_BYTES: usize = 8 << 20;

/// [`transform_weights`] works through each plane in blocks of `SLOW` rows of `FAST` values: it
/// transforms the block's kernels, read in the weights' order, into a buffer, then copies out
/// each plane's rows whole. Kernel by kernel in a plane's order, each kernel's `N²` values,
/// written straight into planes a power of two of bytes apart, evicted each other from the cache,
/// and the weights were read with a stride. Natively (one thread) ResNet-50's 19 transforms, the
/// first pass's over new weights, took 39 ms instead of 178; blocks of 16 × 16 and 1 × 256 took
/// 58 and 47.
const FAST: usize = 64;
/// See [`FAST`].
const SLOW: usize = 4;

/// The convolution `direction` names, of `x` `[batch, channels, height, width]` with the 3×3
/// `weight` at stride 1 and padding 1 (check [`super::applies`] first).
pub fn conv3x3(x: FlexTensor, weight: FlexTensor, direction: Direction) -> FlexTensor {
    let [.., height, width] = x.shape().dims::<4>();
    match tile_side(height, width) {
        4 => convolve::<F4, 4, 6>(x, weight, direction),
        _ => convolve::<F2, 2, 4>(x, weight, direction),
    }
}

/// `L x Lᵀ` of a square `x`, where `transform` is `L` times a vector: columns first, then rows.
fn both_ways<const I: usize, const O: usize>(x: [[f32; I]; I], transform: impl Fn([f32; I]) -> [f32; O]) -> [[f32; O]; O] {
    let columns: [[f32; O]; I] = std::array::from_fn(|c| transform(std::array::from_fn(|r| x[r][c])));
    std::array::from_fn(|r| transform(std::array::from_fn(|c| columns[c][r])))
}

/// Value `(r, c)` of `values` to `out[(N·r + c)·stride + at]`: one value to each of `N²` planes
/// `stride` apart. Row by row, not through a flattened iterator, which natively made
/// [`transform_weights`] twice as slow.
fn scatter<const N: usize>(values: [[f32; N]; N], out: &mut [f32], stride: usize, at: usize) {
    for (r, row) in values.iter().enumerate() {
        for (c, &value) in row.iter().enumerate() {
            out[(r * N + c) * stride + at] = value;
        }
    }
}

/// [`conv3x3`] by the tiling `T`.
fn convolve<T: Tiling<M, N>, const M: usize, const N: usize>(x: FlexTensor, weight: FlexTensor, direction: Direction) -> FlexTensor {
    let [batch, channels_in, height, width] = x.shape().dims::<4>();
    let x = x.to_contiguous();
    let x = slice(&x);
    let grid = TileGrid::new::<M>(height, width);
    let filters = Filters::of::<T, M, N>(&weight, direction);
    let (channels_out, _) = filters.channels(direction);

    let image_in = channels_in * height * width;
    let image_out = channels_out * height * width;
    let per_chunk = (CHUNK_BYTES / (4 * N * N * channels_in.max(channels_out) * grid.tiles())).clamp(1, batch);
    let mut output = vec![0.0f32; batch * image_out];
    for (images, outputs) in x.chunks(per_chunk * image_in).zip(output.chunks_mut(per_chunk * image_out)) {
        let count = images.len() / image_in;
        let columns = count * grid.tiles();
        let transformed = transform_input::<T, M, N>(images, count, channels_in, &grid);
        let mut products = vec![0.0f32; N * N * plane_len(channels_out * columns)];
        filters.multiply(direction, &transformed, &mut products, columns);
        transform_output::<T, M, N>(&products, outputs, count, channels_out, &grid);
    }
    let shape = Shape::new([batch, channels_out, height, width]);
    FlexTensor::new(Bytes::from_elems(output), Layout::contiguous(shape), DType::F32)
}

/// Values set aside for one of the planes of transformed inputs or products: one cache line
/// more than it holds. Without the gap the planes often start a multiple of 4 KiB apart (64
/// channels × 784 tiles: 49 × 4 KiB), so the planes that a tile's transform reads or writes at
/// once fall into one set of the L1 cache and evict each other: the input transform of a 56×56
/// image took 11 times as long as that of a 28×28 one with half as many tiles.
fn plane_len(values: usize) -> usize {
    values + 16
}

/// A contiguous f32 tensor's values.
fn slice(tensor: &FlexTensor) -> &[f32] {
    tensor.as_slice::<f32>().expect("a contiguous f32 tensor")
}

/// How an image is cut into `tile`×`tile` output tiles, each read from a window two values wider
/// and higher of the zero-padded input.
struct TileGrid {
    tile: usize,
    height: usize,
    width: usize,
    rows: usize,
    columns: usize,
}

impl TileGrid {
    fn new<const M: usize>(height: usize, width: usize) -> Self {
        Self { tile: M, height, width, rows: height.div_ceil(M), columns: width.div_ceil(M) }
    }

    fn tiles(&self) -> usize {
        self.rows * self.columns
    }

    /// Width of the zero-padded plane the windows are read from (one on the left, the rest right).
    fn padded_width(&self) -> usize {
        self.tile * self.columns + 2
    }

    fn padded_len(&self) -> usize {
        (self.tile * self.rows + 2) * self.padded_width()
    }
}

/// A 3×3 kernel `[out, in, 3, 3]` transformed, `U = G g Gᵀ` for every kernel `g`: `N²` planes,
/// each the column-major `[out, in]` matrix of one tile value (`[N²][in][out]`).
///
/// The input gradient convolves with kernel `(o, i)` flipped, `[in, out]`. Where the tiling has a
/// [`Tiling::FLIP`], `G` times a flipped kernel is `G g` with its rows permuted, so that plane
/// `(r, c)` is the forward's `(p(r), p(c))`, read as the row-major `[in, out]`; elsewhere the
/// planes are those of the flipped kernels, column-major `[in, out]` (`[N²][out][in]`) as gemm
/// reads its left operand fastest (natively, F(2×2, 3×3)'s row-major reads took up to 1.4 times as
/// long on 7×7 images).
struct Filters {
    planes: Planes,
    kernel_out: usize,
    kernel_in: usize,
    /// Plane `v` of the convolution is plane `order[v]` of `planes`.
    order: Vec<usize>,
    /// Whether the planes are the forward's, read row-major for the input gradient.
    borrowed: bool,
}

/// Kernels already transformed, with the storage of the weights they came from: a network's
/// kernels are transformed once, not on every pass (transformed on every call, they took as long
/// as the products themselves from 256 channels on: 16/9 of the weights written). Holding that
/// storage keeps it unchanged (burn's CPU backend writes in place only into storage nothing else
/// shares) and its address unique; an entry goes once the cache is the storage's last holder.
/// Each storage has its planes by tile size and whether the kernels were flipped.
static FILTERS: Mutex<Vec<(Arc<Bytes>, Vec<(usize, bool, Planes)>)>> = Mutex::new(Vec::new());

/// The planes of [`Filters`], shared with [`FILTERS`].
type Planes = Arc<Vec<f32>>;

impl Filters {
    /// `weight`'s transformed kernels for the convolution `direction` names by the tiling `T`,
    /// from [`FILTERS`] where they are there.
    fn of<T: Tiling<M, N>, const M: usize, const N: usize>(weight: &FlexTensor, direction: Direction) -> Self {
        let [kernel_out, kernel_in, ..] = weight.shape().dims::<4>();
        let borrowed = direction == Direction::InputGradient && T::FLIP.is_some();
        let flipped = direction == Direction::InputGradient && !borrowed;
        let order = match (direction, T::FLIP) {
            (Direction::InputGradient, Some(flip)) => (0..N * N).map(|v| N * flip[v / N] + flip[v % N]).collect(),
            _ => (0..N * N).collect(),
        };
        let storage = weight.data_arc();
        let whole = weight.layout().contiguous_offsets() == Some((0, storage.len() / 4));
        let transform = || {
            let weights = weight.to_contiguous();
            Arc::new(transform_weights::<T, M, N>(slice(&weights), kernel_out, kernel_in, flipped))
        };
        let planes = if whole {
            let mut cache = FILTERS.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            cache.retain(|(source, _)| Arc::strong_count(source) > 1);
            let kinds = match cache.iter_mut().find(|(source, _)| Arc::ptr_eq(source, &storage)) {
                Some((_, kinds)) => kinds,
                None => {
                    cache.push((storage, Vec::new()));
                    &mut cache.last_mut().expect("just pushed").1
                }
            };
            match kinds.iter().find(|(tile, flip, _)| *tile == M && *flip == flipped) {
                Some((.., planes)) => planes.clone(),
                None => {
                    let planes = transform();
                    kinds.push((M, flipped, planes.clone()));
                    planes
                }
            }
        } else {
            transform()
        };
        Self { planes, kernel_out, kernel_in, order, borrowed }
    }

    /// The output and input channels of the convolution `direction` names.
    fn channels(&self, direction: Direction) -> (usize, usize) {
        match direction {
            Direction::Forward => (self.kernel_out, self.kernel_in),
            Direction::InputGradient => (self.kernel_in, self.kernel_out),
        }
    }

    /// `products[v] = U[v] · transformed[v]` for each tile value `v` of the convolution
    /// `direction` names: `[out, in]` times `[in, columns]`, stored column by column
    /// (`[columns][out]`).
    ///
    /// Stored so, gemm's micro-kernel runs down the output channels (as in burn-flex's im2col
    /// product), not down the columns, which are few (49 for a 14×14 image) where channels are many.
    fn multiply(&self, direction: Direction, transformed: &[f32], products: &mut [f32], columns: usize) {
        let plane = self.kernel_out * self.kernel_in;
        let (out, inner) = self.channels(direction);
        let (filter_column, filter_row) = if self.borrowed { (1, inner) } else { (out, 1) };
        #[cfg(not(target_family = "wasm"))]
        let parallelism = if out * inner * columns >= 192 * 192 * 192 {
            gemm::Parallelism::Rayon(0)
        } else {
            gemm::Parallelism::None
        };
        #[cfg(target_family = "wasm")]
        let parallelism = gemm::Parallelism::None;
        let inputs = transformed.chunks_exact(plane_len(inner * columns));
        let planes = products.chunks_exact_mut(plane_len(out * columns));
        for ((product, input), &source) in planes.zip(inputs).zip(&self.order) {
            let filter = &self.planes[source * plane..(source + 1) * plane];
            // SAFETY: `product`, `filter` and `input` hold `out × columns`, `out × inner` and
            // `inner × columns` values, laid out as the strides say.
            unsafe {
                gemm::gemm(
                    out,
                    columns,
                    inner,
                    product.as_mut_ptr(),
                    out as isize,
                    1,
                    false,
                    filter.as_ptr(),
                    filter_column as isize,
                    filter_row as isize,
                    input.as_ptr(),
                    1,
                    columns as isize,
                    0.0,
                    1.0,
                    false,
                    false,
                    false,
                    parallelism,
                );
            }
        }
    }
}

/// The planes of [`Filters`] for the kernels `weight` `[out, in, 3, 3]`, or where `flipped` says
/// so for the flipped kernels `[in, out, 3, 3]` of the input gradient.
fn transform_weights<T: Tiling<M, N>, const M: usize, const N: usize>(
    weight: &[f32],
    kernel_out: usize,
    kernel_in: usize,
    flipped: bool,
) -> Vec<f32> {
    let plane = kernel_out * kernel_in;
    let mut planes = vec![0.0f32; N * N * plane];
    // A plane's rows: input channels, each a row of output channels (column-major `[out, in]`),
    // or for flipped kernels the other way round.
    let (fast_len, slow_len) = if flipped { (kernel_in, kernel_out) } else { (kernel_out, kernel_in) };
    let mut block = vec![0.0f32; N * N * FAST * SLOW];
    let at_row = |r: usize| if flipped { 2 - r } else { r };
    for first_row in (0..slow_len).step_by(SLOW) {
        for first_column in (0..fast_len).step_by(FAST) {
            let (rows, columns) = (SLOW.min(slow_len - first_row), FAST.min(fast_len - first_column));
            let (first_out, first_in, outs, ins) =
                if flipped { (first_row, first_column, rows, columns) } else { (first_column, first_row, columns, rows) };
            for o in 0..outs {
                for i in 0..ins {
                    let kernel = &weight[((first_out + o) * kernel_in + first_in + i) * 9..][..9];
                    let g: [[f32; 3]; 3] =
                        std::array::from_fn(|r| std::array::from_fn(|c| kernel[3 * at_row(r) + at_row(c)]));
                    let at = if flipped { o * FAST + i } else { i * FAST + o };
                    scatter(both_ways(g, T::kernel), &mut block, FAST * SLOW, at);
                }
            }
            for (value, tile) in block.chunks_exact(FAST * SLOW).enumerate() {
                for (row, values) in tile.chunks_exact(FAST).take(rows).enumerate() {
                    let start = value * plane + (first_row + row) * fast_len + first_column;
                    planes[start..start + columns].copy_from_slice(&values[..columns]);
                }
            }
        }
    }
    planes
}

/// `V = Bᵀ d B` for every window `d`, laid out `[N²][channels][image · tile]`.
fn transform_input<T: Tiling<M, N>, const M: usize, const N: usize>(
    images: &[f32],
    count: usize,
    channels: usize,
    grid: &TileGrid,
) -> Vec<f32> {
    let columns = count * grid.tiles();
    let stride = plane_len(channels * columns);
    let mut transformed = vec![0.0f32; N * N * stride];
    let mut padded = vec![0.0f32; grid.padded_len()];
    let pitch = grid.padded_width();
    let plane = grid.height * grid.width;
    for (index, values) in images.chunks_exact(plane).enumerate() {
        let (image, channel) = (index / channels, index % channels);
        for (row, source) in values.chunks_exact(grid.width).enumerate() {
            let start = (row + 1) * pitch + 1;
            padded[start..start + grid.width].copy_from_slice(source);
        }
        let first = channel * columns + image * grid.tiles();
        for tile_row in 0..grid.rows {
            for tile_column in 0..grid.columns {
                let corner = M * (tile_row * pitch + tile_column);
                let window: [[f32; N]; N] =
                    std::array::from_fn(|r| std::array::from_fn(|c| padded[corner + r * pitch + c]));
                let column = first + tile_row * grid.columns + tile_column;
                scatter(both_ways(window, T::input), &mut transformed, stride, column);
            }
        }
    }
    transformed
}

/// `Aᵀ m A` of every tile's `N²` products, written as its outputs (those inside the image). Tile
/// by tile, channels innermost: the products are read in order.
fn transform_output<T: Tiling<M, N>, const M: usize, const N: usize>(
    products: &[f32],
    output: &mut [f32],
    count: usize,
    channels: usize,
    grid: &TileGrid,
) {
    let columns = count * grid.tiles();
    let stride = plane_len(channels * columns);
    let plane = grid.height * grid.width;
    for column in 0..columns {
        let (image, tile) = (column / grid.tiles(), column % grid.tiles());
        let (y, x) = (M * (tile / grid.columns), M * (tile % grid.columns));
        let inside = [(grid.height - y).min(M), (grid.width - x).min(M)];
        let values: [[&[f32]; N]; N] = std::array::from_fn(|r| {
            std::array::from_fn(|c| {
                let start = (r * N + c) * stride + column * channels;
                &products[start..start + channels]
            })
        });
        let planes = output[image * channels * plane..].chunks_exact_mut(plane).take(channels);
        for (channel, pixels) in planes.enumerate() {
            let m: [[f32; N]; N] = std::array::from_fn(|r| std::array::from_fn(|c| values[r][c][channel]));
            let tile = both_ways(m, T::output);
            for (dy, row) in tile.iter().enumerate().take(inside[0]) {
                pixels[(y + dy) * grid.width + x..][..inside[1]].copy_from_slice(&row[..inside[1]]);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::winograd::tiling::LARGE_TILES_FROM;
    use crate::fixed_values::fixed_values;
    use crate::winograd::applies;
    use burn::tensor::ops::ConvOptions;
    use burn::backend::Flex;
    use burn::backend::ops::ModuleOps;
    use burn::tensor::TensorData;

    fn random(shape: [usize; 4], seed: u64) -> FlexTensor {
        let values = fixed_values(shape.iter().product(), seed);
        FlexTensor::from_data(TensorData::new(values, shape))
    }

    fn options() -> ConvOptions<2> {
        ConvOptions::new([1, 1], [1, 1], [1, 1], 1)
    }

    /// Largest difference from burn-flex's own result, relative to that result's largest value.
    fn relative_error(ours: FlexTensor, reference: FlexTensor) -> f32 {
        assert_eq!(ours.shape(), reference.shape());
        let (ours, reference) = (ours.into_data().try_to_vec::<f32>().unwrap(), reference.into_data().try_to_vec::<f32>().unwrap());
        let scale = reference.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        let worst = ours.iter().zip(&reference).fold(0.0f32, |m, (a, b)| m.max((a - b).abs()));
        worst / scale
    }

    /// Odd and even sizes (edge tiles partly outside for both tile sizes), several images,
    /// channels in ≠ out, and more channels than a block of kernels holds ([`FAST`], [`SLOW`]),
    /// with blocks at the edges partly outside.
    const SHAPES: [[usize; 4]; 6] =
        [[1, 3, 4, 4], [2, 5, 7, 6], [3, 8, 9, 13], [1, 16, 14, 14], [2, 4, 10, 11], [1, FAST + 3, 5, 6]];

    /// [`convolve`] by each tiling.
    const TILINGS: [(&str, fn(FlexTensor, FlexTensor, Direction) -> FlexTensor); 2] =
        [("F(2×2, 3×3)", convolve::<F2, 2, 4>), ("F(4×4, 3×3)", convolve::<F4, 4, 6>)];

    #[test]
    fn forward_matches_burn_flex_conv2d() {
        for (name, convolve) in TILINGS {
            for (seed, shape) in SHAPES.into_iter().enumerate() {
                let x = random(shape, seed as u64);
                let weight = random([shape[1] + 2, shape[1], 3, 3], seed as u64 + 10);
                assert!(applies(&x, &weight, &options()));
                let reference = Flex::conv2d(x.clone(), weight.clone(), None, options());
                let error = relative_error(convolve(x, weight, Direction::Forward), reference);
                assert!(error < 1e-5, "{name} {shape:?}: relative error {error}");
            }
        }
    }

    #[test]
    fn input_gradient_matches_burn_flex_conv2d_x_backward() {
        for (name, convolve) in TILINGS {
            for (seed, shape) in SHAPES.into_iter().enumerate() {
                let x = random(shape, seed as u64);
                let weight = random([shape[1] + 2, shape[1], 3, 3], seed as u64 + 10);
                let grad = random([shape[0], shape[1] + 2, shape[2], shape[3]], seed as u64 + 20);
                let reference = Flex::conv2d_x_backward(x, weight.clone(), grad.clone(), options());
                let error = relative_error(convolve(grad, weight, Direction::InputGradient), reference);
                assert!(error < 1e-5, "{name} {shape:?}: relative error {error}");
            }
        }
    }

    #[test]
    fn large_images_take_large_tiles() {
        let weight = random([4, 3, 3, 3], 7);
        for side in [LARGE_TILES_FROM - 1, LARGE_TILES_FROM] {
            let x = random([1, 3, side, side], 8);
            let by = |convolve: fn(FlexTensor, FlexTensor, Direction) -> FlexTensor| {
                convolve(x.clone(), weight.clone(), Direction::Forward).into_data()
            };
            let chosen = by(conv3x3);
            let (expected, other) = if side >= LARGE_TILES_FROM { (TILINGS[1], TILINGS[0]) } else { (TILINGS[0], TILINGS[1]) };
            assert_eq!(chosen, by(expected.1), "{side}: {}", expected.0);
            assert_ne!(chosen, by(other.1), "{side}: the tilings round differently");
        }
    }

    #[test]
    fn kernels_are_transformed_once_while_their_weights_live() {
        let weight = random([4, 3, 3, 3], 5);
        let planes = |weight: &FlexTensor, direction| Filters::of::<F4, 4, 6>(weight, direction).planes;
        let forward = planes(&weight, Direction::Forward);
        assert!(Arc::ptr_eq(&forward, &planes(&weight.clone(), Direction::Forward)));
        // F(4×4, 3×3)'s input gradient has kernels of its own, F(2×2, 3×3)'s reads the forward's.
        let backward = planes(&weight, Direction::InputGradient);
        assert!(!Arc::ptr_eq(&forward, &backward));
        assert!(Arc::ptr_eq(&backward, &planes(&weight, Direction::InputGradient)));
        let small = Filters::of::<F2, 2, 4>(&weight, Direction::Forward).planes;
        assert!(Arc::ptr_eq(&small, &Filters::of::<F2, 2, 4>(&weight, Direction::InputGradient).planes));
        assert_eq!((forward.len(), small.len()), (36 * 12, 16 * 12));
        // The same values in other storage are other weights.
        let other = random([4, 3, 3, 3], 5);
        assert!(!Arc::ptr_eq(&forward, &planes(&other, Direction::Forward)));
        drop(weight);
        planes(&other, Direction::Forward);
        assert_eq!(Arc::strong_count(&forward), 1, "the cache let go of dropped weights");
        assert_eq!(Arc::strong_count(&small), 1, "the cache let go of dropped weights");
    }

    #[test]
    fn applies_only_to_3x3_stride_1_padding_1() {
        let x = random([1, 4, 8, 8], 0);
        let weight = random([4, 4, 3, 3], 1);
        assert!(applies(&x, &weight, &options()));
        assert!(!applies(&x, &weight, &ConvOptions::new([2, 2], [1, 1], [1, 1], 1)));
        assert!(!applies(&x, &weight, &ConvOptions::new([1, 1], [0, 0], [1, 1], 1)));
        assert!(!applies(&x, &weight, &ConvOptions::new([1, 1], [1, 1], [2, 2], 1)));
        assert!(!applies(&x, &random([4, 4, 1, 1], 2), &options()));
    }
}
