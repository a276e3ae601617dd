//! Integrated Gradients (Sundararajan et al. 2017), as Captum computes it.

use std::num::NonZeroUsize;
use std::ops::Range;

use burn::tensor::Tensor;

use super::{Attribution, input_gradient};
use crate::relu::ReluKind;
use crate::resnet::ResNet;
use crate::targets::Targets;

/// The most interpolation steps accepted: each costs a forward+backward pass per image, and
/// Gauss–Legendre's nodes cost O(steps²) to find, so more would only freeze the caller.
pub const MAX_IG_STEPS: usize = 4096;

/// How the path integral from baseline to input is approximated.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Quadrature {
    /// Gauss–Legendre nodes and weights on [0, 1] (Captum's default).
    #[default]
    GaussLegendre,
    /// Evenly spaced points with Captum's `riemann_trapezoid` weights.
    RiemannTrapezoid,
}

impl Quadrature {
    /// The interpolation coefficients α ∈ [0, 1] and their weights, for `steps` points.
    pub fn points(self, steps: NonZeroUsize) -> Vec<(f64, f64)> {
        self.points_in(steps, 0..steps.get())
    }

    /// Points `range` of [`Self::points`], computed alone: each Gauss–Legendre node is found on
    /// its own, and all 4096 of them take a quarter of a second (natively), so a worker taking a pass at a
    /// time finds only its pass's.
    pub fn points_in(self, steps: NonZeroUsize, range: Range<usize>) -> Vec<(f64, f64)> {
        let steps = steps.get();
        match self {
            Self::GaussLegendre => gauss_legendre(steps, range)
                .into_iter()
                .map(|(node, weight)| (0.5 * (node + 1.0), 0.5 * weight))
                .collect(),
            Self::RiemannTrapezoid if steps == 1 => range.map(|_| (1.0, 1.0)).collect(),
            // Captum's rule: points at i/(n−1) but weights 1/n, halved at both ends (they sum
            // to (n−1)/n); kept so that results match Captum's.
            Self::RiemannTrapezoid => {
                let weight = 1.0 / steps as f64;
                range
                    .map(|index| {
                        let ends = index == 0 || index == steps - 1;
                        let alpha = index as f64 / (steps - 1) as f64;
                        (alpha, if ends { weight / 2.0 } else { weight })
                    })
                    .collect()
            }
        }
    }
}

/// Gauss–Legendre nodes and weights on [−1, 1], by Newton's method on the Legendre polynomial:
/// those of `range` among `points`.
///
/// Written out because the quadrature crates pull in a linear-algebra stack for what is
/// fifty numbers; the test compares them with NumPy's `leggauss` as Captum uses it.
fn gauss_legendre(points: usize, range: Range<usize>) -> Vec<(f64, f64)> {
    let n = points as f64;
    range
        .map(|index| {
            // Tricomi's approximation of the root is close enough for Newton to converge.
            let mut x = (std::f64::consts::PI * (index as f64 + 0.75) / (n + 0.5)).cos();
            let mut derivative = 1.0;
            for _ in 0..100 {
                let (value, slope) = legendre(points, x);
                derivative = slope;
                let step = value / slope;
                x -= step;
                if step.abs() < 1e-15 {
                    break;
                }
            }
            let weight = 2.0 / ((1.0 - x * x) * derivative * derivative);
            (-x, weight)
        })
        .collect()
}

/// `P_n(x)` and `P_n'(x)` by the three-term recurrence.
fn legendre(degree: usize, x: f64) -> (f64, f64) {
    let (mut previous, mut current) = (1.0, x);
    for k in 2..=degree {
        let k = k as f64;
        (previous, current) = (current, ((2.0 * k - 1.0) * x * current - (k - 1.0) * previous) / k);
    }
    if degree == 0 {
        return (1.0, 0.0);
    }
    let slope = degree as f64 * (x * current - previous) / (x * x - 1.0);
    (current, slope)
}

/// The reference point the path starts from.
#[derive(Clone, Debug, Default)]
#[allow(clippy::large_enum_variant, reason = "one per run: boxing the image would save nothing")]
pub enum Baseline {
    /// All zeros (in normalised input space, as Captum's default).
    #[default]
    Zero,
    /// A given image `[1, 3, height, width]` (e.g. a blurred copy).
    Image(Tensor<4>),
}

