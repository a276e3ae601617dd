//! Input × Gradient (Shrikumar et al. 2016).

use burn::tensor::Tensor;

use super::{Attribution, Top1Maps, input_gradient, top1_input_gradient};
use crate::relu::ReluKind;
use crate::resnet::ResNet;
use crate::targets::Targets;

/// The input multiplied element-wise by its gradient.
#[derive(Clone, Copy, Debug, Default)]
pub struct InputXGradient;

impl Attribution for InputXGradient {
    fn attribute(&self, model: &ResNet, inputs: Tensor<4>, targets: &Targets) -> Tensor<4> {
        let gradient = input_gradient(model, inputs.clone(), targets, ReluKind::Standard);
        times_input(inputs, gradient)
    }

    fn attribute_top1(&self, model: &ResNet, inputs: Tensor<4>) -> Top1Maps {
        let gradient = top1_input_gradient(model, inputs.clone(), ReluKind::Standard);
        Top1Maps { maps: times_input(inputs, gradient.maps), ..gradient }
    }
}

/// Input × Gradient's maps from the gradient at `inputs`.
pub(super) fn times_input(inputs: Tensor<4>, gradient: Tensor<4>) -> Tensor<4> {
    inputs.without_autodiff() * gradient
}
