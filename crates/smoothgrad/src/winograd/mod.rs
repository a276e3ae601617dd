//! 3×3 stride-1 convolutions by Winograd's minimal filtering F(m×m, 3×3) (Lavin & Gray 2015,
//! "Fast algorithms for convolutional neural networks"). In F(2×2, 3×3) each 4×4 window of the
//! input and each kernel is transformed, the 16 values of a window multiply the kernels' 16 values
//! channel pair by channel pair (16 matrix products), and each tile's 16 sums are transformed back
//! into its 2×2 outputs: 16 multiplications per tile and channel pair instead of 36. F(4×4, 3×3)
//! (on images of 28×28 and more) reads 6×6 windows for 4×4 tiles: 36 instead of 144. Both
//! backends take their tilings from `tiling.rs`.
//!
//! 13 of ResNet-50's 16 3×3 convolutions have stride 1, 37 % of its multiplications forward and as
//! many in the input gradient, which is a 3×3 stride-1 convolution of the output gradient with the
//! flipped, transposed kernel: the same routine serves both ([`Direction`]). On burn's CPU backend
//! through gemm (`cpu.rs`), on its GPU backend through three kernels of our own and the products of
//! [`crate::product`] (`gpu.rs`).

use burn::backend::tensor::FloatTensor;
use burn::backend::{Backend, TensorMetadata, backend_extension};
use burn::tensor::ops::{ConvOptions, ConvTransposeOptions};
use burn::tensor::{DType, Shape};

#[cfg(feature = "flex")]
mod cpu;
#[cfg(feature = "wgpu")]
mod gpu;
#[cfg(any(feature = "flex", feature = "wgpu"))]
mod tiling;

/// Which convolution [`WinogradConvBackend::winograd_conv3x3`] computes from the kernel `weight`
/// `[out, in, 3, 3]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// `conv2d(x, weight)`: `x` has `in` channels, the result `out`.
    Forward,
    /// The input gradient of that convolution: `x` is the output gradient (`out` channels), the
    /// result has `in`.
    InputGradient,
}

/// Whether [`WinogradConvBackend::winograd_conv3x3`] computes `conv2d(x, weight)` with `options`:
/// f32, 3×3 kernel, stride 1, padding 1, no dilation or groups.
pub fn applies<T: TensorMetadata>(x: &T, weight: &T, options: &ConvOptions<2>) -> bool {
    let [_, _, kernel @ ..] = weight.shape().dims::<4>();
    x.shape().num_elements() > 0
        && weight.shape().num_elements() > 0
        && x.dtype() == DType::F32
        && weight.dtype() == DType::F32
        && kernel == [3, 3]
        && options.stride == [1, 1]
        && options.padding == [(1, 1), (1, 1)]
        && options.dilation == [1, 1]
        && options.groups == 1
}

/// The shape of [`WinogradConvBackend::winograd_conv3x3`]'s result: `x`'s, with the channels the
/// convolution `direction` names makes.
// Only the Fusion backend's arm, which comes with the GPU backend, asks.
#[cfg_attr(not(feature = "wgpu"), allow(dead_code))]
fn output_shape(x: &Shape, weight: &Shape, direction: &Direction) -> Shape {
    let [batch, _, height, width] = x.dims::<4>();
    let [kernel_out, kernel_in, ..] = weight.dims::<4>();
    let channels = match direction {
        Direction::Forward => kernel_out,
        Direction::InputGradient => kernel_in,
    };
    Shape::new([batch, channels, height, width])
}

/// A 3×3 stride-1 convolution by Winograd's minimal filtering as a backend operation, on burn's CPU
/// and GPU backends; elsewhere burn's own convolution.
#[backend_extension(Cube: cfg(feature = "wgpu"), Flex: cfg(feature = "flex"), Fusion: cfg(feature = "wgpu"))]
pub trait WinogradConvBackend: Backend {
    /// The convolution `direction` names, of `x` `[batch, channels, height, width]` with the 3×3
    /// `weight` at stride 1 and padding 1 (check [`applies`] first).
    #[fusion(dtype = x, shape = output_shape(x, weight, direction))]
    fn winograd_conv3x3(x: FloatTensor<Self>, weight: FloatTensor<Self>, direction: Direction) -> FloatTensor<Self> {
        match direction {
            Direction::Forward => Self::conv2d(x, weight, None, ConvOptions::new([1, 1], [1, 1], [1, 1], 1)),
            Direction::InputGradient => {
                let options = ConvTransposeOptions::new([1, 1], [1, 1], [0, 0], [1, 1], 1);
                Self::conv_transpose2d(x, weight, None, options)
            }
        }
    }
}

#[cfg(feature = "flex")]
impl WinogradConvBackend for burn::backend::Flex {
    fn winograd_conv3x3(x: FloatTensor<Self>, weight: FloatTensor<Self>, direction: Direction) -> FloatTensor<Self> {
        cpu::conv3x3(x, weight, direction)
    }
}

#[cfg(feature = "wgpu")]
impl WinogradConvBackend for burn_cubecl::CubeBackend {
    fn winograd_conv3x3(x: FloatTensor<Self>, weight: FloatTensor<Self>, direction: Direction) -> FloatTensor<Self> {
        gpu::conv3x3(x, weight, direction)
    }
}
