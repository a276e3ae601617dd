//! Convolution helpers shared by the ResNet blocks.

use burn::nn::PaddingConfig2d;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::tensor::Device;

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
