//! A `[3, height, width]` map → RGBA pixels for a canvas.

use image::RgbImage;

use crate::names::{UnknownName, by_name};

/// Which part of the channel-summed map is shown.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Sign {
    /// Σ_c |g_c| (the usual saliency picture).
    #[default]
    Absolute,
    /// Σ_c g_c where positive.
    Positive,
    /// −Σ_c g_c where negative.
    Negative,
    /// Σ_c g_c both ways, on a diverging colormap.
    Signed,
}

impl std::str::FromStr for Sign {
    type Err = UnknownName;

    /// "abs", "positive", "negative" or "signed".
    fn from_str(name: &str) -> Result<Self, Self::Err> {
        by_name("sign", name, &[
            ("abs", Self::Absolute),
            ("positive", Self::Positive),
            ("negative", Self::Negative),
            ("signed", Self::Signed),
        ])
    }
}

/// Where the colour scale saturates.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Clip {
    /// At this percentile of |values| (the SmoothGrad paper: 99).
    Percentile(f64),
    /// Where the largest values holding this percent of the total mass begin (Captum: 2).
    OutlierMass(f64),
}

impl Default for Clip {
    fn default() -> Self {
        Self::Percentile(99.0)
    }
}

/// Colour scales.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Colormap {
    /// Perceptually uniform, for magnitudes.
    #[default]
    Viridis,
    /// Black to white.
    Grey,
    /// Blue–white–red, for signed maps.
    RedBlue,
}

impl std::str::FromStr for Colormap {
    type Err = UnknownName;

    /// "viridis", "grey" or "red-blue".
    fn from_str(name: &str) -> Result<Self, Self::Err> {
        by_name("colormap", name, &[("viridis", Self::Viridis), ("grey", Self::Grey), ("red-blue", Self::RedBlue)])
    }
}

/// How a map is drawn.
#[derive(Clone, Debug, PartialEq)]
pub struct RenderOptions {
    /// Which sign is shown.
    pub sign: Sign,
    /// Saturation point.
    pub clip: Clip,
    /// Exponent applied to the scaled magnitude (< 1 lifts faint values).
    pub gamma: f64,
    /// Colour scale; signed maps fall back to [`Colormap::RedBlue`] when left at Viridis.
    pub colormap: Colormap,
    /// Blend over the input image with this opacity at full saliency (`None`: map alone).
    pub overlay: Option<f64>,
}

/// A drawing option outside the range where it means something.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum RenderOptionsError {
    /// Gamma zero, negative or not a number (0 would saturate every pixel).
    #[error("gamma must be a finite number > 0 (got {0})")]
    BadGamma(f64),
    /// A clip percentile or outlier mass outside 0–100.
    #[error("the clip percentile must be between 0 and 100 (got {0})")]
    BadClip(f64),
    /// An overlay opacity outside 0–1.
    #[error("the overlay opacity must be between 0 and 1 (got {0})")]
    BadOverlay(f64),
}

impl RenderOptions {
    /// Refuses values that would draw nothing meaningful instead of clamping them unseen.
    pub fn validate(&self) -> Result<(), RenderOptionsError> {
        if !(self.gamma.is_finite() && self.gamma > 0.0) {
            return Err(RenderOptionsError::BadGamma(self.gamma));
        }
        let (Clip::Percentile(percent) | Clip::OutlierMass(percent)) = self.clip;
        if !(0.0..=100.0).contains(&percent) {
            return Err(RenderOptionsError::BadClip(percent));
        }
        match self.overlay {
            Some(opacity) if !(0.0..=1.0).contains(&opacity) => Err(RenderOptionsError::BadOverlay(opacity)),
            _ => Ok(()),
        }
    }
}

impl Default for RenderOptions {
    fn default() -> Self {
        Self {
            sign: Sign::default(),
            clip: Clip::default(),
            gamma: 1.0,
            colormap: Colormap::default(),
            overlay: None,
        }
    }
}

/// Reduces a planar `[3, height, width]` map to one value per pixel, as `sign` asks.
pub fn reduce_channels(map: &[f32], pixels: usize, sign: Sign) -> Vec<f32> {
    (0..pixels)
        .map(|pixel| {
            let values = (0..3).map(|channel| map[channel * pixels + pixel]);
            match sign {
                Sign::Absolute => values.map(f32::abs).sum(),
                Sign::Signed => values.sum(),
                Sign::Positive => values.sum::<f32>().max(0.0),
                Sign::Negative => (-values.sum::<f32>()).max(0.0),
            }
        })
        .collect()
}

/// The magnitude at which the colour scale saturates.
pub fn clip_value(values: &[f32], clip: Clip) -> f32 {
    let mut magnitudes: Vec<f32> = values.iter().map(|value| value.abs()).collect();
    magnitudes.sort_by(f32::total_cmp);
    let Some(&largest) = magnitudes.last() else { return 0.0 };
    match clip {
        Clip::Percentile(percent) => {
            let rank = (percent.clamp(0.0, 100.0) / 100.0 * (magnitudes.len() - 1) as f64).round();
            magnitudes[rank as usize]
        }
        Clip::OutlierMass(percent) => {
            let total: f64 = magnitudes.iter().map(|&value| f64::from(value)).sum();
            let kept = total * (1.0 - percent.clamp(0.0, 100.0) / 100.0);
            let mut running = 0.0;
            magnitudes
                .iter()
                .find(|&&value| {
                    running += f64::from(value);
                    running >= kept
                })
                .copied()
                .unwrap_or(largest)
        }
    }
}

/// RGBA bytes (`width × height × 4`) of a planar `[3, height, width]` map.
pub fn render(
    map: &[f32],
    width: usize,
    height: usize,
    options: &RenderOptions,
    background: Option<&RgbImage>,
) -> Vec<u8> {
    let values = reduce_channels(map, width * height, options.sign);
    let limit = clip_value(&values, options.clip);
    let scale = if limit > 0.0 { 1.0 / f64::from(limit) } else { 0.0 };
    let signed = options.sign == Sign::Signed;
    let colormap = match (signed, options.colormap) {
        (true, Colormap::Viridis) => Colormap::RedBlue,
        (_, chosen) => chosen,
    };
    values
        .iter()
        .enumerate()
        .flat_map(|(pixel, &value)| {
            let scaled = (f64::from(value) * scale).clamp(-1.0, 1.0);
            let magnitude = scaled.abs().powf(options.gamma);
            let position = if signed { 0.5 + 0.5 * magnitude.copysign(scaled) } else { magnitude };
            let color = colour(colormap, position);
            let rgb = match (options.overlay, background) {
                (Some(opacity), Some(image)) => {
                    let under = image.as_raw();
                    blend(&under[pixel * 3..pixel * 3 + 3], color, opacity * magnitude)
                }
                _ => color,
            };
            [rgb[0], rgb[1], rgb[2], 255]
        })
        .collect()
}

fn colour(colormap: Colormap, position: f64) -> [u8; 3] {
    let color = match colormap {
        Colormap::Viridis => colorous::VIRIDIS.eval_continuous(position),
        Colormap::Grey => colorous::GREYS.eval_continuous(1.0 - position),
        Colormap::RedBlue => colorous::RED_BLUE.eval_continuous(1.0 - position),
    };
    [color.r, color.g, color.b]
}

fn blend(under: &[u8], over: [u8; 3], opacity: f64) -> [u8; 3] {
    let opacity = opacity.clamp(0.0, 1.0);
    std::array::from_fn(|channel| {
        (f64::from(under[channel]) * (1.0 - opacity) + f64::from(over[channel]) * opacity).round()
            as u8
    })
}
