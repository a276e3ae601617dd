//! The same comparisons with PyTorch/Captum, compiled to wasm and run on WebGPU in a browser:
//! the WebGPU path must give the numbers the CPU path gives.
#![cfg(target_family = "wasm")]

mod common;

use std::cell::RefCell;

use common::*;
use smoothgrad::burn::tensor::Device;
use smoothgrad::{Gradient, GuidedBackprop, InputXGradient};
use wasm_bindgen_test::{wasm_bindgen_test, wasm_bindgen_test_configure};

wasm_bindgen_test_configure!(run_in_browser);

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
async fn every_method_matches_captum_on_webgpu() {
    check_all_methods(&webgpu().await).await;
}

#[wasm_bindgen_test]
async fn smoothgrad_matches_recorded_noise_reference_on_webgpu() {
    let device = webgpu().await;
    check_smoothgrad(&Gradient, "gradient", 4, &device).await;
    check_smoothgrad(&GuidedBackprop, "guided_backprop", 8, &device).await;
    check_smoothgrad(&InputXGradient, "input_x_gradient", 3, &device).await;
}
