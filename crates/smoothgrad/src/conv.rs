//! Convolutions of the ResNet blocks: torchvision's layout; 1×1 ones as matrix products.

use burn::nn::PaddingConfig2d;
use burn::nn::conv::{Conv2d, Conv2dConfig};
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

/// `conv` (made by [`conv`]) applied to `input`. A 1×1 convolution (two of the three in each
/// bottleneck, and the downsample shortcuts) is one matrix product per image, `[out, in]` times
/// the (strided) input `[in, h·w]`; larger kernels use burn's convolution.
///
/// Why: without autotune — which gives wrong results on WebGPU in wasm — burn's GPU backend
/// convolves with a direct kernel (95 % of an H100's time in SmoothGrad); its matrix products are
/// tiled. Measured on an H100 (SmoothGrad-50, micro-batch 50): direct everywhere 750 ms, matrix
/// products everywhere 422 ms (k×k as k² shifted views: many small slice kernels, which also made
/// SwiftShader ~4× slower), matrix products for 1×1 only 220 ms. On the CPU backend the last two
/// are within noise of each other.
///
/// Backends sum in different orders, so where a ReLU's input lies within rounding of zero its gate
/// can differ, and with it a patch of the input gradient: compare backends on noisy inputs by
/// correlation, not element by element.
pub fn forward(conv: &Conv2d, input: Tensor<4>) -> Tensor<4> {
    if conv.kernel_size != [1, 1] {
        return conv.forward(input);
    }
    let [batch, channels, height, width] = input.dims();
    let weight = conv.weight.val();
    let [out_channels, ..] = weight.dims();
    let stride = conv.stride[0];
    let (out_height, out_width) = ((height - 1) / stride + 1, (width - 1) / stride + 1);
    let strided = |length: usize| Slice::new(0, Some(length as isize), stride as isize);
    let input = if stride > 1 {
        input.slice([Slice::full(), Slice::full(), strided(height), strided(width)])
    } else {
        input
    };
    let columns = input.reshape([batch, channels, out_height * out_width]);
    weight
        .reshape([1, out_channels, channels])
        .matmul(columns)
        .reshape([batch, out_channels, out_height, out_width])
}
