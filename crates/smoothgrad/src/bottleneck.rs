//! ResNet-50/101/152's residual block.

use burn::module::Module;
use burn::nn::conv::Conv2d;
use burn::tensor::{Device, Tensor};

use crate::conv::conv;
use crate::downsample::{Downsample, add_shortcut, shortcut};
use crate::frozen_batch_norm::FrozenBatchNorm2d;
use crate::forward_pass::ForwardPass;

/// 1×1 reduce, 3×3, 1×1 expand, with a shortcut (torchvision `Bottleneck`, ResNet v1.5: the
/// stride sits on the 3×3 convolution).
#[derive(Module, Debug)]
pub struct Bottleneck {
    /// 1×1 reduction.
    pub conv1: Conv2d,
    /// Its normalisation.
    pub bn1: FrozenBatchNorm2d,
    /// 3×3 convolution; carries the block's stride.
    pub conv2: Conv2d,
    /// Its normalisation.
    pub bn2: FrozenBatchNorm2d,
    /// 1×1 expansion.
    pub conv3: Conv2d,
    /// Its normalisation.
    pub bn3: FrozenBatchNorm2d,
    /// Projection shortcut where the shape changes.
    pub downsample: Option<Downsample>,
}

impl Bottleneck {
    /// Output channels per `planes`.
    pub const EXPANSION: usize = 4;

    /// A block from `channels_in` to `planes × 4` channels.
    pub fn new(channels_in: usize, planes: usize, stride: usize, device: &Device) -> Self {
        let channels_out = planes * Self::EXPANSION;
        Self {
            conv1: conv(channels_in, planes, 1, 1, device),
            bn1: FrozenBatchNorm2d::new(planes, device),
            conv2: conv(planes, planes, 3, stride, device),
            bn2: FrozenBatchNorm2d::new(planes, device),
            conv3: conv(planes, channels_out, 1, 1, device),
            bn3: FrozenBatchNorm2d::new(channels_out, device),
            downsample: shortcut(channels_in, channels_out, stride, device),
        }
    }

    /// Runs the block; the pass's ReLU is applied at all three places torchvision applies its
    /// shared ReLU.
    pub fn forward(&self, input: Tensor<4>, pass: &ForwardPass) -> Tensor<4> {
        let x = pass.relu(self.bn1.forward(pass.conv(&self.conv1, input.clone())));
        let x = pass.relu(self.bn2.forward(pass.conv(&self.conv2, x)));
        let x = self.bn3.forward(pass.conv(&self.conv3, x));
        pass.relu(add_shortcut(x, input, &self.downsample, pass))
    }
}
