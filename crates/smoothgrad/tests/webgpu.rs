//! The same comparisons with PyTorch/Captum, compiled to wasm and run on WebGPU in a browser:
//! the WebGPU path must give the numbers the CPU path gives.
#![cfg(target_family = "wasm")]

mod common;

use std::cell::RefCell;

use common::*;
use smoothgrad::burn::tensor::Device;
use smoothgrad::{ConvLowering, Gradient, GuidedBackprop, InputXGradient, IntegratedGradients};
use wasm_bindgen_test::{wasm_bindgen_test, wasm_bindgen_test_configure};

// In a dedicated worker, as the page will run the model: long GPU work then never blocks the
// page thread that ChromeDriver talks to (it gives up on a renderer silent for 30 s).
wasm_bindgen_test_configure!(run_in_dedicated_worker);

thread_local! {
    static DEVICE: RefCell<Option<Device>> = const { RefCell::new(None) };
}

/// The WebGPU device, initialised once per page (burn refuses a second init).
async fn webgpu() -> Device {
    if let Some(device) = DEVICE.with(|cell| cell.borrow().clone()) {
        return device;
    }
    let device = Device::wgpu_options().init_async().await.expect("WebGPU is available");
    DEVICE.with(|cell| *cell.borrow_mut() = Some(device.clone()));
    device
}

#[wasm_bindgen_test]
async fn logits_match_pytorch_on_webgpu() {
    check_logits(MODEL, "logits", &webgpu().await).await;
}

#[wasm_bindgen_test]
async fn half_precision_checkpoint_loads_on_webgpu() {
    check_logits(MODEL_F16, "logits_from_f16", &webgpu().await).await;
}

#[wasm_bindgen_test]
async fn resnet18_matches_pytorch_on_webgpu() {
    check_resnet18(&webgpu().await).await;
}

#[wasm_bindgen_test]
async fn top1_target_matches_pytorch_on_webgpu() {
    check_top1(&webgpu().await).await;
}

#[wasm_bindgen_test]
async fn top1_maps_from_one_pass_match_captum_on_webgpu() {
    let device = webgpu().await;
    check_top1_maps(&Gradient, "gradient", &device).await;
    check_top1_maps(&GuidedBackprop, "guided_backprop", &device).await;
}

#[wasm_bindgen_test]
async fn gradient_matches_captum_on_webgpu() {
    check_method(&Gradient, "gradient", &webgpu().await).await;
}

#[wasm_bindgen_test]
async fn unfolded_convolutions_match_captum_on_webgpu() {
    // From this batch on, WebGPU convolves through unfolded columns instead of burn's direct kernel.
    let copies = smoothgrad::UNFOLD_FROM_BATCH.div_ceil(2);
    check_method_in_copies(&Gradient, "gradient", copies, &webgpu().await).await;
    check_method_in_copies(&GuidedBackprop, "guided_backprop", copies, &webgpu().await).await;
    // `Unfolded` unfolds at any batch: here the fixture's two images.
    check_method_lowered(&Gradient, "gradient", 1, ConvLowering::Unfolded, &webgpu().await).await;
}

#[wasm_bindgen_test]
async fn methods_sharing_a_forward_pass_match_captum_on_webgpu() {
    // The replayed convolutions' routes on WebGPU: 1×1 products and unfolded columns from
    // UNFOLD_FROM_BATCH images (hardware GPUs), burn's direct kernel everywhere (SwiftShader).
    let device = webgpu().await;
    let names = ["gradient", "guided_backprop"];
    for (lowering, copies) in [(ConvLowering::MatrixProducts, smoothgrad::UNFOLD_FROM_BATCH.div_ceil(2)), (ConvLowering::Direct, 1)] {
        let model = load(&narrow_resnet50(), MODEL, &device).with_conv_lowering(lowering);
        let from_alone = check_method_set(&model, &names, copies, &device).await;
        assert!(from_alone <= 1e-6, "{lowering:?}: the shared forward pass changed a map by {from_alone:e}");
    }
}

#[wasm_bindgen_test]
async fn maps_asked_one_call_at_a_time_share_the_image_s_forward_pass_on_webgpu() {
    // The page's plain maps: the routes a hardware GPU (products) and SwiftShader (direct) take.
    let device = webgpu().await;
    for lowering in [ConvLowering::MatrixProducts, ConvLowering::Direct] {
        let model = load(&narrow_resnet50(), MODEL, &device).with_conv_lowering(lowering);
        let from_alone = check_shared_forward(&model, &device).await;
        assert!(from_alone <= 1e-6, "{lowering:?}: the shared forward pass changed a map by {from_alone:e}");
    }
}

