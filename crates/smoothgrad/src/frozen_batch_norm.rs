//! Batch normalisation with fixed running statistics (torchvision's `BatchNorm2d` in eval mode).

use burn::module::{Module, Param};
use burn::tensor::{Device, Tensor};

/// Epsilon torchvision's `BatchNorm2d` adds to the running variance.
pub const BATCH_NORM_EPSILON: f64 = 1e-5;

/// `y = (x − running_mean) / sqrt(running_var + ε) · weight + bias`, per channel.
///
/// burn's `BatchNorm` switches to batch statistics on an autodiff device; attribution always
/// needs the running statistics, so this module has no training mode at all. Its fields carry
/// torchvision's parameter names, so checkpoints load without renaming.
#[derive(Module, Debug)]
pub struct FrozenBatchNorm2d {
    /// Per-channel scale (torchvision `weight`).
    pub weight: Param<Tensor<1>>,
    /// Per-channel shift (torchvision `bias`).
    pub bias: Param<Tensor<1>>,
    /// Running mean of the training data.
    pub running_mean: Param<Tensor<1>>,
    /// Running variance of the training data.
    pub running_var: Param<Tensor<1>>,
}

impl FrozenBatchNorm2d {
    /// An identity normalisation over `channels` channels (weights are meant to be loaded).
    pub fn new(channels: usize, device: &Device) -> Self {
        let ones = || Param::from_tensor(Tensor::ones([channels], device));
        let zeros = || Param::from_tensor(Tensor::zeros([channels], device));
        Self {
            weight: ones(),
            bias: zeros(),
            running_mean: zeros(),
            running_var: ones(),
        }
    }

    /// Normalises `[batch, channels, height, width]`, in the input's float type.
    pub fn forward(&self, input: Tensor<4>) -> Tensor<4> {
        let scale = self.weight.val() / (self.running_var.val() + BATCH_NORM_EPSILON).sqrt();
        let shift = self.bias.val() - self.running_mean.val() * scale.clone();
        let dtype = input.dtype();
        input * per_channel(scale.cast(dtype)) + per_channel(shift.cast(dtype))
    }
}

fn per_channel(values: Tensor<1>) -> Tensor<4> {
    let [channels] = values.dims();
    values.reshape([1, channels, 1, 1])
}
