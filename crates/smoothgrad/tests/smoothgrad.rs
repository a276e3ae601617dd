//! SmoothGrad's options, noise and running sums.

mod common;

use common::*;
use smoothgrad::burn::tensor::{Device, Tensor};
use smoothgrad::{
    GaussianNoise, Gradient, NoiseSource, OptionsError, PortableNoise, SmoothGradOptions, SmoothGradRun,
    Smoothing, TargetError, Targets,
};

fn device() -> Device {
    Device::flex()
}

fn values<const D: usize>(tensor: Tensor<D>) -> Vec<f32> {
    tensor.into_data().try_to_vec::<f32>().unwrap()
}

#[test]
fn nonsense_options_are_refused_with_a_reason() {
    let defaults = SmoothGradOptions::default();
    assert_eq!(defaults.samples, 50);
    assert_eq!(defaults.noise_level, 0.15);
    let with = |change: fn(&mut SmoothGradOptions)| {
        let mut options = defaults.clone();
        change(&mut options);
        options.validate()
    };
    assert_eq!(with(|o| o.samples = 0), Err(OptionsError::NoSamples));
    assert_eq!(with(|o| o.noise_level = -0.1), Err(OptionsError::BadNoiseLevel(-0.1)));
    assert!(matches!(with(|o| o.noise_level = f64::NAN), Err(OptionsError::BadNoiseLevel(_))));
    assert_eq!(with(|o| o.micro_batch = 0), Err(OptionsError::EmptyMicroBatch));
    assert_eq!(with(|_| ()), Ok(()));
}

#[test]
fn out_of_range_class_is_refused() {
    let error = Targets::classes(&[3, 10], 10, &device()).unwrap_err();
    assert_eq!(error, TargetError::OutOfRange { class: 10, num_classes: 10 });
    assert!(error.to_string().contains("0–9"));
}

#[test]
fn noise_has_the_requested_spread_and_is_reproducible() {
    let device = device();
    check_noise(|seed| GaussianNoise::new(seed, &device), &device);
    check_noise(|seed| PortableNoise::new(seed, &device), &device);
}

fn check_noise<N: NoiseSource>(source: impl Fn(u64) -> N, device: &Device) {
    let sigma = Tensor::<1>::from_floats([0.5], device);
    let shape = [3, 32, 32];
    let all = values(source(7).draw(0..4, &sigma, shape));
    let n = all.len() as f32;
    let mean = all.iter().sum::<f32>() / n;
    let std = (all.iter().map(|v| (v - mean).powi(2)).sum::<f32>() / n).sqrt();
    assert!(mean.abs() < 0.03, "mean {mean}");
    assert!((std - 0.5).abs() < 0.02, "std {std}");

    // Sample 2 drawn alone equals sample 2 of the batch: micro-batching does not change it.
    let alone = values(source(7).draw(2..3, &sigma, shape));
    let per_sample = 3 * 32 * 32;
    assert_eq!(alone, all[2 * per_sample..3 * per_sample]);
    assert_ne!(alone, all[per_sample..2 * per_sample]);
    let other_seed = values(source(8).draw(2..3, &sigma, shape));
    assert_ne!(alone, other_seed);
}

#[test]
fn result_does_not_depend_on_the_micro_batch_and_progress_is_reported() {
    let device = device();
    let model = load(&narrow_resnet50(), MODEL, &device);
    let input: Tensor<4> = reference_tensor::<4>("input", &device).narrow(0, 0, 1);
    let target = reference_targets(&device).select(0);
    let run = |micro_batch: usize| {
        let options = SmoothGradOptions { samples: 5, micro_batch, seed: 3, ..Default::default() };
        let noise = GaussianNoise::new(options.seed, &device);
        let mut ticks = Vec::new();
        let sums = SmoothGradRun::new(model.clone(), Gradient, input.clone(), target.clone(), noise, options)
            .unwrap()
            .run(|progress, _| ticks.push(progress.done));
        (values(sums.map(Smoothing::Mean)), ticks)
    };
    let (by_two, ticks) = run(2);
    assert_eq!(ticks, vec![2, 4, 5]);
    let (by_five, ticks) = run(5);
    assert_eq!(ticks, vec![5]);
    let largest = by_five.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    let error = by_two.iter().zip(&by_five).fold(0.0f32, |m, (a, b)| m.max((a - b).abs()));
    assert!(error <= 1e-5 * largest, "{error} vs {largest}");
}

#[test]
fn smoothing_variants_follow_from_the_sums() {
    let device = device();
    let maps = Tensor::<4>::from_floats([[[[1.0, -2.0]]], [[[3.0, 2.0]]]], &device);
    let sums = smoothgrad::SmoothGradSums {
        count: 2,
        sum: maps.clone().sum_dim(0).squeeze_dim(0),
        sum_of_squares: maps.powi_scalar(2).sum_dim(0).squeeze_dim(0),
    };
    assert_eq!(values(sums.map(Smoothing::Mean)), vec![2.0, 0.0]);
    assert_eq!(values(sums.map(Smoothing::MeanOfSquares)), vec![5.0, 4.0]);
    assert_eq!(values(sums.map(Smoothing::Variance)), vec![1.0, 4.0]);
    let with_negative_mean = smoothgrad::SmoothGradSums {
        count: 1,
        sum: Tensor::from_floats([[[-1.5]]], &device),
        sum_of_squares: Tensor::from_floats([[[2.25]]], &device),
    };
    assert_eq!(values(with_negative_mean.map(Smoothing::AbsMean)), vec![1.5]);
}
