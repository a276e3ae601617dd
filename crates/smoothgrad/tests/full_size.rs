//! A real-size ResNet-50 (random weights) runs forward and backward on the CPU.

use smoothgrad::burn::tensor::{Device, Distribution, Tensor};
use smoothgrad::{Attribution, Gradient, ResNetConfig, Targets};
use std::time::Instant;

#[test]
fn resnet50_at_224_gives_a_finite_nonzero_input_gradient() {
    let device = Device::flex();
    let model = ResNetConfig::resnet50(1000).init(&device);
    let input = Tensor::<4>::random([1, 3, 224, 224], Distribution::Normal(0.0, 1.0), &device);
    let started = Instant::now();
    let logits = model.forward(input.clone());
    let target = Targets::top1(logits);
    let gradient = Gradient.attribute(&model, input, &target);
    let values = gradient.into_data().try_to_vec::<f32>().unwrap();
    println!("ResNet-50 224×224 forward + top-1 + forward/backward: {:.2?}", started.elapsed());
    assert_eq!(values.len(), 3 * 224 * 224);
    assert!(values.iter().all(|v| v.is_finite()));
    assert!(values.iter().filter(|v| **v != 0.0).count() > values.len() / 2);
}
