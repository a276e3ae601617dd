//! Guided Backpropagation (Springenberg et al. 2015).

use burn::tensor::Tensor;

use super::{Attribution, Top1Maps, input_gradient, top1_input_gradient};
use crate::relu::ReluKind;
use crate::resnet::ResNet;
use crate::targets::Targets;

/// The gradient with every ReLU passing back only positive gradients where its input was
/// positive.
#[derive(Clone, Copy, Debug, Default)]
pub struct GuidedBackprop;

impl Attribution for GuidedBackprop {
    fn attribute(&self, model: &ResNet, inputs: Tensor<4>, targets: &Targets) -> Tensor<4> {
        input_gradient(model, inputs, targets, ReluKind::Guided)
    }

    fn attribute_top1(&self, model: &ResNet, inputs: Tensor<4>) -> Top1Maps {
        top1_input_gradient(model, inputs, ReluKind::Guided)
    }
}
