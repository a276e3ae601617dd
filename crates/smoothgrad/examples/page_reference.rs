//! The numbers the browser page must show for the fixture model and a sample image, computed
//! natively on the CPU backend (whose maths the core tests check against PyTorch/Captum).
//!
//! `cargo run --example page_reference -- WEIGHTS IMAGE > tests/fixtures/page_reference.json`
//! (generated, git-ignored); the end-to-end tests compare the page's read-back results with it.

use serde_json::json;
use smoothgrad::burn::tensor::activation::softmax;
use smoothgrad::burn::tensor::{Device, Tensor};
use smoothgrad::{
    Attribution, Gradient, GuidedBackprop, PortableNoise, Preprocess, SmoothGradOptions,
    SmoothGradRun, Smoothing, Targets, checkpoint_config, load_checkpoint_bytes,
};

/// The run the end-to-end test asks the page for.
const OPTIONS: SmoothGradOptions = SmoothGradOptions { samples: 4, noise_level: 0.15, micro_batch: 2, seed: 7 };

fn values<const D: usize>(tensor: Tensor<D>) -> Vec<f32> {
    tensor.into_data().try_to_vec::<f32>().expect("f32 tensor")
}

/// The name the page's test server serves the fixture under.
fn file_name(path: &str) -> String {
    std::path::Path::new(path).file_name().expect("a file").to_string_lossy().into_owned()
}

fn main() {
    let mut args = std::env::args().skip(1);
    let (weights_path, image_path) = match (args.next(), args.next()) {
        (Some(weights), Some(image)) => (weights, image),
        _ => panic!("usage: page_reference WEIGHTS IMAGE"),
    };
    let device = Device::flex();
    let weights = std::fs::read(&weights_path).expect("weights readable");
    let config = checkpoint_config(&weights).expect("a ResNet checkpoint");
    let model = load_checkpoint_bytes(config.init(&device), weights).expect("weights load");
    let image = std::fs::read(&image_path).expect("image readable");
    let input = Preprocess::default().input(&image, &device).expect("an image");

    let logits = model.forward(input.clone());
    let probabilities = values(softmax(logits.clone(), 1));
    let target = Targets::top1(logits);
    let top1 = values(target.indices().float())[0] as usize;
    let gradient = values(Gradient.attribute(&model, input.clone(), &target).squeeze_dim::<3>(0));
    let guided = values(GuidedBackprop.attribute(&model, input.clone(), &target).squeeze_dim::<3>(0));
    let noise = PortableNoise::new(OPTIONS.seed, &device);
    let sums = SmoothGradRun::new(model, Gradient, input, target, noise, OPTIONS.clone())
        .expect("valid options")
        .run(|_, _| {});

    let reference = json!({
        "generator": "cargo run --example page_reference (CPU backend)",
        "weights": file_name(&weights_path),
        "image": file_name(&image_path),
        "method": "gradient",
        "seed": OPTIONS.seed,
        "samples": OPTIONS.samples,
        "noiseLevel": OPTIONS.noise_level,
        "microBatch": OPTIONS.micro_batch,
        "target": top1,
        "probabilities": probabilities,
        "gradient": gradient,
        "guided_backprop": guided,
        "smoothgrad_mean": values(sums.map(Smoothing::Mean)),
        "smoothgrad_variance": values(sums.map(Smoothing::Variance)),
    });
    println!("{reference}");
}
