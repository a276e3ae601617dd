//! Convolutions of the ResNet blocks: torchvision's layout, computed the way the device runs
//! fastest (matrix products on GPUs, burn's direct kernel on SwiftShader).

use burn::backend::autodiff::NodeId;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Backend, Dispatch, TensorMetadata, backend_extension};
use burn::nn::PaddingConfig2d;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::tensor::ops::ConvOptions;
use burn::tensor::{Device, Shape, Slice, Tensor};

use crate::col2im::ChannelsLastFold;
use crate::names::{UnknownName, by_name};
use crate::product::{ConvProductBackend, conv_product};
use crate::winograd::{self, Direction, WinogradConvBackend};
use std::str::FromStr;

/// A bias-free `kernel × kernel` convolution with torchvision's padding (`kernel / 2`).
pub fn conv(
    channels_in: usize,
    channels_out: usize,
    kernel: usize,
    stride: usize,
    device: &Device,
) -> Conv2d {
    let padding = torchvision_padding(kernel);
    Conv2dConfig::new([channels_in, channels_out], [kernel, kernel])
        .with_stride([stride, stride])
        .with_padding(PaddingConfig2d::Explicit(padding, padding, padding, padding))
        .with_bias(false)
        .init(device)
}

/// torchvision's ResNet padding for a `kernel`-wide convolution: the output keeps the input's
/// size at stride 1.
fn torchvision_padding(kernel: usize) -> usize {
    kernel / 2
}

/// How [`forward`] computes the network's convolutions: the faster choice depends on the device.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ConvLowering {
    /// A 1×1 convolution (two of the three in each bottleneck, and the downsample shortcuts) is
    /// one matrix product per image, `[out, in]` times the (strided) input `[in, h·w]`; larger
    /// kernels go through [`UnfoldedConvBackend`].
    ///
    /// For hardware GPUs: without autotune — which gives wrong results on WebGPU in wasm — burn's
    /// GPU backend convolves with a direct kernel, while its matrix products are tiled. Measured
    /// on an H100 (SmoothGrad-50, micro-batch 50): direct everywhere 750 ms, 1×1 as matrix
    /// products 219 ms, and k×k unfolded too 141 ms. Autotune itself does not help there
    /// (226 ms): for WGSL it has no other forward kernel, as burn's implicit GEMMs need tensor
    /// cores.
    #[default]
    MatrixProducts,
    /// As [`Self::MatrixProducts`], except that from [`UNFOLD_FROM_BATCH`] images on every
    /// convolution, 1×1 included, is one matrix product over all the batch's positions in
    /// channels-last order (`[batch · h · w, k·k·in]` times the weights `[k·k·in, out]`), as cuDNN
    /// convolves, and its input gradient is one product and a channels-last col2im (`col2im.rs`).
    /// Its output is a channels-last view of `[batch, out, h, w]`, which burn's fusion carries
    /// through the element-wise operations to the next convolution.
    ///
    /// Why: per image, the products of the deep layers are narrow (layer 4: 49 positions, layer 3:
    /// 196) and two of layer 1's three have 64 rows, and cubek's unit kernel tiles 128 rows by 64
    /// columns at its smallest tiles, so much of each tile is padding; over the whole batch every
    /// product is long in rows and the channels (64–2048) fill the columns. Not yet timed on a
    /// GPU, so no adapter gets it (`bench-h100.sh` times it).
    ChannelsLast,
    /// As [`Self::MatrixProducts`], with the k×k convolutions unfolded at every batch, 1 included.
    ///
    /// Chosen for no adapter: on the H100 the unfolded forward at batch 1 took 25.4 ms against
    /// 19.5 ms direct, with cubek's default matrix product, whose largest tiles leave most of the
    /// GPU idle on batch 1's long and narrow products (layer 4: 512 × 49 × 4608). The benchmark
    /// times it with each of cubek's other strategies (`scripts/bench-h100.sh`).
    Unfolded,
    /// As [`Self::MatrixProducts`], except that every 3×3 stride-1 convolution (13 of ResNet-50's
    /// 16) and its input gradient go through Winograd at any batch ([`Unfolding::Winograd`],
    /// `winograd/`): F(4×4, 3×3) on images of 28×28 and more, 4 times fewer multiply-adds than
    /// unfolded and 2.25 values written per input value instead of 9; F(2×2, 3×3) below, 2.25
    /// times fewer and 4 values. Not yet timed on a GPU, so no adapter gets it (`bench-h100.sh`
    /// times it).
    Winograd,
    /// Every convolution is burn's own (a direct kernel on its GPU backend), at any batch.
    ///
    /// For SwiftShader, the CPU renderer behind Chromium's WebGPU without a GPU, which runs the
    /// tiled matrix product far slower than the direct kernel. Measured in headless Chromium,
    /// runs back to back (ResNet-50, batch 1): forward 38 s → 17.5 s, forward+backward 77 s →
    /// 36–38 s.
    Direct,
}

