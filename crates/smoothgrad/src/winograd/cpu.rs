//! Winograd's F(2×2, 3×3) on burn's CPU backend, through gemm.
//!
//! Most of a ResNet-50 pass on the page's CPU path is gemm's micro-kernel, and most ResNet-50
//! 3×3 convolutions have stride 1, so fewer multiplications there is the lever that is left.

use super::{Direction, TILE_VALUES};
use burn::backend::TensorMetadata;
use burn::tensor::{Bytes, DType, Shape};
use burn_flex::{FlexTensor, Layout};
use std::sync::{Arc, Mutex};

/// Images are transformed a chunk at a time, its transformed inputs and products each about this
/// size at most, as burn-flex bounds its im2col columns.
const CHUNK_BYTES: usize = 8 << 20;

/// The convolution `direction` names, of `x` `[batch, channels, height, width]` with the 3×3
/// `weight` at stride 1 and padding 1 (check [`super::applies`] first).
pub fn conv3x3(x: FlexTensor, weight: FlexTensor, direction: Direction) -> FlexTensor {
    let [batch, channels_in, height, width] = x.shape().dims::<4>();
    let x = x.to_contiguous();
    let x = slice(&x);
    let grid = TileGrid::new(height, width);
    let filters = Filters::of(&weight);
    let (channels_out, _) = filters.channels(direction);

    let image_in = channels_in * height * width;
    let image_out = channels_out * height * width;
    let per_chunk = (CHUNK_BYTES / (4 * TILE_VALUES * channels_in.max(channels_out) * grid.tiles())).clamp(1, batch);
    let mut output = vec![0.0f32; batch * image_out];
    for (images, outputs) in x.chunks(per_chunk * image_in).zip(output.chunks_mut(per_chunk * image_out)) {
        let count = images.len() / image_in;
        let columns = count * grid.tiles();
        let transformed = transform_input(images, count, channels_in, &grid);
        let mut products = vec![0.0f32; TILE_VALUES * plane_len(channels_out * columns)];
        filters.multiply(direction, &transformed, &mut products, columns);
        transform_output(&products, outputs, count, channels_out, &grid);
    }
    let shape = Shape::new([batch, channels_out, height, width]);
    FlexTensor::new(Bytes::from_elems(output), Layout::contiguous(shape), DType::F32)
}

/// Values set aside for one of the 16 planes of transformed inputs or products: one cache line
/// more than it holds. Without the gap the planes often start a multiple of 4 KiB apart (64
/// channels × 784 tiles: 49 × 4 KiB), so the 16 that a tile's transform reads or writes at once
/// fall into one set of the L1 cache and evict each other: the input transform of a 56×56 image
/// took 11 times as long as that of a 28×28 one with half as many tiles.
fn plane_len(values: usize) -> usize {
    values + 16
}

/// A contiguous f32 tensor's values.
fn slice(tensor: &FlexTensor) -> &[f32] {
    tensor.as_slice::<f32>().expect("a contiguous f32 tensor")
}

/// How an image is cut into 2×2 output tiles, each read from a 4×4 window of the zero-padded input.
struct TileGrid {
    height: usize,
    width: usize,
    rows: usize,
    columns: usize,
}

impl TileGrid {
    fn new(height: usize, width: usize) -> Self {
        Self { height, width, rows: height.div_ceil(2), columns: width.div_ceil(2) }
    }

    fn tiles(&self) -> usize {
        self.rows * self.columns
    }

    /// Width of the zero-padded plane the windows are read from (one on the left, the rest right).
    fn padded_width(&self) -> usize {
        2 * self.columns + 2
    }

    fn padded_len(&self) -> usize {
        (2 * self.rows + 2) * self.padded_width()
    }
}

/// A 3×3 kernel `[out, in, 3, 3]` transformed, `U = G g Gᵀ` for every kernel `g`: 16 planes, each
/// the column-major `[out, in]` matrix of one tile value (`[16][in][out]`).
///
/// The input gradient needs no second copy: there kernel `(o, i)` is flipped, and `G` times a
/// flipped kernel is `G g` with its first and last rows swapped, so its plane `(r, c)` is this one's
/// `(p(r), p(c))` with `p` swapping 0 and 3, read as the row-major `[in, out]`.
struct Filters {
    planes: Planes,
    kernel_out: usize,
    kernel_in: usize,
}

/// Kernels already transformed, with the storage of the weights they came from: a network's
/// kernels are transformed once, not on every pass (transformed on every call, they took as long
/// as the products themselves from 256 channels on: 16/9 of the weights written). Holding that
/// storage keeps it unchanged (burn's CPU backend writes in place only into storage nothing else
/// shares) and its address unique; an entry goes once the cache is the storage's last holder.
static FILTERS: Mutex<Vec<(Arc<Bytes>, Planes)>> = Mutex::new(Vec::new());

