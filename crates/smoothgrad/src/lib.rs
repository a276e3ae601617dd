//! SmoothGrad saliency maps for torchvision ResNets, on any burn backend.
//!
//! The data flows one way, one module per arrow:
//! ```text
//! bytes ──preprocess──▶ input [1,3,224,224] ──resnet──▶ logits ──targets──▶ target
//! input, target ──attribution (gradient | guided | integrated | input×gradient)──▶ map
//! attribution ──smoothgrad (noise, micro-batches)──▶ running Σg, Σg² ──▶ mean | E[g²] | var | |mean|
//! map ──render──▶ RGBA
//! ```
//! Nothing here reads from the device except where a function says so, so the same code
//! serves native callers and wasm, where every read must be async.

#[cfg(all(feature = "autotune", target_family = "wasm"))]
compile_error!("the `autotune` feature is native only: on WebGPU in wasm it gives wrong results");

pub mod attribution;
mod basic_block;
mod bottleneck;
mod col2im;
pub mod compare;
mod conv;
mod downsample;
pub mod forward_pass;
#[cfg(all(test, feature = "flex"))]
mod fixed_values;
mod frozen_batch_norm;
pub mod names;
pub mod noise;
pub mod precision;
pub mod preprocess;
mod product;
pub mod relu;
mod replayed_conv;
pub mod render;
pub mod resnet;
pub mod smoothgrad;
pub mod targets;
mod tiled_product;
pub mod weights;
pub mod winograd;

pub use attribution::{
    Attribution, BadStepRange, Baseline, Gradient, GuidedBackprop, InputXGradient, IntegratedGradients,
    MAX_IG_STEPS, Method, MethodSet, NoMethods, Quadrature, SharedForward, Top1Maps,
};
pub use basic_block::BasicBlock;
pub use bottleneck::Bottleneck;
pub use col2im::ChannelsLastFold;
pub use conv::{ConvInputGradBackend, ConvLowering, ConvRoute, UNFOLD_FROM_BATCH, UnfoldedConvBackend, Unfolding};
pub use downsample::Downsample;
pub use forward_pass::{ConvRecord, ForwardPass};
pub use frozen_batch_norm::FrozenBatchNorm2d;
pub use names::UnknownName;
pub use noise::{GaussianNoise, NoiseSource, PortableNoise, RecordedNoise};
pub use precision::{Precision, UnsupportedPrecision};
pub use preprocess::{ImageInputError, Preprocess};
pub use product::{ConvProductBackend, ProductKernel, ProductKernels, ProductShape, record_products, use_product_kernels};
pub use tiled_product::ProductTile;
pub use relu::ReluKind;
pub use replayed_conv::ReplayedConvBackend;
pub use render::{Clip, Colormap, RenderOptions, RenderOptionsError, Sign, render};
pub use resnet::{BlockKind, ResNet, ResNetConfig};
pub use smoothgrad::{
    OptionsError, Progress, SmoothGradOptions, SmoothGradRun, SmoothGradSums, Smoothing,
};
pub use targets::{TargetError, Targets};
pub use weights::{WeightsError, checkpoint_config, load_checkpoint_bytes};
pub use winograd::WinogradConvBackend;
#[cfg(not(target_family = "wasm"))]
pub use weights::load_checkpoint_file;

/// Re-exported so that callers name the same burn as this crate.
pub use burn;
/// Re-exported so that callers name the same `image` as this crate.
pub use image;