#[wasm_bindgen_test]
async fn channels_last_convolutions_match_captum_on_webgpu() {
    // From this batch on, every convolution is one channels-last product over the whole batch,
    // its input gradient a product and col2im.rs's kernel.
    let copies = smoothgrad::UNFOLD_FROM_BATCH.div_ceil(2);
    check_method_lowered(&GuidedBackprop, "guided_backprop", copies, ConvLowering::ChannelsLast, &webgpu().await).await;
}

#[wasm_bindgen_test]
async fn direct_convolutions_match_captum_on_webgpu() {
    // SwiftShader's lowering: burn's direct kernel for every convolution, 1×1 included.
    let device = webgpu().await;
    check_method_lowered(&Gradient, "gradient", 1, ConvLowering::Direct, &device).await;
    check_method_lowered(&GuidedBackprop, "guided_backprop", 1, ConvLowering::Direct, &device).await;
}

#[wasm_bindgen_test]
async fn input_x_gradient_matches_captum_on_webgpu() {
    check_method(&InputXGradient, "input_x_gradient", &webgpu().await).await;
}

#[wasm_bindgen_test]
async fn guided_backprop_matches_captum_on_webgpu() {
    check_method(&GuidedBackprop, "guided_backprop", &webgpu().await).await;
}

#[wasm_bindgen_test]
async fn integrated_gradients_match_captum_on_webgpu() {
    // The quadratures differ only in the host-side path points and weights, so the trapezoid one
    // is checked natively alone (tests/reference.rs): here it doubled the longest wasm test
    // (284 s of this file's 840 s on SwiftShader).
    check_method(&IntegratedGradients::default(), "integrated_gradients", &webgpu().await).await;
}

#[wasm_bindgen_test]
async fn smoothgrad_matches_recorded_noise_reference_on_webgpu() {
    let device = webgpu().await;
    check_smoothgrad(&Gradient, "gradient", 4, &device).await;
    check_smoothgrad(&GuidedBackprop, "guided_backprop", 8, &device).await;
    check_smoothgrad(&InputXGradient, "input_x_gradient", 3, &device).await;
    // One image at a time, as the page samples on WebGPU: batch 1's products take another kernel.
    check_smoothgrad(&Gradient, "gradient", 1, &device).await;
}

#[wasm_bindgen_test]
async fn full_size_resnet50_gives_a_finite_nonzero_gradient_on_webgpu() {
    use smoothgrad::burn::tensor::{Distribution, Tensor};
    use smoothgrad::{Attribution, ResNetConfig, Targets};
    let device = webgpu().await;
    let model = ResNetConfig::resnet50(1000).init(&device);
    let input = Tensor::<4>::random([1, 3, 224, 224], Distribution::Normal(0.0, 1.0), &device);
    let started = js_sys::Date::now();
    let gradient = Gradient.attribute(&model, input.clone(), &Targets::classes(&[0], 1000, &device).unwrap());
    let values = gradient.into_data_async().await.unwrap().try_to_vec::<f32>().unwrap();
    let seconds = (js_sys::Date::now() - started) / 1000.0;
    report!("ResNet-50 224×224 forward+backward on WebGPU: {seconds:.1} s");
    assert!(values.iter().all(|v| v.is_finite()));
    assert!(values.iter().filter(|v| **v != 0.0).count() > values.len() / 2);
}

#[wasm_bindgen_test]
async fn pth_bytes_get_a_clear_error_in_the_browser() {
    let pth = include_bytes!("../../../tests/fixtures/narrow_resnet50.pth");
    let device = webgpu().await;
    let error = smoothgrad::load_checkpoint_bytes(narrow_resnet50().init(&device), pth.to_vec())
        .unwrap_err();
    assert_eq!(error, smoothgrad::WeightsError::PthUnsupported);
    assert!(error.to_string().contains("safetensors"));
}