impl ConvLowering {
    /// The faster lowering on the WebGPU adapter described by `adapter` (its name, or vendor
    /// and architecture as a browser gives them): [`Self::Direct`] on SwiftShader only. It
    /// follows the renderer, not whether it is a software one: on lavapipe, another CPU
    /// renderer, [`Self::Direct`] measured twice as slow (forward 2.4–2.6 s → 4.2–5.5 s).
    pub fn for_adapter(adapter: &str) -> Self {
        if adapter.to_lowercase().contains("swiftshader") {
            Self::Direct
        } else {
            Self::MatrixProducts
        }
    }

    /// Its name for benchmarks and the JS API: `"matrix-products"`, `"channels-last"`,
    /// `"unfolded"`, `"winograd"` or `"direct"`.
    pub fn name(self) -> &'static str {
        match self {
            Self::MatrixProducts => "matrix-products",
            Self::ChannelsLast => "channels-last",
            Self::Unfolded => "unfolded",
            Self::Winograd => "winograd",
            Self::Direct => "direct",
        }
    }
}

impl FromStr for ConvLowering {
    type Err = UnknownName;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        let table = [Self::MatrixProducts, Self::ChannelsLast, Self::Unfolded, Self::Winograd, Self::Direct]
            .map(|lowering| (lowering.name(), lowering));
        by_name("convolution lowering", name, &table)
    }
}

/// `conv` (made by [`conv`]) applied to `input`, computed as `lowering` says.
///
/// Backends sum in different orders, so where a ReLU's input lies within rounding of zero its gate
/// can differ, and with it a patch of the input gradient: compare backends on noisy inputs by
/// correlation, not element by element.
pub fn forward(conv: &Conv2d, input: Tensor<4>, lowering: ConvLowering) -> Tensor<4> {
    match ConvRoute::of(conv, input.dims()[0], lowering) {
        ConvRoute::Burn => conv.forward(input),
        ConvRoute::Pointwise => pointwise(conv, input),
        ConvRoute::Unfolded(unfolding) => unfolded(conv, input, unfolding),
    }
}

/// Which computation [`forward`] gives a convolution; its input gradient follows from it
/// ([`Self::input_grad`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConvRoute {
    /// burn's own convolution and gradient.
    Burn,
    /// A 1×1 convolution as one matrix product per image ([`ConvProductBackend`]).
    Pointwise,
    /// Through [`UnfoldedConvBackend`].
    Unfolded(Unfolding),
}

impl ConvRoute {
    /// The route of `conv` at `batch` images under `lowering`.
    pub fn of(conv: &Conv2d, batch: usize, lowering: ConvLowering) -> Self {
        let per_image = |from_batch| Self::Unfolded(Unfolding::PerImage { from_batch });
        match lowering {
            ConvLowering::Direct => Self::Burn,
            ConvLowering::ChannelsLast if batch >= UNFOLD_FROM_BATCH => Self::Unfolded(Unfolding::ChannelsLast),
            ConvLowering::Winograd if conv.kernel_size == [3, 3] && conv.stride == [1, 1] => {
                Self::Unfolded(Unfolding::Winograd)
            }
            _ if conv.kernel_size == [1, 1] => Self::Pointwise,
            ConvLowering::MatrixProducts | ConvLowering::ChannelsLast | ConvLowering::Winograd => {
                per_image(UNFOLD_FROM_BATCH)
            }
            ConvLowering::Unfolded => per_image(1),
        }
    }

