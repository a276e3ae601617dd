//! Convolutions of the ResNet blocks: torchvision's layout, computed the way the device runs
//! fastest (matrix products on GPUs, burn's direct kernel on SwiftShader).

use burn::backend::autodiff::NodeId;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Backend, Dispatch, backend_extension};
use burn::nn::PaddingConfig2d;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::tensor::ops::ConvOptions;
use burn::tensor::{Device, Slice, Tensor};

use crate::names::{UnknownName, by_name};
use crate::product::conv_product;
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
    /// As [`Self::MatrixProducts`], with the k×k convolutions unfolded at every batch, 1 included.
    ///
    /// Chosen for no adapter: on the H100 the unfolded forward at batch 1 took 25.4 ms against
    /// 19.5 ms direct, with cubek's default matrix product, whose largest tiles leave most of the
    /// GPU idle on batch 1's long and narrow products (layer 4: 512 × 49 × 4608). The benchmark
    /// times it with each of cubek's other strategies (`scripts/bench-h100.sh`).
    Unfolded,
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

    /// Its name for benchmarks and the JS API: `"matrix-products"`, `"unfolded"` or `"direct"`.
    pub fn name(self) -> &'static str {
        match self {
            Self::MatrixProducts => "matrix-products",
            Self::Unfolded => "unfolded",
            Self::Direct => "direct",
        }
    }
}

impl FromStr for ConvLowering {
    type Err = UnknownName;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        let table = [Self::MatrixProducts, Self::Unfolded, Self::Direct].map(|lowering| (lowering.name(), lowering));
        by_name("convolution lowering", name, &table)
    }
}

/// `conv` (made by [`conv`]) applied to `input`, computed as `lowering` says.
///
/// Backends sum in different orders, so where a ReLU's input lies within rounding of zero its gate
/// can differ, and with it a patch of the input gradient: compare backends on noisy inputs by
/// correlation, not element by element.
pub fn forward(conv: &Conv2d, input: Tensor<4>, lowering: ConvLowering) -> Tensor<4> {
    match lowering {
        ConvLowering::Direct => conv.forward(input),
        _ if conv.kernel_size == [1, 1] => pointwise(conv, input),
        ConvLowering::MatrixProducts => unfolded(conv, input, UNFOLD_FROM_BATCH),
        ConvLowering::Unfolded => unfolded(conv, input, 1),
    }
}

/// A k×k convolution through [`UnfoldedConvBackend`], unfolded from `unfold_from_batch` images on.
fn unfolded(conv: &Conv2d, input: Tensor<4>, unfold_from_batch: usize) -> Tensor<4> {
    let padding = conv.kernel_size.map(torchvision_padding);
    let options = ConvOptions::new(conv.stride, padding, conv.dilation, conv.groups);
    Tensor::from_dispatch(<Dispatch as UnfoldedConvBackend>::unfolded_conv2d(
        input.into_dispatch(),
        conv.weight.val().into_dispatch(),
        options,
        unfold_from_batch,
    ))
}

/// A 1×1 convolution as one matrix product per image.
fn pointwise(conv: &Conv2d, input: Tensor<4>) -> Tensor<4> {
    let [batch, channels, height, width] = input.dims();
    let weight = conv.weight.val();
    let [out_channels, ..] = weight.dims();
    let stride = conv.stride[0];
    let (out_height, out_width) = ((height - 1) / stride + 1, (width - 1) / stride + 1);
    let strided = |length: usize| Slice::new(0, Some(length as isize), stride as isize);
    let input = if stride > 1 {
        input.slice([Slice::full(), Slice::full(), strided(height), strided(width)])
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

/// A bias-free convolution as a backend operation: on burn's GPU backend, from
/// `unfold_from_batch` images on, the zero-padded input is unfolded into columns (im2col:
/// `[in·k·k, positions]` per image) and multiplied by the weights `[out, in·k·k]`; on burn's CPU
/// backend a 3×3 stride-1 convolution goes through Winograd's F(2×2, 3×3) (`winograd.rs`);
/// otherwise it is burn's convolution (burn's CPU backend convolves through im2col and gemm).
///
/// Its gradient is a convolution gradient ([`ConvInputGradBackend`] for the input), not the
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
        unfold_from_batch: usize,
    ) -> FloatTensor<Self> {
        let _ = unfold_from_batch; // Only burn's GPU backend unfolds.
        Self::conv2d(x, weight, None, options)
    }
}