#[wasm_bindgen_test]
async fn col2im_input_gradients_match_burns_direct_kernel_on_webgpu() {
    // The GPU's backward through k×k convolutions (transposed convolution by col2im) against
    // burn's own kernel, on what the fixtures lack: an odd input to a stride-2 convolution leaves
    // no row over, an even one leaves one; 1×1 and 7×7 kernels; more output than input channels.
    use smoothgrad::ConvInputGradBackend;
    use smoothgrad::burn::backend::Dispatch;
    use smoothgrad::burn::backend::ops::ModuleOps;
    use smoothgrad::burn::tensor::ops::ConvOptions;
    use smoothgrad::burn::tensor::{Distribution, Tensor};
    let device = webgpu().await;
    let normal = |shape: [usize; 4]| Tensor::<4>::random(shape, Distribution::Normal(0.0, 1.0), &device);
    for (size, kernel, stride) in [(9, 3, 2), (10, 3, 2), (11, 7, 2), (12, 7, 2), (9, 3, 1), (9, 1, 2)] {
        let padding = kernel / 2;
        let out_size = (size + 2 * padding - kernel) / stride + 1;
        let options = ConvOptions::new([stride; 2], [padding; 2], [1, 1], 1);
        let (x, weight, grad) = (normal([2, 5, size, size]), normal([6, 5, kernel, kernel]), normal([2, 6, out_size, out_size]));
        let parts = || (x.clone().into_dispatch(), weight.clone().into_dispatch(), grad.clone().into_dispatch());
        let (x_, weight_, grad_) = parts();
        let ours = Dispatch::conv2d_input_grad(x_, weight_, grad_, options.clone());
        let (x_, weight_, grad_) = parts();
        let burns = Dispatch::conv2d_x_backward(x_, weight_, grad_, options);
        let burns = Tensor::<4>::from_dispatch(burns).into_data_async().await.unwrap();
        let what = format!("{size}×{size} input, {kernel}×{kernel} kernel, stride {stride}");
        assert_matches(&what, Tensor::<4>::from_dispatch(ours), burns, 1e-5).await;
    }
}

#[wasm_bindgen_test]
async fn winograd_convolutions_match_burns_on_webgpu() {
    // Our three Winograd kernels and the products between them against burn's own convolution
    // and its input gradient: odd sizes (the last tiles partly outside), as few rows or columns as
    // one tile, more channels out than in, a batch, an input that is a permuted view, and an image
    // large enough for F(4×4, 3×3).
    use smoothgrad::burn::backend::Dispatch;
    use smoothgrad::burn::backend::ops::ModuleOps;
    use smoothgrad::burn::tensor::ops::ConvOptions;
    use smoothgrad::burn::tensor::{Distribution, Tensor};
    use smoothgrad::winograd::{Direction, WinogradConvBackend};
    let device = webgpu().await;
    let normal = |shape: [usize; 4]| Tensor::<4>::random(shape, Distribution::Normal(0.0, 1.0), &device);
    let options = ConvOptions::new([1, 1], [1, 1], [1, 1], 1);
    let channels_last = |[batch, channels, height, width]: [usize; 4]| normal([batch, height, width, channels]).permute([0, 3, 1, 2]);
    let cases = [
        ("7×9, 3 → 5 channels", normal([2, 3, 7, 9]), 5),
        ("2×2, 4 → 4", normal([1, 4, 2, 2]), 4),
        ("1×5, 6 → 2", normal([3, 6, 1, 5]), 2),
        ("14×14 channels-last view, 16 → 24", channels_last([2, 16, 14, 14]), 24),
        ("29×30, 8 → 12", normal([2, 8, 29, 30]), 12),
    ];
    for (what, x, channels_out) in cases {
        let [batch, channels, height, width] = x.dims();
        let weight = normal([channels_out, channels, 3, 3]);
        let grad = normal([batch, channels_out, height, width]);
        let ours = Dispatch::winograd_conv3x3(x.clone().into_dispatch(), weight.clone().into_dispatch(), Direction::Forward);
        let burns = Dispatch::conv2d(x.clone().into_dispatch(), weight.clone().into_dispatch(), None, options.clone());
        let burns = Tensor::<4>::from_dispatch(burns).into_data_async().await.unwrap();
        assert_matches(&format!("forward, {what}"), Tensor::<4>::from_dispatch(ours), burns, 1e-5).await;
        let ours = Dispatch::winograd_conv3x3(grad.clone().into_dispatch(), weight.clone().into_dispatch(), Direction::InputGradient);
        let burns = Dispatch::conv2d_x_backward(x.into_dispatch(), weight.into_dispatch(), grad.into_dispatch(), options.clone());
        let burns = Tensor::<4>::from_dispatch(burns).into_data_async().await.unwrap();
        assert_matches(&format!("input gradient, {what}"), Tensor::<4>::from_dispatch(ours), burns, 1e-5).await;
    }
}

