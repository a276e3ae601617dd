//! SmoothGrad (Smilkov et al. 2017): average a method's maps over noisy copies of the image.

use std::ops::Range;

use burn::tensor::Tensor;

use crate::attribution::Attribution;
use crate::names::{UnknownName, by_name};
use crate::noise::NoiseSource;
use crate::resnet::ResNet;
use crate::targets::Targets;

/// Why SmoothGrad options were refused.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum OptionsError {
    /// No samples.
    #[error("the number of samples must be at least 1 (got 0)")]
    NoSamples,
    /// σ below zero or not a number.
    #[error("the noise level must be a finite number ≥ 0 (got {0})")]
    BadNoiseLevel(f64),
    /// A micro-batch of nothing.
    #[error("the micro-batch size must be at least 1 (got 0)")]
    EmptyMicroBatch,
    /// An input that is not one RGB image, or a target that is not one class.
    #[error(
        "SmoothGrad explains one image for one class: got an input of shape {input:?} (expected \
         [1, 3, height, width]) and {targets} targets"
    )]
    NotOneImage {
        /// The input's shape.
        input: [usize; 4],
        /// Images the targets are for.
        targets: usize,
    },
    /// A share of a run that is empty or reaches past its samples.
    #[error("samples {start}..{end} are not a share of a run of {samples} samples")]
    BadSampleRange {
        /// First sample of the share.
        start: usize,
        /// One past its last sample.
        end: usize,
        /// Samples in the whole run.
        samples: usize,
    },
}

/// SmoothGrad's parameters; the defaults are the paper's.
#[derive(Clone, Debug, PartialEq)]
pub struct SmoothGradOptions {
    /// Noisy copies averaged (default 50).
    pub samples: usize,
    /// σ as a fraction of the image's value range `max − min` (default 0.15).
    pub noise_level: f64,
    /// Noisy copies sent through the network together.
    pub micro_batch: usize,
    /// Seed of the noise generator.
    pub seed: u64,
}

impl Default for SmoothGradOptions {
    fn default() -> Self {
        Self { samples: 50, noise_level: 0.15, micro_batch: 10, seed: 0 }
    }
}

impl SmoothGradOptions {
    /// Refuses values that cannot produce a map.
    pub fn validate(&self) -> Result<(), OptionsError> {
        if self.samples == 0 {
            return Err(OptionsError::NoSamples);
        }
        if !(self.noise_level.is_finite() && self.noise_level >= 0.0) {
            return Err(OptionsError::BadNoiseLevel(self.noise_level));
        }
        if self.micro_batch == 0 {
            return Err(OptionsError::EmptyMicroBatch);
        }
        Ok(())
    }
}

/// How the per-sample maps are combined.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Smoothing {
    /// E[g] (SmoothGrad).
    #[default]
    Mean,
    /// E[g²] (SmoothGrad²).
    MeanOfSquares,
    /// E[g²] − E[g]² (VarGrad).
    Variance,
    /// |E[g]|.
    AbsMean,
}

impl std::str::FromStr for Smoothing {
    type Err = UnknownName;

    /// "mean", "mean-of-squares", "variance" or "abs-mean".
    fn from_str(name: &str) -> Result<Self, Self::Err> {
        by_name("smoothing", name, &[
            ("mean", Self::Mean),
            ("mean-of-squares", Self::MeanOfSquares),
            ("variance", Self::Variance),
            ("abs-mean", Self::AbsMean),
        ])
    }
}

/// Running sums over the samples seen so far; every [`Smoothing`] derives from them.
#[derive(Clone, Debug)]
pub struct SmoothGradSums {
    /// Samples summed.
    pub count: usize,
    /// Σ g, `[3, height, width]` per map of the method ([`Attribution::maps_per_image`]), stacked.
    pub sum: Tensor<3>,
    /// Σ g², the same shape.
    pub sum_of_squares: Tensor<3>,
}

impl SmoothGradSums {
    /// The map for one smoothing variant, shaped as [`Self::sum`].
    pub fn map(&self, smoothing: Smoothing) -> Tensor<3> {
        let count = self.count.max(1) as f64;
        let mean = || self.sum.clone() / count;
        let mean_of_squares = || self.sum_of_squares.clone() / count;
        match smoothing {
            Smoothing::Mean => mean(),
            Smoothing::MeanOfSquares => mean_of_squares(),
            // Rounding can leave E[g²] − E[g]² a little below zero where the samples agree.
            Smoothing::Variance => (mean_of_squares() - mean().powi_scalar(2)).clamp_min(0.0),
            Smoothing::AbsMean => mean().abs(),
        }
    }

