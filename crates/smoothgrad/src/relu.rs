//! The two ReLUs attribution needs: the ordinary one and Guided Backprop's.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Backend, Dispatch, backend_extension};
use burn::tensor::Tensor;

/// Which backward rule every ReLU of the network uses.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ReluKind {
    /// `max(x, 0)` with its true gradient.
    #[default]
    Standard,
    /// Same forward; the backward passes a gradient only where both the gradient and the
    /// forward input are positive (Springenberg et al., Guided Backpropagation).
    Guided,
}

impl ReluKind {
    /// Applies this ReLU.
    pub fn forward<const D: usize>(self, input: Tensor<D>) -> Tensor<D> {
        match self {
            Self::Standard => burn::tensor::activation::relu(input),
            Self::Guided => Tensor::from_dispatch(<Dispatch as GuidedReluBackend>::guided_relu(
                input.into_dispatch(),
            )),
        }
    }
}

/// A ReLU with Guided Backprop's backward rule, as a backend operation.
///
/// Without autodiff it is the plain ReLU; the autodiff implementation records the custom backward.
#[backend_extension(Autodiff, Cube: cfg(feature = "wgpu"), Flex: cfg(feature = "flex"))]
pub trait GuidedReluBackend: Backend {
    /// `max(x, 0)`, whose gradient is `max(g, 0)` where `x > 0` and zero elsewhere.
    fn guided_relu(input: FloatTensor<Self>) -> FloatTensor<Self> {
        Self::relu(input)
    }
}

#[cfg(feature = "wgpu")]
impl GuidedReluBackend for burn::backend::Cube {}

#[cfg(feature = "flex")]
impl GuidedReluBackend for burn::backend::Flex {}

impl<B: Backend, C: CheckpointStrategy> GuidedReluBackend for Autodiff<B, C> {
    fn guided_relu(input: FloatTensor<Self>) -> FloatTensor<Self> {
        #[derive(Debug)]
        struct GuidedRelu;

        impl<B: Backend> Backward<B, 1> for GuidedRelu {
            // The forward output: positive exactly where the input was.
            type State = FloatTensor<B>;

            fn backward(
                self,
                ops: Ops<Self::State, 1>,
                grads: &mut Gradients,
                _checkpointer: &mut Checkpointer,
            ) {
                let [parent] = ops.parents;
                let grad = grads.consume::<B>(&ops.node);
                if let Some(parent) = parent {
                    let positive_grad = B::relu(grad);
                    grads.register::<B>(parent.id, B::relu_backward(ops.state, positive_grad));
                }
            }
        }

        match GuidedRelu.prepare::<C>([input.node()]).compute_bound().stateful() {
            OpsKind::Tracked(prep) => {
                let output = B::relu(input.primitive().clone());
                prep.finish(output.clone(), output)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::relu(input.into_primitive())),
        }
    }
}