    /// The gradient with respect to `x` of this route's `conv2d(x, weight)` with `options`, given
    /// its output's gradient `grad`: the same operations autodiff runs through the forward's.
    pub(crate) fn input_grad<B>(
        self,
        x: FloatTensor<B>,
        weight: FloatTensor<B>,
        grad: FloatTensor<B>,
        options: ConvOptions<2>,
    ) -> FloatTensor<B>
    where
        B: ConvInputGradBackend + ConvProductBackend + ChannelsLastFold + WinogradConvBackend,
    {
        match self {
            Self::Burn => B::conv2d_x_backward(x, weight, grad, options),
            Self::Pointwise => pointwise_input_grad::<B>(x, weight, grad, &options),
            Self::Unfolded(unfolding) => unfolded_input_grad::<B>(x, weight, grad, options, unfolding),
        }
    }
}

/// A convolution through [`UnfoldedConvBackend`], unfolded as `unfolding` says.
fn unfolded(conv: &Conv2d, input: Tensor<4>, unfolding: Unfolding) -> Tensor<4> {
    Tensor::from_dispatch(<Dispatch as UnfoldedConvBackend>::unfolded_conv2d(
        input.into_dispatch(),
        conv.weight.val().into_dispatch(),
        options(conv),
        unfolding,
    ))
}

/// The backend options of `conv` (made by [`conv`]).
pub(crate) fn options(conv: &Conv2d) -> ConvOptions<2> {
    let padding = conv.kernel_size.map(torchvision_padding);
    ConvOptions::new(conv.stride, padding, conv.dilation, conv.groups)
}

/// How [`UnfoldedConvBackend`] computes a convolution: [`Self::PerImage`] on burn's GPU backend
/// only, [`Self::ChannelsLast`] on its CPU backend too.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unfolding {
    /// k×k kernels only: from `from_batch` images on, the input unfolded image by image
    /// (`[in·k·k, positions]` each) times the weights; below, burn's direct kernel.
    PerImage {
        /// The smallest batch that is unfolded.
        from_batch: usize,
    },
    /// Any kernel, any batch: one product over the whole batch in channels-last order
    /// ([`ConvLowering::ChannelsLast`]); on burn's CPU backend too, where it serves to test it.
    ChannelsLast,
    /// A 3×3 stride-1 convolution (f32, padding 1), and its input gradient, by Winograd
    /// ([`WinogradConvBackend`]) at any batch; any other, burn's own.
    Winograd,
}

impl Unfolding {
    /// Whether a convolution with `options` is computed channels-last: [`Self::ChannelsLast`] and
    /// [`foldable`] options; otherwise burn's own convolution.
    fn channels_last_for(self, options: &ConvOptions<2>) -> bool {
        self == Self::ChannelsLast && foldable(options)
    }

    /// Whether `conv2d(x, weight)` with `options` (and its input gradient) goes through
    /// [`WinogradConvBackend`]: [`Self::Winograd`] where [`winograd::applies`].
    fn winograd_for<T: TensorMetadata>(self, x: &T, weight: &T, options: &ConvOptions<2>) -> bool {
        self == Self::Winograd && winograd::applies(x, weight, options)
    }
}

/// Whether a convolution's windows are what our unfolding and col2im (`col2im.rs`) handle: no
/// dilation, one group, the same padding on both sides (torchvision's ResNets have nothing else).
fn foldable(options: &ConvOptions<2>) -> bool {
    options.dilation == [1, 1] && options.groups == 1 && !options.is_asymmetric()
}

/// Every `stride`-th of `length` positions along an axis.
fn strided(length: usize, stride: usize) -> Slice {
    Slice::new(0, Some(length as isize), stride as isize)
}

