//! Attribution methods: each maps images and target classes to per-pixel maps.

mod gradient;
mod guided_backprop;
mod input_x_gradient;
mod integrated_gradients;
mod method;

pub use gradient::Gradient;
pub use guided_backprop::GuidedBackprop;
pub use input_x_gradient::InputXGradient;
pub use integrated_gradients::{Baseline, IntegratedGradients, MAX_IG_STEPS, Quadrature};
pub use method::Method;

use burn::tensor::Tensor;

use crate::relu::ReluKind;
use crate::resnet::ResNet;
use crate::targets::Targets;

/// A saliency method: how much each input value matters to each image's target logit.
pub trait Attribution {
    /// Maps `[batch, 3, height, width]` for normalised `inputs` `[batch, 3, height, width]`.
    fn attribute(&self, model: &ResNet, inputs: Tensor<4>, targets: &Targets) -> Tensor<4>;

    /// Forward+backward passes one image costs (for progress and batch sizing).
    fn passes_per_image(&self) -> usize {
        1
    }
}

/// Gradient of each image's target logit with respect to that image, with the given ReLU rule.
///
/// Only the input is tracked: the model's parameters are constants, so no weight gradient is
/// ever built.
pub fn input_gradient(
    model: &ResNet,
    inputs: Tensor<4>,
    targets: &Targets,
    relu: ReluKind,
) -> Tensor<4> {
    let inputs = inputs.without_autodiff().autodiff().require_grad();
    let logits = model.forward_with(inputs.clone(), relu);
    let grads = targets.score(logits).backward();
    inputs
        .grad(&grads)
        .expect("the input requires a gradient, so backward produces one")
}
