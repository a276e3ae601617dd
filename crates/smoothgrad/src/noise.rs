//! Where SmoothGrad's noise comes from.

use std::ops::Range;

use burn::tensor::{Device, Distribution, Tensor, TensorData};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;

/// Noise for a range of samples of one image, already scaled by σ.
pub trait NoiseSource {
    /// `[samples.len(), channels, height, width]` noise for those sample indices.
    fn draw(&mut self, samples: Range<usize>, sigma: &Tensor<1>, shape: [usize; 3]) -> Tensor<4>;
}

/// Gaussian N(0, σ²) drawn on the device from a seeded generator.
///
/// Each sample is drawn under its own seed, so sample `i` is the same whatever the micro-batch
/// size: a run is reproducible from `(seed, backend)` alone.
#[derive(Clone, Debug)]
pub struct GaussianNoise {
    seed: u64,
    device: Device,
}

impl GaussianNoise {
    /// Noise on `device` from `seed`.
    pub fn new(seed: u64, device: &Device) -> Self {
        Self { seed, device: device.clone() }
    }

    fn sample_seed(&self, sample: usize) -> u64 {
        // SplitMix64's increment keeps consecutive samples' seeds far apart.
        self.seed.wrapping_add((sample as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15))
    }
}

impl NoiseSource for GaussianNoise {
    fn draw(&mut self, samples: Range<usize>, sigma: &Tensor<1>, shape: [usize; 3]) -> Tensor<4> {
        let [channels, height, width] = shape;
        let unit = samples
            .map(|sample| {
                self.device.seed(self.sample_seed(sample));
                Tensor::<4>::random(
                    [1, channels, height, width],
                    Distribution::Normal(0.0, 1.0),
                    &self.device,
                )
            })
            .collect();
        Tensor::cat(unit, 0) * sigma.clone().reshape([1, 1, 1, 1])
    }
}

/// Gaussian N(0, σ²) drawn on the host from a portable seeded generator and uploaded.
///
/// The same seed gives the same noise on every backend and machine (ChaCha8, one stream per
/// sample), so a shared `(seed, parameters)` reproduces a map anywhere, CPU or GPU. It costs an
/// upload per micro-batch (600 KB per 224×224 sample), which [`GaussianNoise`] avoids.
#[derive(Clone, Debug)]
pub struct PortableNoise {
    seed: u64,
    device: Device,
}

impl PortableNoise {
    /// Noise uploaded to `device`, from `seed`.
    pub fn new(seed: u64, device: &Device) -> Self {
        Self { seed, device: device.clone() }
    }
}

impl NoiseSource for PortableNoise {
    fn draw(&mut self, samples: Range<usize>, sigma: &Tensor<1>, shape: [usize; 3]) -> Tensor<4> {
        let [channels, height, width] = shape;
        let per_sample = channels * height * width;
        let batch = samples.len();
        let mut values = Vec::with_capacity(batch * per_sample);
        for sample in samples {
            let mut rng = ChaCha8Rng::seed_from_u64(self.seed);
            rng.set_stream(sample as u64);
            values.extend((0..per_sample).map(|_| rng.sample::<f32, _>(StandardNormal)));
        }
        let unit = Tensor::<4>::from_data(
            TensorData::new(values, [batch, channels, height, width]),
            &self.device,
        );
        unit * sigma.clone().reshape([1, 1, 1, 1])
    }
}

/// Noise recorded elsewhere (e.g. by PyTorch), replayed exactly: `[samples, 3, height, width]`,
/// already scaled.
#[derive(Clone, Debug)]
pub struct RecordedNoise {
    noise: Tensor<4>,
}

impl RecordedNoise {
    /// Replays `noise`.
    pub fn new(noise: Tensor<4>) -> Self {
        Self { noise }
    }

    /// How many samples were recorded.
    pub fn samples(&self) -> usize {
        self.noise.dims()[0]
    }
}

impl NoiseSource for RecordedNoise {
    fn draw(&mut self, samples: Range<usize>, _sigma: &Tensor<1>, _shape: [usize; 3]) -> Tensor<4> {
        self.noise.clone().narrow(0, samples.start, samples.len())
    }
}
