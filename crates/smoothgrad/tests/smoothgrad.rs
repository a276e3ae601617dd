//! SmoothGrad's options, noise and running sums.

mod common;

use common::*;
use smoothgrad::burn::tensor::{Device, Tensor};
use smoothgrad::{
    GaussianNoise, compare, Gradient, NoiseSource, OptionsError, PortableNoise, ResNet, SmoothGradOptions,
    SmoothGradRun, Smoothing, TargetError, Targets,
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

/// The fixture model, the first reference image and its target.
struct Fixture {
    device: Device,
    model: ResNet,
    input: Tensor<4>,
    target: Targets,
}

impl Fixture {
    fn new() -> Self {
        let device = device();
        let model = load(&narrow_resnet50(), MODEL, &device);
        let input = reference_tensor::<4>("input", &device).narrow(0, 0, 1);
        let target = reference_targets(&device).select(0);
        Self { device, model, input, target }
    }

    /// A SmoothGrad run of the gradient over the image.
    fn run<N: NoiseSource>(&self, noise: N, options: SmoothGradOptions) -> SmoothGradRun<Gradient, N> {
        SmoothGradRun::new(self.model.clone(), Gradient, self.input.clone(), self.target.clone(), noise, options)
            .unwrap()
    }
}

#[test]
fn result_does_not_depend_on_the_micro_batch_and_progress_is_reported() {
    let fixture = Fixture::new();
    let run = |micro_batch: usize| {
        let options = SmoothGradOptions { samples: 5, micro_batch, seed: 3, ..Default::default() };
        let noise = GaussianNoise::new(options.seed, &fixture.device);
        let mut ticks = Vec::new();
        let sums = fixture.run(noise, options).run(|progress, _| ticks.push(progress.done));
        (values(sums.map(Smoothing::Mean)), ticks)
    };
    let (by_two, ticks) = run(2);
    assert_eq!(ticks, vec![2, 4, 5]);
    let (by_five, ticks) = run(5);
    assert_eq!(ticks, vec![5]);
    let error = compare::max_relative_error(&by_two, &by_five);
    assert!(error <= 1e-5, "{error}");
}

#[test]
fn a_run_over_anything_but_one_image_and_one_target_is_refused() {
    let fixture = Fixture::new();
    let refused = |input: Tensor<4>, target: Targets| {
        let noise = GaussianNoise::new(0, &fixture.device);
        let run = SmoothGradRun::new(fixture.model.clone(), Gradient, input, target, noise, SmoothGradOptions::default());
        run.err()
    };
    let two_images = fixture.input.clone().repeat_dim(0, 2);
    let [_, _, height, width] = fixture.input.dims();
    let expected = |input, targets| Some(OptionsError::NotOneImage { input, targets });
    assert_eq!(refused(two_images, fixture.target.clone()), expected([2, 3, height, width], 1));
    let grey = fixture.input.clone().narrow(1, 0, 1);
    assert_eq!(refused(grey, fixture.target.clone()), expected([1, 1, height, width], 1));
    let two_targets = refused(fixture.input.clone(), fixture.target.repeat(2));
    assert_eq!(two_targets, expected([1, 3, height, width], 2));
    let error = two_targets.unwrap();
    assert!(error.to_string().contains("expected [1, 3, height, width]"), "{error}");
}

#[test]
fn shares_of_a_run_merge_into_the_whole_run() {
    let fixture = Fixture::new();
    let options = SmoothGradOptions { samples: 5, micro_batch: 2, seed: 11, ..Default::default() };
    let run = || fixture.run(PortableNoise::new(options.seed, &fixture.device), options.clone());
    let share = |samples| {
        let mut ticks = Vec::new();
        let sums = run().with_sample_range(samples).unwrap().run(|progress, _| ticks.push(progress));
        (sums, ticks.last().copied().unwrap())
    };
    let whole = run().run(|_, _| ());
    let ((first, first_end), (rest, rest_end)) = (share(0..2), share(2..5));
    assert_eq!((first_end.done, first_end.total, rest_end.done, rest_end.total), (2, 2, 3, 3));
    let merged = first.merge(rest.clone());
    assert_eq!(merged.count, 5);
    for smoothing in [Smoothing::Mean, Smoothing::Variance] {
        let error = compare::max_relative_error(&values(merged.map(smoothing)), &values(whole.map(smoothing)));
        assert!(error <= 1e-5, "{smoothing:?}: {error}");
    }
    // A share is its own samples, not the first ones again.
    assert_ne!(values(rest.sum), values(share(0..3).0.sum));

    let refused = |samples| run().with_sample_range(samples).err();
    let expected = |start, end| Some(OptionsError::BadSampleRange { start, end, samples: 5 });
    assert_eq!(refused(3..6), expected(3, 6));
    assert_eq!(refused(2..2), expected(2, 2));
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
    // Samples that agree: E[g²] rounds below E[g]² (0.1² is 0.010000001 in f32), not a variance.
    let agreeing = smoothgrad::SmoothGradSums {
        count: 2,
        sum: Tensor::from_floats([[[0.2]]], &device),
        sum_of_squares: Tensor::from_floats([[[0.02 - 1e-9]]], &device),
    };
    assert_eq!(values(agreeing.map(Smoothing::Variance)), vec![0.0]);
}

/// Records the σ it is asked for and draws no noise, so the run is the plain gradient n times.
struct RecordSigma(std::rc::Rc<std::cell::RefCell<Vec<f32>>>);

impl NoiseSource for RecordSigma {
    fn draw(&mut self, samples: std::ops::Range<usize>, sigma: &Tensor<1>, [c, h, w]: [usize; 3]) -> Tensor<4> {
        self.0.borrow_mut().extend(values(sigma.clone()));
        Tensor::zeros([samples.len(), c, h, w], &sigma.device())
    }
}

#[test]
fn sigma_is_the_noise_level_times_the_images_value_range_and_the_target_stays_fixed() {
    let fixture = Fixture::new();
    let pixels = values(fixture.input.clone());
    let (min, max) = pixels.iter().fold((f32::MAX, f32::MIN), |(lo, hi), &v| (lo.min(v), hi.max(v)));
    let sigmas = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
    let options = SmoothGradOptions { samples: 3, micro_batch: 2, ..Default::default() };
    let sums = fixture.run(RecordSigma(sigmas.clone()), options).run(|_, _| ());
    let expected = 0.15 * (max - min);
    assert_eq!(sigmas.borrow().len(), 2, "one draw per micro-batch");
    for sigma in sigmas.borrow().iter() {
        assert!((sigma - expected).abs() <= 1e-6 * expected, "σ {sigma}, expected 0.15 × ({max} − {min}) = {expected}");
    }
    // Without noise every sample is the clean image's gradient for the clean image's target.
    let gradient = smoothgrad::Attribution::attribute(&Gradient, &fixture.model, fixture.input.clone(), &fixture.target);
    let error = compare::max_relative_error(&values(sums.map(Smoothing::Mean)), &values(gradient.squeeze_dim::<3>(0)));
    assert!(error <= 1e-5, "{error}");
}
