//! One image's forward pass, shared by the maps asked of it one call at a time.

use burn::tensor::Tensor;

use super::{Attribution, Method, Top1Maps, gradient_through, top1_gradient_through};
use crate::forward_pass::{ConvRecord, ForwardPass};
use crate::relu::ReluKind;
use crate::resnet::ResNet;
use crate::targets::Targets;

/// Inputs whose convolutions are computed once for all the logits and maps asked of them: the
/// first pass records its convolutions' outputs and every later one replays them, as a
/// [`MethodSet`](super::MethodSet)'s passes do within one call. For what a page asks of the
/// image it shows, a call at a time: its classes, each ticked method's map, the maps of another
/// class. A later map then costs a backward pass and the forward's element-wise work, and
/// classifying again only that work.
///
/// Every call must pass the same model (a record of another network's convolutions gives wrong
/// maps): [`Self::forget`] when it changes. The record holds about a forward pass's
/// convolution outputs (44 MB for one 224×224 image through ResNet-50). Integrated Gradients,
/// whose passes are along a path, computes its own.
pub struct SharedForward {
    inputs: Tensor<4>,
    record: ConvRecord,
}

impl SharedForward {
    /// `inputs` `[batch, 3, height, width]`, normalised, with nothing recorded yet.
    pub fn new(inputs: Tensor<4>) -> Self {
        Self { inputs: inputs.without_autodiff(), record: ConvRecord::default() }
    }

    /// The inputs.
    pub fn inputs(&self) -> Tensor<4> {
        self.inputs.clone()
    }

    /// `[batch, classes]`, as [`ResNet::forward`] gives them.
    pub fn logits(&self, model: &ResNet) -> Tensor<2> {
        model.forward_pass(self.inputs(), &self.pass(model, ReluKind::Standard))
    }

    /// `method`'s maps for `targets`, as [`Attribution::attribute`] gives them.
    pub fn attribute(&self, model: &ResNet, method: &Method, targets: &Targets) -> Tensor<4> {
        match method.gradient_rule() {
            Some(rule) => {
                let gradient = gradient_through(model, self.inputs(), targets, &self.pass(model, rule));
                method.maps_from_gradient(self.inputs(), gradient)
            }
            None => method.attribute(model, self.inputs(), targets),
        }
    }

    /// `method`'s maps of each image's top-1 class with the logits, as
    /// [`Attribution::attribute_top1`] gives them.
    pub fn attribute_top1(&self, model: &ResNet, method: &Method) -> Top1Maps {
        match method.gradient_rule() {
            Some(rule) => {
                let top1 = top1_gradient_through(model, self.inputs(), &self.pass(model, rule));
                Top1Maps { maps: method.maps_from_gradient(self.inputs(), top1.maps), ..top1 }
            }
            None => method.attribute_top1(model, self.inputs()),
        }
    }

    /// Drops the record: the next pass computes its convolutions (for another model) and
    /// records them again.
    pub fn forget(&self) {
        self.record.clear();
    }

    fn pass(&self, model: &ResNet, relu: ReluKind) -> ForwardPass<'_> {
        if self.record.is_empty() { model.pass(relu).recording(&self.record) } else { model.pass(relu).replaying(&self.record) }
    }
}