/// The 16 planes of [`Filters`], shared with [`FILTERS`].
type Planes = Arc<Vec<f32>>;

impl Filters {
    /// `weight`'s transformed kernels, from [`FILTERS`] where they are there.
    fn of(weight: &FlexTensor) -> Self {
        let [kernel_out, kernel_in, ..] = weight.shape().dims::<4>();
        let storage = weight.data_arc();
        let whole = weight.layout().contiguous_offsets() == Some((0, storage.len() / 4));
        let transform = || Arc::new(transform_weights(slice(&weight.to_contiguous()), kernel_out, kernel_in));
        let planes = if whole {
            let mut cache = FILTERS.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            cache.retain(|(source, _)| Arc::strong_count(source) > 1);
            match cache.iter().find(|(source, _)| Arc::ptr_eq(source, &storage)) {
                Some((_, planes)) => planes.clone(),
                None => {
                    let planes = transform();
                    cache.push((storage, planes.clone()));
                    planes
                }
            }
        } else {
            transform()
        };
        Self { planes, kernel_out, kernel_in }
    }

    /// The output and input channels of the convolution `direction` names.
    fn channels(&self, direction: Direction) -> (usize, usize) {
        match direction {
            Direction::Forward => (self.kernel_out, self.kernel_in),
            Direction::InputGradient => (self.kernel_in, self.kernel_out),
        }
    }

    /// `products[v] = U[v] · transformed[v]` for each of the 16 tile values `v` of the convolution
    /// `direction` names: `[out, in]` times `[in, columns]`, stored column by column
    /// (`[columns][out]`).
    ///
    /// Stored so, gemm's micro-kernel runs down the output channels (as in burn-flex's im2col
    /// product), not down the columns, which are few (49 for a 14×14 image) where channels are many.
    fn multiply(&self, direction: Direction, transformed: &[f32], products: &mut [f32], columns: usize) {
        let plane = self.kernel_out * self.kernel_in;
        let (out, inner) = self.channels(direction);
        // Column-major `[out, in]` as stored; for the input gradient, the same values row-major.
        let (filter_column, filter_row) = match direction {
            Direction::Forward => (out, 1),
            Direction::InputGradient => (1, inner),
        };
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
        for (value, (product, input)) in planes.zip(inputs).enumerate() {
            let source = match direction {
                Direction::Forward => value,
                Direction::InputGradient => 4 * FLIP[value / 4] + FLIP[value % 4],
            };
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

/// Row (or column) of `G g` that row (column) `r` of `G` times the flipped kernel is.
const FLIP: [usize; 4] = [3, 1, 2, 0];

/// The planes of [`Filters`] for the kernels `weight` `[out, in, 3, 3]`.
fn transform_weights(weight: &[f32], kernel_out: usize, kernel_in: usize) -> Vec<f32> {
    let plane = kernel_out * kernel_in;
    let mut planes = vec![0.0f32; TILE_VALUES * plane];
    // Destination order, so that each of the 16 planes is written front to back.
    for at in 0..plane {
        let (i, o) = (at / kernel_out, at % kernel_out);
        let g: [f32; 9] = std::array::from_fn(|k| weight[(o * kernel_in + i) * 9 + k]);
        for (value, u) in transform_kernel(&g).into_iter().enumerate() {
            planes[value * plane + at] = u;
        }
    }
    planes
}

/// `G g Gᵀ` of one 3×3 kernel (row-major), with `G = [1 0 0; ½ ½ ½; ½ −½ ½; 0 0 1]`.
fn transform_kernel(g: &[f32; 9]) -> [f32; 16] {
    let expand = |a: f32, b: f32, c: f32| [a, 0.5 * (a + b + c), 0.5 * (a - b + c), c];
    let columns: [[f32; 4]; 3] = std::array::from_fn(|column| expand(g[column], g[3 + column], g[6 + column]));
    let rows: [[f32; 4]; 4] = std::array::from_fn(|row| expand(columns[0][row], columns[1][row], columns[2][row]));
    std::array::from_fn(|k| rows[k / 4][k % 4])
}

/// `V = Bᵀ d B` for every 4×4 window `d`, laid out `[16][channels][image · tile]`.
fn transform_input(images: &[f32], count: usize, channels: usize, grid: &TileGrid) -> Vec<f32> {
    let columns = count * grid.tiles();
    let stride = plane_len(channels * columns);
    let mut transformed = vec![0.0f32; TILE_VALUES * stride];
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
                let corner = 2 * tile_row * pitch + 2 * tile_column;
                let window: [[f32; 4]; 4] =
                    std::array::from_fn(|r| std::array::from_fn(|c| padded[corner + r * pitch + c]));
                let column = first + tile_row * grid.columns + tile_column;
                for (value, v) in transform_window(&window).into_iter().enumerate() {
                    transformed[value * stride + column] = v;
                }
            }
        }
    }
    transformed
}