/// A 1×1 convolution as one matrix product per image.
fn pointwise(conv: &Conv2d, input: Tensor<4>) -> Tensor<4> {
    let [batch, channels, height, width] = input.dims();
    let weight = conv.weight.val();
    let [out_channels, ..] = weight.dims();
    let stride = conv.stride[0];
    let (out_height, out_width) = ((height - 1) / stride + 1, (width - 1) / stride + 1);
    let input = if stride > 1 {
        input.slice([Slice::full(), Slice::full(), strided(height, stride), strided(width, stride)])
    } else {
        input
    };
    let columns = input.reshape([batch, channels, out_height * out_width]);
    conv_product(weight.reshape([1, out_channels, channels]), columns)
        .reshape([batch, out_channels, out_height, out_width])
}

/// Batches from which burn's GPU backend convolves through unfolded columns rather than its
/// direct kernel in [`ConvLowering::MatrixProducts`]. Measured on an H100 (ResNet-50): batch 1
/// forward 19.5 ms direct, 25.4 ms unfolded; SmoothGrad-50 at micro-batch 10: 296 → 248 ms, 25:
/// 233 → 160 ms, 50: 219 → 141 ms. Below 10 nothing was measured between the two, so the direct
/// kernel stays.
pub const UNFOLD_FROM_BATCH: usize = 10;

/// A bias-free convolution as a backend operation: on burn's GPU backend, as `unfolding` says, the
/// zero-padded input is unfolded into columns (im2col) and multiplied by the weights; on burn's
/// CPU backend a 3×3 stride-1 convolution goes through Winograd (`winograd/`: F(4×4, 3×3) on
/// images of 28×28 and more, F(2×2, 3×3) below);
/// otherwise it is burn's convolution (burn's CPU backend convolves through im2col and gemm).
/// [`Unfolding::ChannelsLast`] is the same on both of those backends.
///
/// Its gradient is a convolution gradient ([`ConvInputGradBackend`] for the input, or with
/// [`Unfolding::ChannelsLast`] a channels-last product and [`ChannelsLastFold`]), not the
/// product's: the columns (k² times the input) are never kept for the backward pass. (Unfolding
/// the backward as a forward convolution — a stride-1 convolution's input gradient is one with
/// the flipped kernel — measured no faster: SmoothGrad-50 at micro-batch 10 took 262 ms against
/// 248, at 50 138 ms against 141.)
#[backend_extension(Autodiff, Cube: cfg(feature = "wgpu"), Flex: cfg(feature = "flex"))]
pub trait UnfoldedConvBackend: Backend {
    /// `conv2d(x, weight)` with `options`, no bias.
    fn unfolded_conv2d(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        options: ConvOptions<2>,
        unfolding: Unfolding,
    ) -> FloatTensor<Self> {
        let _ = unfolding; // Only burn's GPU and CPU backends have their own lowerings.
        Self::conv2d(x, weight, None, options)
    }
}

#[cfg(feature = "flex")]
impl UnfoldedConvBackend for burn::backend::Flex {
    fn unfolded_conv2d(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        options: ConvOptions<2>,
        unfolding: Unfolding,
    ) -> FloatTensor<Self> {
        use burn::backend::ops::ModuleOps;
        if unfolding.channels_last_for(&options) {
            return channels_last_conv2d::<Self>(x, weight, &options);
        }
        if winograd::applies(&x, &weight, &options) {
            return Self::winograd_conv3x3(x, weight, Direction::Forward);
        }
        Self::conv2d(x, weight, None, options)
    }
}

