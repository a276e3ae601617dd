//! A convolution whose output an earlier pass over the same input already computed: tracked
//! passes that differ only in their backward rules (Gradient and Guided Backprop) share the
//! forward's convolutions (87 % of a forward pass on the CPU path in Chromium, by its profile).

use burn::backend::autodiff::NodeId;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Backend, Dispatch, backend_extension};
use burn::nn::conv::Conv2d;
use burn::tensor::Tensor;
use burn::tensor::ops::ConvOptions;

use crate::col2im::ChannelsLastFold;
use crate::conv::{ConvInputGradBackend, ConvRoute, options};
use crate::product::ConvProductBackend;
use crate::winograd::WinogradConvBackend;

/// `conv` applied to `input` by `route`, its output taken from `recorded` (what the same
/// convolution gave the same input values in an earlier pass): the backward is `route`'s input
/// gradient, so a tracked pass through it gives the gradient a computed convolution would.
///
/// The weights' gradient is not taken: attribution never tracks them.
pub fn replayed(conv: &Conv2d, input: Tensor<4>, recorded: Tensor<4>, route: ConvRoute) -> Tensor<4> {
    Tensor::from_dispatch(<Dispatch as ReplayedConvBackend>::replayed_conv2d(
        input.into_dispatch(),
        conv.weight.val().into_dispatch(),
        recorded.into_dispatch(),
        options(conv),
        route,
    ))
}

/// [`replayed`] as a backend operation: without autodiff it is `recorded` itself.
#[backend_extension(Autodiff, Cube: cfg(feature = "wgpu"), Flex: cfg(feature = "flex"))]
pub trait ReplayedConvBackend: Backend {
    /// `conv2d(x, weight)` with `options` (no bias), already computed as `recorded`.
    fn replayed_conv2d(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        recorded: FloatTensor<Self>,
        options: ConvOptions<2>,
        route: ConvRoute,
    ) -> FloatTensor<Self> {
        let _ = (x, weight, options, route);
        recorded
    }
}

#[cfg(feature = "wgpu")]
impl ReplayedConvBackend for burn::backend::Cube {}

#[cfg(feature = "flex")]
impl ReplayedConvBackend for burn::backend::Flex {}

impl<B, C> ReplayedConvBackend for Autodiff<B, C>
where
    B: ConvInputGradBackend + ConvProductBackend + ChannelsLastFold + WinogradConvBackend,
    C: CheckpointStrategy,
{
    fn replayed_conv2d(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        recorded: FloatTensor<Self>,
        options: ConvOptions<2>,
        route: ConvRoute,
    ) -> FloatTensor<Self> {
        #[derive(Debug)]
        struct ReplayedConv;

        impl<B> Backward<B, 1> for ReplayedConv
        where
            B: ConvInputGradBackend + ConvProductBackend + ChannelsLastFold + WinogradConvBackend,
        {
            /// The input, the weights, the options and the route.
            type State = (NodeId, FloatTensor<B>, ConvOptions<2>, ConvRoute);

            fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, checkpointer: &mut Checkpointer) {
                let [node_x] = ops.parents;
                let grad = grads.consume::<B>(&ops.node);
                let (x_state, weight, options, route) = ops.state;
                if let Some(node) = node_x {
                    let x = checkpointer.retrieve_node_output::<FloatTensor<B>>(x_state);
                    grads.register::<B>(node.id, route.input_grad::<B>(x, weight, grad, options));
                }
            }
        }

        match ReplayedConv.prepare::<C>([x.node()]).compute_bound().stateful() {
            OpsKind::Tracked(mut prep) => {
                let x_state = prep.checkpoint(&x);
                let state = (x_state, weight.into_primitive(), options, route);
                prep.finish(state, recorded.into_primitive())
            }
            OpsKind::UnTracked(prep) => prep.finish(recorded.into_primitive()),
        }
    }
}