    /// The sums over the samples of both (e.g. two workers' shares of one run).
    pub fn merge(self, other: SmoothGradSums) -> Self {
        Self {
            count: self.count + other.count,
            sum: self.sum + other.sum,
            sum_of_squares: self.sum_of_squares + other.sum_of_squares,
        }
    }

    fn add(self, maps: Tensor<4>) -> Self {
        let batch = maps.dims()[0];
        Self {
            count: self.count + batch,
            sum: self.sum + maps.clone().sum_dim(0).squeeze_dim(0),
            sum_of_squares: self.sum_of_squares + maps.powi_scalar(2).sum_dim(0).squeeze_dim(0),
        }
    }
}

/// How far a run has got.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Progress {
    /// Samples done.
    pub done: usize,
    /// Samples in the run.
    pub total: usize,
}

impl Progress {
    /// Whether every sample is done.
    pub fn is_finished(&self) -> bool {
        self.done >= self.total
    }
}

/// One SmoothGrad run over one image, advanced a micro-batch at a time.
///
/// Nothing here reads from the device, so an async caller (wasm) reads [`SmoothGradRun::sums`]
/// with `into_data_async` between steps, and a native caller can simply loop.
pub struct SmoothGradRun<A: Attribution, N: NoiseSource> {
    model: ResNet,
    method: A,
    input: Tensor<4>,
    targets: Targets,
    noise: N,
    sigma: Tensor<1>,
    options: SmoothGradOptions,
    samples: Range<usize>,
    sums: SmoothGradSums,
}

impl<A: Attribution, N: NoiseSource> SmoothGradRun<A, N> {
    /// Prepares a run over `input` `[1, 3, height, width]` for `target` (one row); anything else
    /// is [`OptionsError::NotOneImage`].
    ///
    /// The run keeps its own handle on the model (a clone shares the weights).
    pub fn new(
        model: ResNet,
        method: A,
        input: Tensor<4>,
        target: Targets,
        noise: N,
        options: SmoothGradOptions,
    ) -> Result<Self, OptionsError> {
        options.validate()?;
        let input = input.without_autodiff();
        let [images, channels, height, width] = input.dims();
        // Caught here rather than as a shape panic inside the network a micro-batch later.
        if images != 1 || channels != 3 || height == 0 || width == 0 || target.images() != 1 {
            return Err(OptionsError::NotOneImage { input: input.dims(), targets: target.images() });
        }
        let sigma = (input.clone().max() - input.clone().min()) * options.noise_level;
        let map_channels = channels * method.maps_per_image();
        let zeros = || Tensor::zeros([map_channels, height, width], &input.device());
        Ok(Self {
            model,
            method,
            targets: target,
            noise,
            sigma,
            samples: 0..options.samples,
            options,
            sums: SmoothGradSums { count: 0, sum: zeros(), sum_of_squares: zeros() },
            input,
        })
    }

    /// Runs only the samples `samples` of the whole run, with the noise they have there: runs
    /// over disjoint shares (one per worker, say) give, [merged](SmoothGradSums::merge), the
    /// whole run's sums.
    pub fn with_sample_range(mut self, samples: Range<usize>) -> Result<Self, OptionsError> {
        if samples.is_empty() || samples.end > self.options.samples {
            let Range { start, end } = samples;
            return Err(OptionsError::BadSampleRange { start, end, samples: self.options.samples });
        }
        self.samples = samples;
        Ok(self)
    }

    /// Runs the next micro-batch of noisy copies and adds their maps to the sums.
    pub fn step(&mut self) -> Progress {
        let done = self.sums.count;
        let batch = self.options.micro_batch.min(self.samples.len() - done);
        if batch > 0 {
            let [_, channels, height, width] = self.input.dims();
            let first = self.samples.start + done;
            let noise = self.noise.draw(first..first + batch, &self.sigma, [channels, height, width]);
            let noisy = self.input.clone().repeat_dim(0, batch) + noise;
            let maps = self.method.attribute(&self.model, noisy, &self.targets.repeat(batch));
            self.sums = self.sums.clone().add(maps);
        }
        self.progress()
    }

    /// Samples done so far, of this run's share.
    pub fn progress(&self) -> Progress {
        Progress { done: self.sums.count, total: self.samples.len() }
    }

    /// The running sums (device tensors).
    pub fn sums(&self) -> &SmoothGradSums {
        &self.sums
    }

    /// Runs every remaining micro-batch, calling `on_progress` after each.
    pub fn run(mut self, mut on_progress: impl FnMut(Progress, &SmoothGradSums)) -> SmoothGradSums {
        while !self.progress().is_finished() {
            let progress = self.step();
            on_progress(progress, &self.sums);
        }
        self.sums
    }
}