#[cfg(feature = "wgpu")]
impl UnfoldedConvBackend for burn::backend::Cube {
    fn unfolded_conv2d(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        options: ConvOptions<2>,
        unfolding: Unfolding,
    ) -> FloatTensor<Self> {
        use burn::backend::ops::conv::calculate_conv_output_sizes;
        use burn::backend::ops::{FloatTensorOps, ModuleOps};
        use burn::tensor::ops::{PadMode, UnfoldOptions};

        if unfolding.channels_last_for(&options) {
            return channels_last_conv2d::<Self>(x, weight, &options);
        }
        if unfolding.winograd_for(&x, &weight, &options) {
            return Self::winograd_conv3x3(x, weight, Direction::Forward);
        }
        let Unfolding::PerImage { from_batch } = unfolding else {
            return Self::conv2d(x, weight, None, options);
        };
        let [batch, _, height, width] = x.shape().dims();
        if batch < from_batch || options.dilation != [1, 1] || options.groups != 1 {
            return Self::conv2d(x, weight, None, options);
        }
        let [out_channels, in_channels, kernel_height, kernel_width] = weight.shape().dims();
        let [(top, bottom), (left, right)] = options.padding;
        let padded = Self::float_pad(
            x,
            &[(0, 0), (0, 0), (top, bottom), (left, right)],
            PadMode::Constant(0.0),
        );
        // Without padding or dilation, unfolding is a strided view made contiguous by one copy.
        let unfold = UnfoldOptions {
            stride: options.stride,
            padding: [0, 0],
            dilation: [1, 1],
        };
        let kernel = [kernel_height, kernel_width];
        let columns = Self::unfold4d(padded, kernel, unfold);
        let weight = Self::float_reshape(
            weight,
            Shape::new([1, out_channels, in_channels * kernel_height * kernel_width]),
        );
        let out_size = calculate_conv_output_sizes(
            &kernel,
            &options.stride,
            &options.padding,
            &options.dilation,
            &[height, width],
        );
        Self::float_reshape(
            <Self as crate::product::ConvProductBackend>::conv_product(weight, columns),
            Shape::new([batch, out_channels, out_size[0], out_size[1]]),
        )
    }
}

/// The input gradient of a bias-free convolution, as a backend operation: on burn's GPU backend a
/// transposed convolution through one matrix product over the batch (its kernel chosen by
/// [`crate::product`]) and our col2im (`col2im.rs`; burn-cubecl's multiplies with cubek's default
/// tiles, which took SmoothGrad-50 on an H200 88.6 ms at micro-batch 50 where the smallest tiles on
/// every product took 85.5), on its CPU backend Winograd for a 3×3 stride-1 convolution
/// (`winograd/`), elsewhere burn's own gradient.
///
/// Without autotune (which gives wrong results on WebGPU in wasm) burn's GPU backend takes this
/// gradient with its direct transposed-convolution kernel. Timed by burn's autotune on an H100
/// for every 3×3 and 7×7 convolution of ResNet-50, col2im took 3–9× less time at batch 1 and
/// 1.5–3.3× less at batch 64 (`docs/benchmarks/h100-2026-11-27-kernels.md`).
#[backend_extension(Cube: cfg(feature = "wgpu"), Flex: cfg(feature = "flex"), Fusion: cfg(feature = "wgpu"))]
pub trait ConvInputGradBackend: Backend {
    /// The gradient with respect to `x` of `conv2d(x, weight)` (no bias) with `options`, given the
    /// gradient `grad` of its output.
    #[fusion(meta = |x, _weight, _grad, _options| x.clone())]
    fn conv2d_input_grad(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        options: ConvOptions<2>,
    ) -> FloatTensor<Self> {
        Self::conv2d_x_backward(x, weight, grad, options)
    }
}

#[cfg(feature = "flex")]
impl ConvInputGradBackend for burn::backend::Flex {
    fn conv2d_input_grad(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        options: ConvOptions<2>,
    ) -> FloatTensor<Self> {
        use burn::backend::ops::ModuleOps;
        if winograd::applies(&x, &weight, &options) {
            return Self::winograd_conv3x3(grad, weight, Direction::InputGradient);
        }
        Self::conv2d_x_backward(x, weight, grad, options)
    }
}