#[wasm_bindgen_test]
async fn winograd_convolutions_match_captum_on_webgpu() {
    // The whole model with its 3×3 stride-1 convolutions and their input gradients by Winograd:
    // at batch 1 beside the direct kernel, and from UNFOLD_FROM_BATCH on beside unfolded ones
    // whose products take our kernel.
    use smoothgrad::{ProductKernels, use_product_kernels};
    let device = webgpu().await;
    check_method_lowered(&Gradient, "gradient", 1, ConvLowering::Winograd, &device).await;
    use_product_kernels(ProductKernels::Tiled { vectorized: true });
    let copies = smoothgrad::UNFOLD_FROM_BATCH.div_ceil(2);
    check_method_lowered(&GuidedBackprop, "guided_backprop", copies, ConvLowering::Winograd, &device).await;
    use_product_kernels(ProductKernels::Cubek);
}

#[wasm_bindgen_test]
async fn tiled_products_match_the_cpu_on_webgpu() {
    // Our register-blocked product kernel, every tile, scalar and vectorized, against burn's CPU
    // backend: edges that fill no tile (rows, columns and inner dimension, most not a multiple of
    // a vector), a broadcast batch of one (a convolution's weights), transposed views of either
    // operand (the backward's), and an inner dimension shorter than one staged slice.
    use smoothgrad::burn::backend::Dispatch;
    use smoothgrad::burn::tensor::{Distribution, Tensor};
    use smoothgrad::{ConvProductBackend, ProductKernels, ProductTile, use_product_kernels};
    let device = webgpu().await;
    let normal = |shape: [usize; 3]| Tensor::<3>::random(shape, Distribution::Normal(0.0, 1.0), &device);
    let transposed = |shape: [usize; 3]| normal([shape[0], shape[2], shape[1]]).swap_dims(1, 2);
    let cases = [
        ("broadcast weights, ragged", normal([1, 70, 37]), normal([3, 37, 130])),
        ("contiguous, two tiles each way", normal([2, 200, 300]), normal([2, 300, 150])),
        ("both transposed", transposed([2, 70, 37]), transposed([2, 37, 130])),
        ("lhs transposed, broadcast rhs", transposed([2, 129, 64]), normal([1, 64, 65])),
        ("inner shorter than a slice", normal([1, 5, 3]), normal([1, 3, 7])),
    ];
    // Through the data: wasm reads a GPU tensor back only asynchronously.
    let cpu = Device::flex();
    let on_cpu = async |tensor: &Tensor<3>| Tensor::<3>::from_data(tensor.clone().into_data_async().await.unwrap(), &cpu);
    let mut references = Vec::new();
    for (_, lhs, rhs) in &cases {
        references.push(on_cpu(lhs).await.matmul(on_cpu(rhs).await).into_data_async().await.unwrap());
    }
    let tiles = [ProductTile::LARGE, ProductTile::TALL, ProductTile::WIDE, ProductTile::SMALL];
    for tile in tiles.into_iter().flat_map(|tile| [tile, tile.vectorized()]) {
        let kernels = ProductKernels::Fixed(tile);
        use_product_kernels(kernels);
        for ((what, lhs, rhs), reference) in cases.iter().zip(&references) {
            let ours = Dispatch::conv_product(lhs.clone().into_dispatch(), rhs.clone().into_dispatch());
            assert_matches(&format!("{}, {what}", kernels.name()), Tensor::<3>::from_dispatch(ours), reference.clone(), 1e-5).await;
        }
    }
    use_product_kernels(ProductKernels::Cubek);
}

#[wasm_bindgen_test]
async fn tiled_products_match_captum_on_webgpu() {
    // The whole model with every convolution's products through our kernel, tile by shape:
    // scalar in the shipped lowering (the weights broadcast over the batch, its backward's
    // transposed views), vectorized in channels-last (one product over the batch per convolution).
    use smoothgrad::{ProductKernels, use_product_kernels};
    let device = webgpu().await;
    let copies = smoothgrad::UNFOLD_FROM_BATCH.div_ceil(2);
    use_product_kernels(ProductKernels::Tiled { vectorized: false });
    check_method_lowered(&Gradient, "gradient", copies, ConvLowering::MatrixProducts, &device).await;
    use_product_kernels(ProductKernels::Tiled { vectorized: true });
    check_method_lowered(&GuidedBackprop, "guided_backprop", copies, ConvLowering::ChannelsLast, &device).await;
    use_product_kernels(ProductKernels::Cubek);
}
