//! A method chosen at run time (from a menu, a URL, a command line).

use std::num::NonZeroUsize;
use std::str::FromStr;

use burn::tensor::Tensor;

use super::{Attribution, Gradient, GuidedBackprop, InputXGradient, IntegratedGradients, Top1Maps};
use super::input_x_gradient::times_input;
use crate::names::{UnknownName, by_name};
use crate::relu::ReluKind;
use crate::resnet::ResNet;
use crate::targets::Targets;

/// One of the attribution methods, picked by name.
#[derive(Clone, Debug)]
#[allow(clippy::large_enum_variant, reason = "one per run: boxing would save nothing")]
pub enum Method {
    /// [`Gradient`].
    Gradient,
    /// [`GuidedBackprop`].
    GuidedBackprop,
    /// [`IntegratedGradients`].
    IntegratedGradients(IntegratedGradients),
    /// [`InputXGradient`].
    InputXGradient,
}

impl Method {
    /// Integrated Gradients with `steps` path points (Captum's defaults otherwise); other
    /// methods are returned unchanged.
    pub fn with_steps(self, steps: NonZeroUsize) -> Self {
        match self {
            Self::IntegratedGradients(ig) => Self::IntegratedGradients(IntegratedGradients { steps, ..ig }),
            other => other,
        }
    }
}

impl FromStr for Method {
    type Err = UnknownName;

    /// "gradient", "guided-backprop", "integrated-gradients" or "input-x-gradient".
    fn from_str(name: &str) -> Result<Self, Self::Err> {
        by_name("method", name, &[
            ("gradient", Self::Gradient),
            ("guided-backprop", Self::GuidedBackprop),
            ("integrated-gradients", Self::IntegratedGradients(IntegratedGradients::default())),
            ("input-x-gradient", Self::InputXGradient),
        ])
    }
}

impl Method {
    /// The ReLU rule of the gradient at the inputs that this method's maps are made from; none for
    /// Integrated Gradients, whose gradients are taken along a path.
    pub(super) fn gradient_rule(&self) -> Option<ReluKind> {
        match self {
            Self::Gradient | Self::InputXGradient => Some(ReluKind::Standard),
            Self::GuidedBackprop => Some(ReluKind::Guided),
            Self::IntegratedGradients(_) => None,
        }
    }

    /// This method's maps from `gradient`, the gradient at `inputs` with [`Self::gradient_rule`].
    pub(super) fn maps_from_gradient(&self, inputs: Tensor<4>, gradient: Tensor<4>) -> Tensor<4> {
        match self {
            Self::InputXGradient => times_input(inputs, gradient),
            _ => gradient,
        }
    }

    /// The method itself, so that each of [`Attribution`]'s calls is passed on in one place.
    fn as_attribution(&self) -> &dyn Attribution {
        match self {
            Self::Gradient => &Gradient,
            Self::GuidedBackprop => &GuidedBackprop,
            Self::IntegratedGradients(ig) => ig,
            Self::InputXGradient => &InputXGradient,
        }
    }
}

impl Attribution for Method {
    fn attribute(&self, model: &ResNet, inputs: Tensor<4>, targets: &Targets) -> Tensor<4> {
        self.as_attribution().attribute(model, inputs, targets)
    }

    fn passes_per_image(&self) -> usize {
        self.as_attribution().passes_per_image()
    }

    fn attribute_top1(&self, model: &ResNet, inputs: Tensor<4>) -> Top1Maps {
        self.as_attribution().attribute_top1(model, inputs)
    }
}