#[cfg(feature = "wgpu")]
impl ConvInputGradBackend for burn_cubecl::CubeBackend {
    fn conv2d_input_grad(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        options: ConvOptions<2>,
    ) -> FloatTensor<Self> {
        use crate::col2im::kernel::{FoldLayout, fold};
        use burn::backend::ops::{FloatTensorOps, ModuleOps};

        if !foldable(&options) {
            return Self::conv2d_x_backward(x, weight, grad, options);
        }
        let [batch, channels, height, width] = x.shape().dims();
        let [out_channels, _, kernel_height, kernel_width] = weight.shape().dims();
        let [_, _, out_height, out_width] = grad.shape().dims();
        let taps = channels * kernel_height * kernel_width;
        // One product over the whole batch's positions, as burn's col2im does (per image, layer 4's
        // 49 positions would leave a quarter of each 64-column tile empty).
        let weight = Self::float_reshape(weight, Shape::new([1, out_channels, taps]));
        let grad = Self::float_permute(grad, &[1, 0, 2, 3]);
        let grad = Self::float_reshape(grad, Shape::new([1, out_channels, batch * out_height * out_width]));
        let columns = <Self as ConvProductBackend>::conv_product(Self::float_swap_dims(weight, 1, 2), grad);
        fold(columns, FoldLayout::ChannelsFirst, [batch, channels, height, width], [kernel_height, kernel_width], &options)
    }
}

