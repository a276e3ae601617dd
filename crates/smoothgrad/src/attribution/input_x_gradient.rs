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
        inputs.without_autodiff() * gradient
    }

    fn attribute_top1(&self, model: &ResNet, inputs: Tensor<4>) -> Top1Maps {
        let gradient = top1_input_gradient(model, inputs.clone(), ReluKind::Standard);
        Top1Maps { maps: inputs.without_autodiff() * gradient.maps, ..gradient }
    }
}
