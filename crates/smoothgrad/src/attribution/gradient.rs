//! Vanilla gradient (Simonyan et al. 2014).

use burn::tensor::Tensor;

use super::{Attribution, Top1Maps, input_gradient, top1_input_gradient};
use crate::relu::ReluKind;
use crate::resnet::ResNet;
use crate::targets::Targets;

/// ∂ logit / ∂ input.
#[derive(Clone, Copy, Debug, Default)]
pub struct Gradient;

impl Attribution for Gradient {
    fn attribute(&self, model: &ResNet, inputs: Tensor<4>, targets: &Targets) -> Tensor<4> {
        input_gradient(model, inputs, targets, ReluKind::Standard)
    }

    fn attribute_top1(&self, model: &ResNet, inputs: Tensor<4>) -> Top1Maps {
        top1_input_gradient(model, inputs, ReluKind::Standard)
    }
}