#[cfg(feature = "flex")]
impl UnfoldedConvBackend for burn::backend::Flex {
    fn unfolded_conv2d(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        options: ConvOptions<2>,
        _unfold_from_batch: usize,
    ) -> FloatTensor<Self> {
        use crate::winograd::{Direction, applies, conv3x3};
        use burn::backend::ops::ModuleOps;
        if applies(&x, &weight, &options) {
            return conv3x3(x, weight, Direction::Forward);
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
        unfold_from_batch: usize,
    ) -> FloatTensor<Self> {
        use burn::backend::TensorMetadata;
        use burn::backend::ops::conv::calculate_conv_output_sizes;
        use burn::backend::ops::{FloatTensorOps, ModuleOps};
        use burn::tensor::Shape;
        use burn::tensor::ops::{PadMode, UnfoldOptions};

        let [batch, _, height, width] = x.shape().dims();
        if batch < unfold_from_batch || options.dilation != [1, 1] || options.groups != 1 {
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
/// transposed convolution through one matrix product and col2im, on its CPU backend Winograd's
/// F(2×2, 3×3) for a 3×3 stride-1 convolution (`winograd.rs`), elsewhere burn's own gradient.
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
        use crate::winograd::{Direction, applies, conv3x3};
        use burn::backend::ops::ModuleOps;
        if applies(&x, &weight, &options) {
            return conv3x3(grad, weight, Direction::InputGradient);
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
        use burn::backend::TensorMetadata;
        use burn::backend::ops::ModuleOps;
        use burn::backend::ops::conv::calculate_padding_out;
        use burn::tensor::ops::ConvTransposeOptions;
        use burn_cubecl::kernel::conv::{ConvTranspose2dStrategy, conv_transpose2d};

        // A transposed convolution pads both sides alike.
        if options.is_asymmetric() {
            return Self::conv2d_x_backward(x, weight, grad, options);
        }
        let [_, _, kernel @ ..] = weight.shape().dims::<4>();
        let [_, _, size @ ..] = x.shape().dims::<4>();
        let [_, _, out_size @ ..] = grad.shape().dims::<4>();
        let padding = options.padding_begin();
        // The input rows and columns that the forward's stride left over (output size rounds down).
        let padding_out = std::array::from_fn(|axis| {
            let (stride, dilation) = (options.stride[axis], options.dilation[axis]);
            calculate_padding_out(kernel[axis], stride, padding[axis], dilation, size[axis], out_size[axis])
        });
        let transposed =
            ConvTransposeOptions::new(options.stride, padding, padding_out, options.dilation, options.groups);
        conv_transpose2d(grad.clone(), weight.clone(), None, transposed, ConvTranspose2dStrategy::Gemm)
            // col2im declines what its matrix product cannot launch (too many workgroups).
            .unwrap_or_else(|_| Self::conv2d_x_backward(x, weight, grad, options))
    }
}

impl<B: UnfoldedConvBackend + ConvInputGradBackend, C: CheckpointStrategy> UnfoldedConvBackend for Autodiff<B, C> {
    fn unfolded_conv2d(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        options: ConvOptions<2>,
        unfold_from_batch: usize,
    ) -> FloatTensor<Self> {
        #[derive(Debug)]
        struct UnfoldedConv;

        impl<B: ConvInputGradBackend> Backward<B, 2> for UnfoldedConv {
            type State = (NodeId, NodeId, ConvOptions<2>);

            fn backward(
                self,
                ops: Ops<Self::State, 2>,
                grads: &mut Gradients,
                checkpointer: &mut Checkpointer,
            ) {
                let [node_x, node_weight] = ops.parents;
                let grad = grads.consume::<B>(&ops.node);
                let (x_state, weight_state, options) = ops.state;
                let x = checkpointer.retrieve_node_output::<FloatTensor<B>>(x_state);
                let weight = checkpointer.retrieve_node_output::<FloatTensor<B>>(weight_state);
                if let Some(node) = node_x {
                    let x_grad = B::conv2d_input_grad(
                        x.clone(),
                        weight.clone(),
                        grad.clone(),
                        options.clone(),
                    );
                    grads.register::<B>(node.id, x_grad);
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
                    unfold_from_batch,
                );
                prep.finish((x_state, weight_state, options), output)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::unfolded_conv2d(
                x.into_primitive(),
                weight.into_primitive(),
                options,
                unfold_from_batch,
            )),
        }
    }
}
