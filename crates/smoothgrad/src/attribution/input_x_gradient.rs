//! Input × Gradient (Shrikumar et al. 2016).

use burn::tensor::Tensor;

use super::{Attribution, input_gradient};
use crate::relu::ReluKind;
use crate::resnet::ResNet;
use crate::targets::Targets;

/// The input multiplied element-wise by its gradient.
#[derive(Clone, Copy, Debug, Default)]
pub struct InputXGradient;

impl Attribution for InputXGradient {
    fn attribute(&self, model: &ResNet, inputs: Tensor<4>, targets: &Targets) -> Tensor<4> {
        let gradient = input_gradient(model, inputs.clone(), targets, ReluKind::Standard);
        inputs.without_autodiff() * gradient
    }
}
