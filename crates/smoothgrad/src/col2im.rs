//! col2im: the step of a convolution's input gradient that sums, for each input position, what
//! every output position it fed contributes. Channels-last for `conv.rs`'s channels-last lowering
//! ([`ChannelsLastFold`]); channels-first, in burn's own im2col order, for the input gradient of
//! the shipped lowering on burn's GPU backend (`conv.rs`'s `ConvInputGradBackend`).
//!
//! burn's GPU backend has a col2im, but it is private to burn-cubecl, reads only channels-first
//! columns and multiplies inside with cubek's default kernel, which [`crate::product`]'s choice by
//! shape cannot reach. So the product before a fold goes through [`crate::product`], and the fold
//! is one kernel of our own for both orders.

use burn::backend::tensor::FloatTensor;
use burn::backend::{Backend, TensorMetadata, backend_extension};
use burn::tensor::Shape;
use burn::tensor::ops::{ConvOptions, UnfoldOptions};

/// Folding channels-last columns back into an image, as a backend operation: on burn's GPU
/// backend one kernel, elsewhere burn's `fold4d` between two permutations.
#[backend_extension(Cube: cfg(feature = "wgpu"), Flex: cfg(feature = "flex"), Fusion: cfg(feature = "wgpu"))]
pub trait ChannelsLastFold: Backend {
    /// The image `[batch, height, width, channels]` (`image`) whose gradient the columns
    /// `[1, batch · out_height · out_width, kernel_height · kernel_width · channels]` hold, one row
    /// per output position of a convolution with `kernel` and `options` (symmetric padding, no
    /// dilation), summed where windows overlap.
    #[fusion(dtype = columns, shape = Shape::new(*image))]
    fn fold_channels_last(
        columns: FloatTensor<Self>,
        image: [usize; 4],
        kernel: [usize; 2],
        options: ConvOptions<2>,
    ) -> FloatTensor<Self> {
        let [batch, height, width, channels] = image;
        let [kernel_height, kernel_width] = kernel;
        let windows = kernel_height * kernel_width;
        let positions = columns.shape()[1] / batch;
        // burn's fold4d wants channels first, each channel's window positions together.
        let columns = Self::float_reshape(columns, Shape::new([batch, positions, windows, channels]));
        let columns = Self::float_permute(columns, &[0, 3, 2, 1]);
        let columns = Self::float_reshape(columns, Shape::new([batch, channels * windows, positions]));
        let unfold = UnfoldOptions::new(options.stride, options.padding_begin(), options.dilation);
        let folded = Self::fold4d(columns, [height, width], kernel, unfold);
        Self::float_permute(folded, &[0, 2, 3, 1])
    }
}

#[cfg(feature = "flex")]
impl ChannelsLastFold for burn::backend::Flex {}

#[cfg(feature = "wgpu")]
impl ChannelsLastFold for burn_cubecl::CubeBackend {
    fn fold_channels_last(
        columns: FloatTensor<Self>,
        image: [usize; 4],
        kernel: [usize; 2],
        options: ConvOptions<2>,
    ) -> FloatTensor<Self> {
        let [batch, height, width, channels] = image;
        kernel::fold(columns, kernel::FoldLayout::ChannelsLast, [batch, channels, height, width], kernel, &options)
    }
}

#[cfg(feature = "wgpu")]
pub(crate) mod kernel {
    use burn::backend::cubecl::dtype_to_storage_type;
    use burn::backend::ops::FloatTensorOps;
    use burn::backend::ops::conv::calculate_conv_output_sizes;
    use burn::tensor::Shape;
    use burn::tensor::ops::ConvOptions;
    use burn_cubecl::CubeBackend;
    use burn_cubecl::cubecl;
    use burn_cubecl::cubecl::prelude::*;
    use burn_cubecl::kernel::into_contiguous;
    use burn_cubecl::tensor::CubeTensor;

