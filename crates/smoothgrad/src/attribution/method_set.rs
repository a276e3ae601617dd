//! Several methods over the same images, sharing what their passes have in common.

use burn::tensor::Tensor;

use super::{Attribution, Method, input_gradients};
use crate::relu::ReluKind;
use crate::resnet::ResNet;
use crate::targets::Targets;

/// An empty [`MethodSet`].
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("a set of attribution methods needs at least one method")]
pub struct NoMethods;

/// Several methods' maps of the same images, stacked along the channels:
/// `[batch, 3 · methods, height, width]`, in the order given.
///
/// The methods made from the gradient at the inputs (all but Integrated Gradients) share one
/// forward pass between their ReLU rules ([`input_gradients`]), and Gradient and Input×Gradient
/// their gradient too: Gradient with Guided Backprop costs one forward and two backward passes
/// instead of two of each.
#[derive(Clone, Debug)]
pub struct MethodSet {
    methods: Vec<Method>,
}

impl MethodSet {
    /// The set of `methods`, in this order; refused when empty.
    pub fn new(methods: Vec<Method>) -> Result<Self, NoMethods> {
        if methods.is_empty() {
            return Err(NoMethods);
        }
        Ok(Self { methods })
    }

    /// The ReLU rules of the gradients at the inputs that the methods need, each once.
    fn gradient_rules(&self) -> Vec<ReluKind> {
        let mut rules = Vec::new();
        for rule in self.methods.iter().filter_map(Method::gradient_rule) {
            if !rules.contains(&rule) {
                rules.push(rule);
            }
        }
        rules
    }
}

impl Attribution for MethodSet {
    fn attribute(&self, model: &ResNet, inputs: Tensor<4>, targets: &Targets) -> Tensor<4> {
        if let [method] = self.methods.as_slice() {
            return method.attribute(model, inputs, targets);
        }
        let rules = self.gradient_rules();
        let gradients = input_gradients(model, inputs.clone(), targets, &rules);
        let maps = self.methods.iter().map(|method| match method.gradient_rule() {
            Some(rule) => {
                let gradient = &gradients[rules.iter().position(|&r| r == rule).expect("every rule was taken")];
                method.maps_from_gradient(inputs.clone(), gradient.clone())
            }
            None => method.attribute(model, inputs.clone(), targets),
        });
        Tensor::cat(maps.collect(), 1)
    }

    fn maps_per_image(&self) -> usize {
        self.methods.len()
    }

    fn passes_per_image(&self) -> usize {
        let path_passes: usize =
            self.methods.iter().filter(|method| method.gradient_rule().is_none()).map(Method::passes_per_image).sum();
        self.gradient_rules().len() + path_passes
    }
}
