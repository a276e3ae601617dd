//! Attribution methods: each maps images and target classes to per-pixel maps.

mod gradient;
mod guided_backprop;
mod input_x_gradient;
mod integrated_gradients;
mod method;
mod method_set;
mod shared_forward;

pub use gradient::Gradient;
pub use guided_backprop::GuidedBackprop;
pub use input_x_gradient::InputXGradient;
pub use integrated_gradients::{BadStepRange, Baseline, IntegratedGradients, MAX_IG_STEPS, Quadrature};
pub use method::Method;
pub use method_set::{MethodSet, NoMethods};
pub use shared_forward::SharedForward;

use burn::tensor::Tensor;

use crate::forward_pass::{ConvRecord, ForwardPass};
use crate::relu::ReluKind;
use crate::resnet::ResNet;
use crate::targets::Targets;

/// A saliency method: how much each input value matters to each image's target logit.
pub trait Attribution {
    /// Maps `[batch, 3 · maps per image, height, width]` ([`Self::maps_per_image`]) for normalised
    /// `inputs` `[batch, 3, height, width]`.
    fn attribute(&self, model: &ResNet, inputs: Tensor<4>, targets: &Targets) -> Tensor<4>;

    /// Maps per image, each `[3, height, width]`, stacked along the channels of
    /// [`Self::attribute`]'s result.
    fn maps_per_image(&self) -> usize {
        1
    }

    /// Forward+backward passes one image costs (for progress and batch sizing).
    fn passes_per_image(&self) -> usize {
        1
    }

    /// The logits of `inputs` and each image's map for its own top-1 class: what a page shows
    /// first for a new image. Here a forward pass chooses the classes, then [`Self::attribute`]
    /// runs; methods whose pass is at the clean inputs take both from that one pass.
    fn attribute_top1(&self, model: &ResNet, inputs: Tensor<4>) -> Top1Maps {
        let logits = model.forward(inputs.clone());
        let targets = Targets::top1(logits.clone());
        let maps = self.attribute(model, inputs, &targets);
        Top1Maps { logits, targets, maps }
    }
}

/// [`Attribution::attribute_top1`]'s result.
#[derive(Clone, Debug)]
pub struct Top1Maps {
    /// `[batch, classes]`, as [`ResNet::forward`] gives them.
    pub logits: Tensor<2>,
    /// Each image's highest-scoring class, chosen on the device.
    pub targets: Targets,
    /// `[batch, 3, height, width]`, for `targets`.
    pub maps: Tensor<4>,
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
    gradient_through(model, inputs, targets, &model.pass(relu))
}

/// [`input_gradient`] for each of `relus`, from one forward pass: the first rule's pass records
/// its convolutions' outputs, most of a forward pass, and each other rule's pass replays them
/// ([`ForwardPass::replaying`](crate::ForwardPass::replaying)). The gradients are the ones
/// [`input_gradient`] gives; the record stays in memory until the last one is taken.
pub fn input_gradients(model: &ResNet, inputs: Tensor<4>, targets: &Targets, relus: &[ReluKind]) -> Vec<Tensor<4>> {
    let record = ConvRecord::default();
    let inputs = inputs.without_autodiff();
    let passes = relus.iter().enumerate().map(|(index, &relu)| match index {
        0 if relus.len() == 1 => model.pass(relu),
        0 => model.pass(relu).recording(&record),
        _ => model.pass(relu).replaying(&record),
    });
    passes.map(|pass| gradient_through(model, inputs.clone(), targets, &pass)).collect()
}

/// The input gradient of the targets' logits computed as `pass` says.
fn gradient_through(model: &ResNet, inputs: Tensor<4>, targets: &Targets, pass: &ForwardPass) -> Tensor<4> {
    let inputs = tracked(inputs);
    let logits = model.forward_pass(inputs.clone(), pass);
    gradient_of(&inputs, targets.score(logits))
}

/// The same for each image's top-1 class, which the forward pass that the gradient needs
/// anyway chooses: a classification and a map for the price of the map.
pub fn top1_input_gradient(model: &ResNet, inputs: Tensor<4>, relu: ReluKind) -> Top1Maps {
    top1_gradient_through(model, inputs, &model.pass(relu))
}

/// [`top1_input_gradient`] computed as `pass` says.
fn top1_gradient_through(model: &ResNet, inputs: Tensor<4>, pass: &ForwardPass) -> Top1Maps {
    let inputs = tracked(inputs);
    let logits = model.forward_pass(inputs.clone(), pass);
    let targets = Targets::top1(logits.clone());
    let maps = gradient_of(&inputs, targets.score(logits.clone()));
    Top1Maps { logits: logits.detach().without_autodiff(), targets, maps }
}

fn tracked(inputs: Tensor<4>) -> Tensor<4> {
    inputs.without_autodiff().autodiff().require_grad()
}

fn gradient_of(tracked_inputs: &Tensor<4>, score: Tensor<1>) -> Tensor<4> {
    let grads = score.backward();
    tracked_inputs
        .grad(&grads)
        .expect("the input requires a gradient, so backward produces one")
}
