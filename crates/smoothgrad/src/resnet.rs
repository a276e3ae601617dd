//! torchvision's ResNet (v1.5), configurable in depth, width and number of classes.

use burn::config::Config;
use burn::module::Module;
use burn::nn::conv::Conv2d;
use burn::nn::pool::{MaxPool2d, MaxPool2dConfig};
use burn::nn::{Linear, LinearConfig, PaddingConfig2d};
use burn::tensor::{DType, Device, Tensor};

use crate::basic_block::BasicBlock;
use crate::bottleneck::Bottleneck;
use crate::conv::{ConvLowering, conv};
use crate::forward_pass::ForwardPass;
use crate::frozen_batch_norm::FrozenBatchNorm2d;
use crate::precision::{Precision, UnsupportedPrecision, cast_parameters};
use crate::relu::ReluKind;

/// Which residual block a ResNet is built from.
#[derive(Config, Debug, Copy, PartialEq, Eq)]
pub enum BlockKind {
    /// Two 3×3 convolutions (ResNet-18/34).
    Basic,
    /// 1×1, 3×3, 1×1 convolutions (ResNet-50/101/152).
    Bottleneck,
}

/// The shape of a torchvision ResNet.
#[derive(Config, Debug, PartialEq)]
pub struct ResNetConfig {
    /// Residual blocks in each of the four stages.
    pub layers: [usize; 4],
    /// Block type.
    pub block: BlockKind,
    /// Channels of the stem; stage `i` has `base_width · 2^i` planes (torchvision: 64).
    #[config(default = 64)]
    pub base_width: usize,
    /// Size of the classifier's output.
    #[config(default = 1000)]
    pub num_classes: usize,
}

impl ResNetConfig {
    /// ResNet-18 with `num_classes` outputs.
    pub fn resnet18(num_classes: usize) -> Self {
        Self::new([2, 2, 2, 2], BlockKind::Basic).with_num_classes(num_classes)
    }

    /// ResNet-34 with `num_classes` outputs.
    pub fn resnet34(num_classes: usize) -> Self {
        Self::new([3, 4, 6, 3], BlockKind::Basic).with_num_classes(num_classes)
    }

    /// ResNet-50 with `num_classes` outputs (torchvision `resnet50`: 1000).
    pub fn resnet50(num_classes: usize) -> Self {
        Self::new([3, 4, 6, 3], BlockKind::Bottleneck).with_num_classes(num_classes)
    }

    /// torchvision's name for this shape ("resnet50", …), or "resnet" for another depth.
    pub fn architecture_name(&self) -> &'static str {
        match (self.block, self.layers) {
            (BlockKind::Basic, [2, 2, 2, 2]) => "resnet18",
            (BlockKind::Basic, [3, 4, 6, 3]) => "resnet34",
            (BlockKind::Bottleneck, [3, 4, 6, 3]) => "resnet50",
            (BlockKind::Bottleneck, [3, 4, 23, 3]) => "resnet101",
            (BlockKind::Bottleneck, [3, 8, 36, 3]) => "resnet152",
            _ => "resnet",
        }
    }

    /// Builds the network with placeholder weights (meant to be replaced by a checkpoint).
    pub fn init(&self, device: &Device) -> ResNet {
        let mut channels = self.base_width;
        let mut stage = |index: usize| {
            let planes = self.base_width << index;
            let stride = if index == 0 { 1 } else { 2 };
            (0..self.layers[index])
                .map(|block| {
                    let stride = if block == 0 { stride } else { 1 };
                    let built = Block::new(self.block, channels, planes, stride, device);
                    channels = planes * self.block.expansion();
                    built
                })
                .collect::<Vec<_>>()
        };
        let (layer1, layer2, layer3, layer4) = (stage(0), stage(1), stage(2), stage(3));
        ResNet {
            conv1: conv(3, self.base_width, 7, 2, device),
            bn1: FrozenBatchNorm2d::new(self.base_width, device),
            maxpool: MaxPool2dConfig::new([3, 3])
                .with_strides([2, 2])
                .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
                .init(),
            layer1,
            layer2,
            layer3,
            layer4,
            fc: LinearConfig::new(channels, self.num_classes).init(device),
            conv_lowering: ConvLowering::default(),
        }
    }
}

impl BlockKind {
    fn expansion(self) -> usize {
        match self {
            Self::Basic => BasicBlock::EXPANSION,
            Self::Bottleneck => Bottleneck::EXPANSION,
        }
    }
}

