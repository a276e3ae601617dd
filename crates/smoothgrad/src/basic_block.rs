//! ResNet-18/34's residual block.

use burn::module::Module;
use burn::nn::conv::Conv2d;
use burn::tensor::{Device, Tensor};

use crate::conv::conv;
use crate::downsample::{Downsample, add_shortcut, shortcut};
use crate::frozen_batch_norm::FrozenBatchNorm2d;
use crate::forward_pass::ForwardPass;

/// Two 3×3 convolutions with a shortcut (torchvision `BasicBlock`, expansion 1).
#[derive(Module, Debug)]
pub struct BasicBlock {
    /// First 3×3 convolution; carries the block's stride.
    pub conv1: Conv2d,
    /// Its normalisation.
    pub bn1: FrozenBatchNorm2d,
    /// Second 3×3 convolution.
    pub conv2: Conv2d,
    /// Its normalisation.
    pub bn2: FrozenBatchNorm2d,
    /// Projection shortcut where the shape changes.
    pub downsample: Option<Downsample>,
}

impl BasicBlock {
    /// Output channels per `planes`.
    pub const EXPANSION: usize = 1;

    /// A block from `channels_in` to `planes` channels.
    pub fn new(channels_in: usize, planes: usize, stride: usize, device: &Device) -> Self {
        Self {
            conv1: conv(channels_in, planes, 3, stride, device),
            bn1: FrozenBatchNorm2d::new(planes, device),
            conv2: conv(planes, planes, 3, 1, device),
            bn2: FrozenBatchNorm2d::new(planes, device),
            downsample: shortcut(channels_in, planes, stride, device),
        }
    }

    /// Runs the block; the pass's ReLU is applied after each convolution and after the sum, as
    /// torchvision.
    pub fn forward(&self, input: Tensor<4>, pass: &ForwardPass) -> Tensor<4> {
        let x = pass.relu(self.bn1.forward(pass.conv(&self.conv1, input.clone())));
        let x = self.bn2.forward(pass.conv(&self.conv2, x));
        pass.relu(add_shortcut(x, input, &self.downsample, pass))
    }
}
