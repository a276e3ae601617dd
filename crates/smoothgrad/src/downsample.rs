//! The projection shortcut of a residual block: 1×1 convolution + batch norm.

use burn::module::Module;
use burn::nn::conv::Conv2d;
use burn::tensor::{Device, Tensor};

use crate::conv::conv;
use crate::forward_pass::ForwardPass;
use crate::frozen_batch_norm::FrozenBatchNorm2d;

/// torchvision's `downsample` (`Sequential(conv1x1, BatchNorm2d)`, keys `downsample.0`/`.1`,
/// remapped to `downsample.conv`/`.bn` on load).
#[derive(Module, Debug)]
pub struct Downsample {
    /// Strided 1×1 projection.
    pub conv: Conv2d,
    /// Its normalisation.
    pub bn: FrozenBatchNorm2d,
}

impl Downsample {
    /// A projection from `channels_in` to `channels_out` with `stride`.
    pub fn new(channels_in: usize, channels_out: usize, stride: usize, device: &Device) -> Self {
        Self {
            conv: conv(channels_in, channels_out, 1, stride, device),
            bn: FrozenBatchNorm2d::new(channels_out, device),
        }
    }

    /// Projects the block input onto the block output's shape.
    pub fn forward(&self, input: Tensor<4>, pass: &ForwardPass) -> Tensor<4> {
        self.bn.forward(pass.conv(&self.conv, input))
    }
}

/// The shortcut torchvision builds: a projection when the shape changes, identity otherwise.
pub fn shortcut(
    channels_in: usize,
    channels_out: usize,
    stride: usize,
    device: &Device,
) -> Option<Downsample> {
    (stride != 1 || channels_in != channels_out)
        .then(|| Downsample::new(channels_in, channels_out, stride, device))
}

/// Adds the shortcut of `input` (identity when there is no projection).
pub fn add_shortcut(
    residual: Tensor<4>,
    input: Tensor<4>,
    downsample: &Option<Downsample>,
    pass: &ForwardPass,
) -> Tensor<4> {
    let identity = match downsample {
        Some(projection) => projection.forward(input, pass),
        None => input,
    };
    residual + identity
}