/// `Bᵀ d B` of one 4×4 window, with `Bᵀ = [1 0 −1 0; 0 1 1 0; 0 −1 1 0; 0 1 0 −1]`.
fn transform_window(d: &[[f32; 4]; 4]) -> [f32; 16] {
    let mix = |x: [f32; 4]| [x[0] - x[2], x[1] + x[2], x[2] - x[1], x[1] - x[3]];
    let columns: [[f32; 4]; 4] = std::array::from_fn(|c| mix([d[0][c], d[1][c], d[2][c], d[3][c]]));
    let rows: [[f32; 4]; 4] = std::array::from_fn(|r| mix([columns[0][r], columns[1][r], columns[2][r], columns[3][r]]));
    std::array::from_fn(|k| rows[k / 4][k % 4])
}

/// `Aᵀ m A` of every tile's 16 products, `Aᵀ = [1 1 1 0; 0 1 −1 −1]`, written as its 2×2 outputs
/// (those inside the image). Tile by tile, channels innermost: the products are read in order.
fn transform_output(products: &[f32], output: &mut [f32], count: usize, channels: usize, grid: &TileGrid) {
    let columns = count * grid.tiles();
    let stride = plane_len(channels * columns);
    let plane = grid.height * grid.width;
    let reduce = |x: [f32; 4]| [x[0] + x[1] + x[2], x[1] - x[2] - x[3]];
    for column in 0..columns {
        let (image, tile) = (column / grid.tiles(), column % grid.tiles());
        let (y, x) = (2 * (tile / grid.columns), 2 * (tile % grid.columns));
        let inside = [(grid.height - y).min(2), (grid.width - x).min(2)];
        let values: [&[f32]; 16] = std::array::from_fn(|value| {
            let start = value * stride + column * channels;
            &products[start..start + channels]
        });
        let planes = output[image * channels * plane..].chunks_exact_mut(plane).take(channels);
        for (channel, pixels) in planes.enumerate() {
            let m: [f32; 16] = std::array::from_fn(|value| values[value][channel]);
            let rows: [[f32; 2]; 4] = std::array::from_fn(|r| reduce([m[4 * r], m[4 * r + 1], m[4 * r + 2], m[4 * r + 3]]));
            let by_column: [[f32; 2]; 2] = std::array::from_fn(|dx| reduce([rows[0][dx], rows[1][dx], rows[2][dx], rows[3][dx]]));
            for dy in 0..inside[0] {
                for dx in 0..inside[1] {
                    pixels[(y + dy) * grid.width + x + dx] = by_column[dx][dy];
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
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

    /// Odd and even sizes (edge tiles half outside), several images, channels in ≠ out.
    const SHAPES: [[usize; 4]; 4] = [[1, 3, 4, 4], [2, 5, 7, 6], [3, 8, 9, 13], [1, 16, 14, 14]];

    #[test]
    fn forward_matches_burn_flex_conv2d() {
        for (seed, shape) in SHAPES.into_iter().enumerate() {
            let x = random(shape, seed as u64);
            let weight = random([shape[1] + 2, shape[1], 3, 3], seed as u64 + 10);
            assert!(applies(&x, &weight, &options()));
            let reference = Flex::conv2d(x.clone(), weight.clone(), None, options());
            let error = relative_error(conv3x3(x, weight, Direction::Forward), reference);
            assert!(error < 1e-5, "{shape:?}: relative error {error}");
        }
    }

    #[test]
    fn input_gradient_matches_burn_flex_conv2d_x_backward() {
        for (seed, shape) in SHAPES.into_iter().enumerate() {
            let x = random(shape, seed as u64);
            let weight = random([shape[1] + 2, shape[1], 3, 3], seed as u64 + 10);
            let grad = random([shape[0], shape[1] + 2, shape[2], shape[3]], seed as u64 + 20);
            let reference = Flex::conv2d_x_backward(x, weight.clone(), grad.clone(), options());
            let error = relative_error(conv3x3(grad, weight, Direction::InputGradient), reference);
            assert!(error < 1e-5, "{shape:?}: relative error {error}");
        }
    }

    #[test]
    fn kernels_are_transformed_once_while_their_weights_live() {
        let weight = random([4, 3, 3, 3], 5);
        let planes = Filters::of(&weight).planes;
        assert!(Arc::ptr_eq(&planes, &Filters::of(&weight.clone()).planes));
        // The same values in other storage are other weights.
        let other = random([4, 3, 3, 3], 5);
        assert!(!Arc::ptr_eq(&planes, &Filters::of(&other).planes));
        drop(weight);
        Filters::of(&other);
        assert_eq!(Arc::strong_count(&planes), 1, "the cache let go of dropped weights");
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