/// One residual block of either kind.
#[derive(Module, Debug)]
#[allow(clippy::large_enum_variant, reason = "16 blocks per model: boxing would save nothing")]
pub enum Block {
    /// ResNet-18/34 block.
    Basic(BasicBlock),
    /// ResNet-50+ block.
    Bottleneck(Bottleneck),
}

impl Block {
    fn new(kind: BlockKind, channels_in: usize, planes: usize, stride: usize, device: &Device) -> Self {
        match kind {
            BlockKind::Basic => Self::Basic(BasicBlock::new(channels_in, planes, stride, device)),
            BlockKind::Bottleneck => {
                Self::Bottleneck(Bottleneck::new(channels_in, planes, stride, device))
            }
        }
    }

    fn forward(&self, input: Tensor<4>, pass: &ForwardPass) -> Tensor<4> {
        match self {
            Self::Basic(block) => block.forward(input, pass),
            Self::Bottleneck(block) => block.forward(input, pass),
        }
    }
}

/// torchvision's ResNet with its parameter names (`conv1`, `layer1.0.conv1`, `fc`, …).
#[derive(Module, Debug)]
pub struct ResNet {
    /// 7×7 stride-2 stem convolution.
    pub conv1: Conv2d,
    /// Its normalisation.
    pub bn1: FrozenBatchNorm2d,
    /// 3×3 stride-2 max pooling.
    pub maxpool: MaxPool2d,
    /// Stage 1 (stride 1).
    pub layer1: Vec<Block>,
    /// Stage 2 (stride 2).
    pub layer2: Vec<Block>,
    /// Stage 3 (stride 2).
    pub layer3: Vec<Block>,
    /// Stage 4 (stride 2).
    pub layer4: Vec<Block>,
    /// Classifier over the globally averaged features.
    pub fc: Linear,
    /// How the convolutions are computed (not a parameter: a checkpoint leaves it as it is).
    #[module(skip)]
    pub conv_lowering: ConvLowering,
}

impl ResNet {
    /// Logits `[batch, classes]` of normalised images `[batch, 3, height, width]`.
    pub fn forward(&self, input: Tensor<4>) -> Tensor<2> {
        self.forward_with(input, ReluKind::Standard)
    }

    /// The same network computing its convolutions as `lowering` says (the same numbers up to
    /// rounding; the speed depends on the device).
    pub fn with_conv_lowering(self, lowering: ConvLowering) -> Self {
        Self { conv_lowering: lowering, ..self }
    }

    /// The same network computing in `precision`, its weights cast once here (batch norms' stay
    /// f32). Inputs, logits and gradients stay f32. The weights say what it computes in, so a
    /// checkpoint loaded afterwards (as f32) makes it f32 again, and a cast back from f16 keeps
    /// the f16-rounded weights.
    pub fn with_precision(self, precision: Precision) -> Result<Self, UnsupportedPrecision> {
        precision.check_on(&self.fc.weight.device())?;
        Ok(cast_parameters(self, precision, &["FrozenBatchNorm2d"]))
    }

    /// What it computes in: its weights' float type.
    pub fn precision(&self) -> Precision {
        match self.conv1.weight.val().dtype() {
            DType::F16 => Precision::Half,
            _ => Precision::Single,
        }
    }

    /// Logits computed with the given ReLU backward rule at every ReLU.
    pub fn forward_with(&self, input: Tensor<4>, relu: ReluKind) -> Tensor<2> {
        self.forward_pass(input, &self.pass(relu))
    }

    /// A pass through this network with `relu` at every ReLU, computing its convolutions as the
    /// network's lowering says.
    pub fn pass(&self, relu: ReluKind) -> ForwardPass<'static> {
        ForwardPass::new(relu, self.conv_lowering)
    }

    /// Logits computed as `pass` says.
    pub fn forward_pass(&self, input: Tensor<4>, pass: &ForwardPass) -> Tensor<2> {
        let input = input.cast(self.precision().dtype());
        let x = pass.relu(self.bn1.forward(pass.conv(&self.conv1, input)));
        let mut x = self.maxpool.forward(x);
        for block in [&self.layer1, &self.layer2, &self.layer3, &self.layer4].into_iter().flatten() {
            x = block.forward(x, pass);
        }
        let [batch, channels, _, _] = x.dims();
        let pooled = x.mean_dim(3).mean_dim(2).reshape([batch, channels]);
        self.fc.forward(pooled).cast(DType::F32)
    }

    /// Number of classes the classifier scores.
    pub fn num_classes(&self) -> usize {
        self.fc.weight.dims()[1]
    }
}