impl<B, C> UnfoldedConvBackend for Autodiff<B, C>
where
    B: UnfoldedConvBackend + ConvInputGradBackend + ConvProductBackend + ChannelsLastFold + WinogradConvBackend,
    C: CheckpointStrategy,
{
    fn unfolded_conv2d(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        options: ConvOptions<2>,
        unfolding: Unfolding,
    ) -> FloatTensor<Self> {
        #[derive(Debug)]
        struct UnfoldedConv;

        impl<B: ConvInputGradBackend + ConvProductBackend + ChannelsLastFold + WinogradConvBackend> Backward<B, 2>
            for UnfoldedConv
        {
            /// The operands, the options and the unfolding.
            type State = (NodeId, NodeId, ConvOptions<2>, Unfolding);

            fn backward(
                self,
                ops: Ops<Self::State, 2>,
                grads: &mut Gradients,
                checkpointer: &mut Checkpointer,
            ) {
                let [node_x, node_weight] = ops.parents;
                let grad = grads.consume::<B>(&ops.node);
                let (x_state, weight_state, options, unfolding) = ops.state;
                let x = checkpointer.retrieve_node_output::<FloatTensor<B>>(x_state);
                let weight = checkpointer.retrieve_node_output::<FloatTensor<B>>(weight_state);
                if let Some(node) = node_x {
                    let (x, weight, grad, options) = (x.clone(), weight.clone(), grad.clone(), options.clone());
                    grads.register::<B>(node.id, unfolded_input_grad::<B>(x, weight, grad, options, unfolding));
                }
                if let Some(node) = node_weight {
                    grads.register::<B>(
                        node.id,
                        B::conv2d_weight_backward(x, weight, grad, options),
                    );
                }
            }
        }

        match UnfoldedConv
            .prepare::<C>([x.node(), weight.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(mut prep) => {
                let x_state = prep.checkpoint(&x);
                let weight_state = prep.checkpoint(&weight);
                let output = B::unfolded_conv2d(
                    x.primitive().clone(),
                    weight.primitive().clone(),
                    options.clone(),
                    unfolding,
                );
                prep.finish((x_state, weight_state, options, unfolding), output)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::unfolded_conv2d(
                x.into_primitive(),
                weight.into_primitive(),
                options,
                unfolding,
            )),
        }
    }
}

/// The input gradient of [`UnfoldedConvBackend::unfolded_conv2d`] with `unfolding`.
fn unfolded_input_grad<B>(
    x: FloatTensor<B>,
    weight: FloatTensor<B>,
    grad: FloatTensor<B>,
    options: ConvOptions<2>,
    unfolding: Unfolding,
) -> FloatTensor<B>
where
    B: ConvInputGradBackend + ConvProductBackend + ChannelsLastFold + WinogradConvBackend,
{
    if unfolding.channels_last_for(&options) {
        channels_last_input_grad::<B>(x, weight, grad, &options)
    } else if unfolding.winograd_for(&x, &weight, &options) {
        B::winograd_conv3x3(grad, weight, Direction::InputGradient)
    } else {
        B::conv2d_input_grad(x, weight, grad, options)
    }
}

/// The input gradient of [`pointwise`]: the weights' transpose times the output gradient, placed
/// back on the strided positions (zero elsewhere), as autodiff takes it through the product, the
/// reshapes and the slice.
fn pointwise_input_grad<B: ConvProductBackend>(
    x: FloatTensor<B>,
    weight: FloatTensor<B>,
    grad: FloatTensor<B>,
    options: &ConvOptions<2>,
) -> FloatTensor<B> {
    let [batch, channels, height, width] = x.shape().dims();
    let [_, out_channels, out_height, out_width] = grad.shape().dims();
    let weight = B::float_reshape(weight, Shape::new([1, out_channels, channels]));
    let grad = B::float_reshape(grad, Shape::new([batch, out_channels, out_height * out_width]));
    let columns = B::conv_product(B::float_swap_dims(weight, 1, 2), grad);
    let columns = B::float_reshape(columns, Shape::new([batch, channels, out_height, out_width]));
    let [stride_height, stride_width] = options.stride;
    if [stride_height, stride_width] == [1, 1] {
        return columns;
    }
    let zeros = B::float_zeros(Shape::new([batch, channels, height, width]), &x.device(), columns.dtype().into());
    let positions = [Slice::full(), Slice::full(), strided(height, stride_height), strided(width, stride_width)];
    B::float_slice_assign(zeros, &positions, columns)
}

/// `conv2d(x, weight)` (no bias) as one channels-last product over the batch: the input's windows
/// `[batch · h · w, k·k·in]` times the weights `[k·k·in, out]`. The result is a channels-last view
/// of `[batch, out, h, w]`.
fn channels_last_conv2d<B: ConvProductBackend>(
    x: FloatTensor<B>,
    weight: FloatTensor<B>,
    options: &ConvOptions<2>,
) -> FloatTensor<B> {
    use burn::backend::ops::conv::calculate_conv_output_sizes;
    use burn::tensor::ops::PadMode;

    let [batch, channels, height, width] = x.shape().dims();
    let [out_channels, _, kernel_height, kernel_width] = weight.shape().dims();
    let kernel = [kernel_height, kernel_width];
    let out_size =
        calculate_conv_output_sizes(&kernel, &options.stride, &options.padding, &options.dilation, &[height, width]);
    let (out_height, out_width) = (out_size[0], out_size[1]);
    let rows = batch * out_height * out_width;
    let taps = kernel_height * kernel_width * channels;

    let x = B::float_permute(x, &[0, 2, 3, 1]);
    let windows = if kernel == [1, 1] && options.padding == [(0, 0); 2] {
        // A 1×1 convolution's windows are the (strided) positions themselves.
        let [stride_height, stride_width] = options.stride;
        B::float_slice(x, &[Slice::full(), strided(height, stride_height), strided(width, stride_width), Slice::full()])
    } else {
        let [top_bottom, left_right] = options.padding;
        let padded = B::float_pad(x, &[(0, 0), top_bottom, left_right, (0, 0)], PadMode::Constant(0.0));
        // [batch, out_h, out_w, in, k_h, k_w], a view; the reshape below copies it once.
        let windows = B::float_unfold(padded, 1, kernel_height, options.stride[0]);
        let windows = B::float_unfold(windows, 2, kernel_width, options.stride[1]);
        B::float_permute(windows, &[0, 1, 2, 4, 5, 3])
    };
    let windows = B::float_reshape(windows, Shape::new([1, rows, taps]));
    let out = B::conv_product(windows, B::float_swap_dims(taps_last::<B>(weight), 1, 2));
    let out = B::float_reshape(out, Shape::new([batch, out_height, out_width, out_channels]));
    B::float_permute(out, &[0, 3, 1, 2])
}

/// The gradient of [`channels_last_conv2d`] with respect to `x`: the output gradient
/// `[batch · h · w, out]` times the weights `[out, k·k·in]`, folded back onto the input's positions
/// ([`ChannelsLastFold`]) unless the windows are the positions themselves. The result is a
/// channels-last view of `x`'s shape.
fn channels_last_input_grad<B: ConvProductBackend + ChannelsLastFold>(
    x: FloatTensor<B>,
    weight: FloatTensor<B>,
    grad: FloatTensor<B>,
    options: &ConvOptions<2>,
) -> FloatTensor<B> {
    let [batch, channels, height, width] = x.shape().dims();
    let [out_channels, _, kernel_height, kernel_width] = weight.shape().dims();
    let [_, _, out_height, out_width] = grad.shape().dims();
    let rows = batch * out_height * out_width;
    let grad = B::float_reshape(B::float_permute(grad, &[0, 2, 3, 1]), Shape::new([1, rows, out_channels]));
    let columns = B::conv_product(grad, taps_last::<B>(weight));
    let image = [batch, height, width, channels];
    let kernel = [kernel_height, kernel_width];
    let image = if kernel == [1, 1] && options.stride == [1, 1] && options.padding == [(0, 0); 2] {
        B::float_reshape(columns, Shape::new(image))
    } else {
        B::fold_channels_last(columns, image, kernel, options.clone())
    };
    B::float_permute(image, &[0, 3, 1, 2])
}

/// The weights `[out, in, k_h, k_w]` as `[1, out, k_h · k_w · in]`, the order of channels-last
/// windows.
fn taps_last<B: Backend>(weight: FloatTensor<B>) -> FloatTensor<B> {
    let [out_channels, channels, kernel_height, kernel_width] = weight.shape().dims();
    let weight = B::float_permute(weight, &[0, 2, 3, 1]);
    B::float_reshape(weight, Shape::new([1, out_channels, kernel_height * kernel_width * channels]))
}

#[cfg(all(test, feature = "flex"))]
mod tests {
    use super::*;
    use crate::compare::max_relative_error;
    use crate::fixed_values::fixed_tensor as fixed;
    use burn::tensor::module::conv2d;

    /// The convolution's output and its input gradient for the output gradient `grad`.
    fn output_and_input_grad(
        convolve: impl Fn(Tensor<4>) -> Tensor<4>,
        x: &Tensor<4>,
        grad: &Tensor<4>,
    ) -> (Vec<f32>, Vec<f32>) {
        let x = x.clone().autodiff().require_grad();
        let out = convolve(x.clone());
        let grads = (out.clone() * grad.clone().autodiff()).sum().backward();
        let values = |tensor: Tensor<4>| tensor.into_data().convert::<f32>().try_to_vec::<f32>().unwrap();
        (values(out.without_autodiff()), values(x.grad(&grads).unwrap()))
    }

    #[test]
    fn channels_last_convolutions_and_their_input_gradients_match_burns() {
        let device = Device::flex();
        // (input, out channels, kernel, stride): ResNet-50's kinds, with odd sizes where a stride
        // leaves rows and columns over.
        let cases = [
            ([2, 5, 7, 6], 4, 3, 1),
            ([3, 4, 9, 11], 6, 3, 2),
            ([2, 3, 15, 13], 5, 7, 2),
            ([2, 6, 5, 5], 3, 1, 1),
            ([2, 6, 7, 9], 3, 1, 2),
        ];
        for (seed, (shape, out_channels, kernel, stride)) in cases.into_iter().enumerate() {
            let seed = seed as u64;
            let padding = torchvision_padding(kernel);
            let options = ConvOptions::new([stride; 2], [padding; 2], [1, 1], 1);
            let x = fixed(shape, seed, &device);
            let weight = fixed([out_channels, shape[1], kernel, kernel], seed + 10, &device);
            let burns_conv = |x| conv2d(x, weight.clone(), None, options.clone());
            let grad = fixed(burns_conv(x.clone()).dims(), seed + 20, &device);
            let burns = output_and_input_grad(burns_conv, &x, &grad);
            let ours = output_and_input_grad(
                |x| {
                    Tensor::from_dispatch(<Dispatch as UnfoldedConvBackend>::unfolded_conv2d(
                        x.into_dispatch(),
                        weight.clone().into_dispatch(),
                        options.clone(),
                        Unfolding::ChannelsLast,
                    ))
                },
                &x,
                &grad,
            );
            let what = format!("{shape:?} → {out_channels}, {kernel}×{kernel} stride {stride}");
            assert!(max_relative_error(&ours.0, &burns.0) < 1e-5, "output of {what}");
            assert!(max_relative_error(&ours.1, &burns.1) < 1e-5, "input gradient of {what}");
        }
    }
}