    /// The order of a fold's columns and of the image it writes.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub enum FoldLayout {
        /// Columns `[1, batch · positions, taps · channels]` (a row per output position, channels
        /// fastest) into an image `[batch, height, width, channels]`.
        ChannelsLast,
        /// Columns `[1, channels · taps, batch · positions]` (burn's im2col order, the batch's
        /// positions side by side) into an image `[batch, channels, height, width]`.
        ChannelsFirst,
    }

    /// The geometry of one fold, in the kernel's terms, and where the columns keep each image,
    /// output position (within its image), channel and kernel tap.
    #[derive(CubeLaunch, CubeType)]
    struct FoldArgs {
        height: usize,
        width: usize,
        channels: usize,
        out_height: usize,
        out_width: usize,
        kernel_height: usize,
        kernel_width: usize,
        pad_height: usize,
        pad_width: usize,
        stride_height: usize,
        stride_width: usize,
        batch_stride: usize,
        position_stride: usize,
        channel_stride: usize,
        tap_stride: usize,
    }

    /// One thread per image element, in the image's own order, so that neighbouring threads read
    /// neighbouring columns and write neighbouring elements in both layouts (the scatter needs no
    /// atomics: each element gathers the windows that cover it).
    #[cube(launch)]
    fn fold_kernel<E: Numeric>(
        columns: &Tensor<E>,
        image: &mut Tensor<E>,
        args: &FoldArgs,
        #[comptime] channels_last: bool,
        #[define(E)] _dtype: ElemType,
    ) {
        if ABSOLUTE_POS >= image.len() {
            terminate!();
        }
        let mut rest = ABSOLUTE_POS;
        let mut channel = 0usize;
        if channels_last {
            channel = rest % args.channels;
            rest /= args.channels;
        }
        let x = rest % args.width + args.pad_width;
        rest /= args.width;
        let y = rest % args.height + args.pad_height;
        rest /= args.height;
        if !channels_last {
            channel = rest % args.channels;
            rest /= args.channels;
        }
        let image_columns = rest * args.batch_stride + channel * args.channel_stride;

        // Output positions whose window covers (y, x): y - kernel < out_y · stride <= y.
        let y_start = if y >= args.kernel_height {
            (y - args.kernel_height) / args.stride_height + 1
        } else {
            0usize.runtime()
        };
        let y_end = clamp_max(y / args.stride_height + 1, args.out_height);
        let x_start = if x >= args.kernel_width {
            (x - args.kernel_width) / args.stride_width + 1
        } else {
            0usize.runtime()
        };
        let x_end = clamp_max(x / args.stride_width + 1, args.out_width);

        let mut sum = E::from_int(0);
        for out_y in y_start..y_end {
            let kernel_y = y - out_y * args.stride_height;
            for out_x in x_start..x_end {
                let kernel_x = x - out_x * args.stride_width;
                let position = out_y * args.out_width + out_x;
                let tap = kernel_y * args.kernel_width + kernel_x;
                sum += columns[image_columns + position * args.position_stride + tap * args.tap_stride];
            }
        }
        image[ABSOLUTE_POS] = sum;
    }

    /// The image `[batch, channels, height, width]` (`image`, in `layout`'s order) whose gradient
    /// `columns` hold in `layout`, for a convolution with `kernel` and `options` (symmetric
    /// padding, no dilation).
    pub fn fold(
        columns: CubeTensor,
        layout: FoldLayout,
        image: [usize; 4],
        kernel: [usize; 2],
        options: &ConvOptions<2>,
    ) -> CubeTensor {
        let [batch, channels, height, width] = image;
        let [kernel_height, kernel_width] = kernel;
        let [pad_height, pad_width] = options.padding_begin();
        let [stride_height, stride_width] = options.stride;
        let out_size = calculate_conv_output_sizes(&kernel, &options.stride, &options.padding, &options.dilation, &[height, width]);
        let (out_height, out_width) = (out_size[0], out_size[1]);
        let (positions, taps) = (out_height * out_width, kernel_height * kernel_width);
        debug_assert_eq!(columns.meta.shape().num_elements(), batch * positions * taps * channels);
        let (batch_stride, position_stride, channel_stride, tap_stride, shape) = match layout {
            FoldLayout::ChannelsLast => (positions * taps * channels, taps * channels, 1, channels, [batch, height, width, channels]),
            FoldLayout::ChannelsFirst => (positions, 1, taps * batch * positions, batch * positions, image),
        };

        let columns = into_contiguous(columns);
        let (client, device, dtype) = (columns.client.clone(), columns.device.clone(), columns.dtype);
        let out = CubeBackend::float_empty(Shape::new(shape), &device, dtype.into());
        let elements = batch * height * width * channels;
        let cube_dim = CubeDim::new(&client, elements);
        let cube_count = cubecl::calculate_cube_count_elemwise(&client, elements, cube_dim);
        fold_kernel::launch(
            &client,
            cube_count,
            cube_dim,
            columns.into_tensor_arg(),
            out.clone().into_tensor_arg(),
            FoldArgsLaunch::new(
                height,
                width,
                channels,
                out_height,
                out_width,
                kernel_height,
                kernel_width,
                pad_height,
                pad_width,
                stride_height,
                stride_width,
                batch_stride,
                position_stride,
                channel_stride,
                tap_stride,
            ),
            layout == FoldLayout::ChannelsLast,
            dtype_to_storage_type(dtype),
        );
        out
    }
}
