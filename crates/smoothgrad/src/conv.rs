//! Convolutions of the ResNet blocks: torchvision's layout, computed as matrix products.

use burn::nn::PaddingConfig2d;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::tensor::ops::PadMode;
use burn::tensor::{Device, Slice, Tensor};

/// A bias-free `kernel × kernel` convolution with torchvision's padding (`kernel / 2`).
pub fn conv(
    channels_in: usize,
    channels_out: usize,
    kernel: usize,
    stride: usize,
    device: &Device,
) -> Conv2d {
    let padding = kernel / 2;
    Conv2dConfig::new([channels_in, channels_out], [kernel, kernel])
        .with_stride([stride, stride])
        .with_padding(PaddingConfig2d::Explicit(padding, padding, padding, padding))
        .with_bias(false)
        .init(device)
}

/// `conv` (made by [`conv`]) applied to `input`, as one matrix product per image: the weights
/// `[out, in·k²]` times the `k²` shifted views of the padded input `[in·k², out_h·out_w]`
/// (1×1 convolutions need no views).
///
/// Why not `Conv2d::forward`: without autotune — which gives wrong results on WebGPU in wasm —
/// burn's GPU backend runs a direct convolution kernel that took 95 % of an H100's time in
/// SmoothGrad, while its matrix product kernels are tiled. The backward pass is then matrix
/// products and slice gradients too.
pub fn forward(conv: &Conv2d, input: Tensor<4>) -> Tensor<4> {
    let [batch, channels, height, width] = input.dims();
    let weight = conv.weight.val();
    let [out_channels, _, kernel, _] = weight.dims();
    let stride = conv.stride[0];
    let padding = kernel / 2;
    let out_height = (height + 2 * padding - kernel) / stride + 1;
    let out_width = (width + 2 * padding - kernel) / stride + 1;
    let padded = if padding > 0 {
        input.pad((padding, padding, padding, padding), PadMode::Constant(0.0))
    } else {
        input
    };
    let view = |row: usize, column: usize| {
        let window = |offset: usize, length: usize| {
            Slice::new(offset as isize, Some((offset + stride * (length - 1) + 1) as isize), stride as isize)
        };
        padded
            .clone()
            .slice([Slice::full(), Slice::full(), window(row, out_height), window(column, out_width)])
    };
    let columns = if kernel == 1 {
        view(0, 0).reshape([batch, channels, out_height * out_width])
    } else {
        let views = (0..kernel).flat_map(|row| (0..kernel).map(move |column| (row, column)));
        Tensor::stack::<5>(views.map(|(row, column)| view(row, column)).collect(), 2)
            .reshape([batch, channels * kernel * kernel, out_height * out_width])
    };
    weight
        .reshape([1, out_channels, channels * kernel * kernel])
        .matmul(columns)
        .reshape([batch, out_channels, out_height, out_width])
}
