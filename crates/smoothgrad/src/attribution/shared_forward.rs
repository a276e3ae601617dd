//! One image's forward pass, shared by the maps asked of it one call at a time.

use std::cell::Cell;

use burn::tensor::Tensor;

use super::{Attribution, Method, Top1Maps, gradient_through, top1_gradient_through};
use crate::forward_pass::{ConvRecord, ForwardPass};
use crate::relu::ReluKind;
use crate::resnet::ResNet;
use crate::targets::Targets;

/// A model over fixed inputs whose convolutions are computed once for all the logits and maps
/// asked of them: the first pass records its convolutions' outputs and every later one replays
/// them, as a [`MethodSet`](super::MethodSet)'s passes do within one call. For what a page asks
/// of the image it shows, a call at a time: its classes, each ticked method's map, the maps of
/// another class. A later map then costs a backward pass and the forward's element-wise work,
/// and classifying again only that work.
///
/// It holds its model (a clone shares the weights) so that no record is replayed for another
/// network. The record holds about a forward pass's convolution outputs (44 MB for one 224×224
/// image through ResNet-50) until [`Self::forget`]. Integrated Gradients, whose passes are along
/// a path, computes its own.
pub struct SharedForward {
    model: ResNet,
    inputs: Tensor<4>,
    record: ConvRecord,
    /// Whether a pass ran to its end recording: one that stopped midway left a part of one.
    recorded: Cell<bool>,
}

impl SharedForward {
    /// `model` over `inputs` `[batch, 3, height, width]`, normalised, with nothing recorded yet.
    pub fn new(model: ResNet, inputs: Tensor<4>) -> Self {
        Self { model, inputs: inputs.without_autodiff(), record: ConvRecord::default(), recorded: Cell::new(false) }
    }

    fn inputs(&self) -> Tensor<4> {
        self.inputs.clone()
    }

    /// `[batch, classes]`, as [`ResNet::forward`] gives them.
    pub fn logits(&self) -> Tensor<2> {
        self.through(ReluKind::Standard, |pass| self.model.forward_pass(self.inputs(), pass))
    }

    /// `method`'s maps for `targets`, as [`Attribution::attribute`] gives them.
    pub fn attribute(&self, method: &Method, targets: &Targets) -> Tensor<4> {
        let Some(rule) = method.gradient_rule() else {
            return method.attribute(&self.model, self.inputs(), targets);
        };
        let gradient = self.through(rule, |pass| gradient_through(&self.model, self.inputs(), targets, pass));
        method.maps_from_gradient(self.inputs(), gradient)
    }

    /// `method`'s maps of each image's top-1 class with the logits, as
    /// [`Attribution::attribute_top1`] gives them.
    pub fn attribute_top1(&self, method: &Method) -> Top1Maps {
        let Some(rule) = method.gradient_rule() else {
            return method.attribute_top1(&self.model, self.inputs());
        };
        let top1 = self.through(rule, |pass| top1_gradient_through(&self.model, self.inputs(), pass));
        Top1Maps { maps: method.maps_from_gradient(self.inputs(), top1.maps), ..top1 }
    }

    /// Drops the record, freeing its memory: the next pass computes its convolutions again.
    pub fn forget(&self) {
        self.record.clear();
        self.recorded.set(false);
    }

    /// `run` given a pass with `relu` that records the convolutions, or replays them once a pass
    /// has recorded them all.
    fn through<T>(&self, relu: ReluKind, run: impl FnOnce(&ForwardPass) -> T) -> T {
        if self.recorded.get() {
            return run(&self.model.pass(relu).replaying(&self.record));
        }
        let result = run(&self.model.pass(relu).recording(&self.record));
        self.recorded.set(true);
        result
    }
}

#[cfg(all(test, feature = "flex"))]
mod tests {
    use super::*;
    use crate::fixed_values::fixed_tensor;
    use crate::resnet::{BlockKind, ResNetConfig};
    use burn::tensor::Device;

    fn image(seed: u64, device: &Device) -> Tensor<4> {
        fixed_tensor([1, 3, 64, 64], seed, device)
    }

    fn values<const D: usize>(tensor: Tensor<D>) -> Vec<f32> {
        tensor.into_data().try_to_vec::<f32>().unwrap()
    }

    /// The numbers alone cannot tell a replay from a pass computed again (they are equal by
    /// design), so the inputs are swapped behind the record's back: a replay still gives the
    /// recorded image's logits and maps, a computed pass the new image's.
    #[test]
    fn calls_after_the_first_replay_its_convolutions_until_forgotten() {
        let device = Device::flex();
        let model = ResNetConfig::new([1, 1, 1, 1], BlockKind::Bottleneck).with_base_width(8).with_num_classes(10).init(&device);
        let (recorded, swapped) = (image(1, &device), image(2, &device));
        let mut shared = SharedForward::new(model.clone(), recorded.clone());
        let recorded_logits = values(shared.logits());
        assert_eq!(recorded_logits, values(model.forward(recorded.clone())));
        shared.inputs = swapped.clone();
        let swapped_logits = values(model.forward(swapped.clone()));
        assert_ne!(recorded_logits, swapped_logits, "the two images must be told apart");

        assert_eq!(values(shared.logits()), recorded_logits, "logits replayed");
        let gradient = Method::Gradient;
        let targets = Targets::classes(&[3], 10, &device).unwrap();
        let replayed_map = values(shared.attribute(&gradient, &targets));
        assert_eq!(replayed_map, values(gradient.attribute(&model, recorded, &targets)), "a map replayed");

        shared.forget();
        assert_eq!(values(shared.attribute(&gradient, &targets)), values(gradient.attribute(&model, swapped, &targets)), "computed again");
        assert_eq!(values(shared.logits()), swapped_logits, "then replayed from the new record");
    }
}