/// `(x − baseline) · ∫₀¹ ∂ logit(baseline + α (x − baseline)) / ∂x dα`.
#[derive(Clone, Debug)]
pub struct IntegratedGradients {
    /// Points on the path (Captum's `n_steps`, default 50).
    pub steps: NonZeroUsize,
    /// Approximation of the integral.
    pub quadrature: Quadrature,
    /// Start of the path.
    pub baseline: Baseline,
    /// Path points evaluated in one forward+backward (memory versus speed).
    pub batch_size: NonZeroUsize,
}

impl Default for IntegratedGradients {
    fn default() -> Self {
        Self {
            steps: NonZeroUsize::new(50).expect("non-zero"),
            quadrature: Quadrature::default(),
            baseline: Baseline::default(),
            batch_size: NonZeroUsize::new(10).expect("non-zero"),
        }
    }
}

/// A share of Integrated Gradients' steps that is empty or reaches past them.
#[derive(Debug, thiserror::Error, PartialEq)]
#[error("steps {start}..{end} are not a share of Integrated Gradients' {steps} steps")]
pub struct BadStepRange {
    /// First step of the share.
    pub start: usize,
    /// One past its last step.
    pub end: usize,
    /// Steps in the whole integral.
    pub steps: usize,
}

impl IntegratedGradients {
    /// The part of the integral that the path points `steps` (of [`Self::steps`]) contribute,
    /// for one image `input` `[1, 3, height, width]` and its target: each point's weight times
    /// the gradient there, summed. Shares over disjoint ranges that cover every step give, through
    /// [`Self::map_from_shares`], the map [`Attribution::attribute`] gives: workers can each
    /// take one.
    pub fn share(
        &self,
        model: &ResNet,
        input: Tensor<4>,
        target: &Targets,
        steps: Range<usize>,
    ) -> Result<Tensor<4>, BadStepRange> {
        if steps.is_empty() || steps.end > self.steps.get() {
            return Err(BadStepRange { start: steps.start, end: steps.end, steps: self.steps.get() });
        }
        let input = input.without_autodiff();
        let baseline = self.baseline_for(&input);
        let delta = input - baseline.clone();
        let share = self
            .quadrature
            .points_in(self.steps, steps)
            .chunks(self.batch_size.get())
            .map(|chunk| {
                let device = delta.device();
                let (alphas, weights): (Vec<f32>, Vec<f32>) =
                    chunk.iter().map(|&(a, w)| (a as f32, w as f32)).unzip();
                let column = |values: Vec<f32>| {
                    Tensor::<1>::from_floats(values.as_slice(), &device).reshape([chunk.len(), 1, 1, 1])
                };
                let path = baseline.clone() + column(alphas) * delta.clone();
                let gradients =
                    input_gradient(model, path, &target.repeat(chunk.len()), ReluKind::Standard);
                (gradients * column(weights)).sum_dim(0)
            })
            .reduce(|total, part| total + part)
            .expect("a share has at least one step");
        Ok(share)
    }

    /// The map of `input` from its [shares](Self::share): this worker's `own` and the `others`.
    pub fn map_from_shares(
        &self,
        input: Tensor<4>,
        own: Tensor<4>,
        others: impl IntoIterator<Item = Tensor<4>>,
    ) -> Tensor<4> {
        let input = input.without_autodiff();
        let delta = input.clone() - self.baseline_for(&input);
        delta * others.into_iter().fold(own, |total, share| total + share)
    }

    fn baseline_for(&self, input: &Tensor<4>) -> Tensor<4> {
        match &self.baseline {
            Baseline::Zero => input.zeros_like(),
            Baseline::Image(image) => image.clone(),
        }
    }

    fn attribute_one(&self, model: &ResNet, input: Tensor<4>, target: &Targets) -> Tensor<4> {
        let all = self
            .share(model, input.clone(), target, 0..self.steps.get())
            .expect("all the steps are a share");
        self.map_from_shares(input, all, [])
    }
}

impl Attribution for IntegratedGradients {
    fn attribute(&self, model: &ResNet, inputs: Tensor<4>, targets: &Targets) -> Tensor<4> {
        let inputs = inputs.without_autodiff();
        let batch = inputs.dims()[0];
        let maps = (0..batch)
            .map(|index| {
                self.attribute_one(model, inputs.clone().narrow(0, index, 1), &targets.select(index))
            })
            .collect();
        Tensor::cat(maps, 0)
    }

    fn passes_per_image(&self) -> usize {
        self.steps.get()
    }
}
