//! Maps to pixels.

use smoothgrad::render::{clip_value, reduce_channels};
use smoothgrad::{Clip, Colormap, RenderOptions, RenderOptionsError, Sign, render};

/// A planar 3-channel map of `pixels` pixels whose channel 0 holds `values`, the others 0.
fn map(values: &[f32]) -> Vec<f32> {
    let mut planar = values.to_vec();
    planar.extend(std::iter::repeat_n(0.0, 2 * values.len()));
    planar
}

#[test]
fn channels_reduce_by_the_chosen_sign() {
    let planar = [1.0, -2.0, 3.0, -1.0, -1.0, 1.0];
    let pixels = 2;
    // Channel sums: pixel 0 = 1 + 3 − 1 = 3, pixel 1 = −2 − 1 + 1 = −2.
    assert_eq!(reduce_channels(&planar, pixels, Sign::Absolute), vec![5.0, 4.0]);
    assert_eq!(reduce_channels(&planar, pixels, Sign::Signed), vec![3.0, -2.0]);
    assert_eq!(reduce_channels(&planar, pixels, Sign::Positive), vec![3.0, 0.0]);
    assert_eq!(reduce_channels(&planar, pixels, Sign::Negative), vec![0.0, 2.0]);
}

#[test]
fn percentile_clip_ignores_the_top_outliers() {
    let values: Vec<f32> = (0..=100).map(|v| v as f32).collect();
    assert_eq!(clip_value(&values, Clip::Percentile(99.0)), 99.0);
    assert_eq!(clip_value(&values, Clip::Percentile(100.0)), 100.0);
}

#[test]
fn outlier_mass_clip_is_captums_cumulative_threshold() {
    // Total mass 100: one outlier of 50 and fifty values of 1. Dropping 2 % of the mass keeps
    // 98: the running sum of sorted magnitudes reaches it only at the outlier.
    let mut values = vec![1.0f32; 50];
    values.push(50.0);
    assert_eq!(clip_value(&values, Clip::OutlierMass(2.0)), 50.0);
    // Dropping 60 % keeps 40, reached within the ones.
    assert_eq!(clip_value(&values, Clip::OutlierMass(60.0)), 1.0);
}

#[test]
fn magnitudes_span_the_colormap_and_saturate_at_the_clip() {
    let options = RenderOptions { clip: Clip::Percentile(50.0), ..Default::default() };
    let rgba = render(&map(&[0.0, 1.0, 2.0]), 3, 1, &options, None);
    let pixel = |index: usize| &rgba[index * 4..index * 4 + 4];
    let viridis = |t: f64| {
        let c = colorous::VIRIDIS.eval_continuous(t);
        [c.r, c.g, c.b, 255]
    };
    assert_eq!(pixel(0), viridis(0.0));
    assert_eq!(pixel(1), viridis(1.0));
    assert_eq!(pixel(2), viridis(1.0), "values above the clip saturate");
}

#[test]
fn signed_maps_are_centred_on_a_diverging_scale() {
    let options = RenderOptions { sign: Sign::Signed, clip: Clip::Percentile(100.0), ..Default::default() };
    let rgba = render(&map(&[-1.0, 0.0, 1.0]), 3, 1, &options, None);
    let (negative, zero, positive) = (&rgba[0..3], &rgba[4..7], &rgba[8..11]);
    assert!(negative[2] > negative[0], "negative is blue: {negative:?}");
    assert!(positive[0] > positive[2], "positive is red: {positive:?}");
    assert!(zero.iter().all(|&c| c > 200), "zero is near white: {zero:?}");
}

#[test]
fn overlay_shows_the_image_where_saliency_is_zero() {
    let background = image::RgbImage::from_pixel(2, 1, image::Rgb([10, 200, 30]));
    let options = RenderOptions { overlay: Some(1.0), colormap: Colormap::Grey, ..Default::default() };
    let rgba = render(&map(&[0.0, 1.0]), 2, 1, &options, Some(&background));
    assert_eq!(&rgba[0..4], &[10, 200, 30, 255]);
    assert_eq!(&rgba[4..8], &[255, 255, 255, 255]);
}

#[test]
fn gamma_lifts_faint_values() {
    let plain = RenderOptions { colormap: Colormap::Grey, clip: Clip::Percentile(100.0), ..Default::default() };
    let lifted = RenderOptions { gamma: 0.5, ..plain.clone() };
    let faint = map(&[0.25, 1.0]);
    let a = render(&faint, 2, 1, &plain, None)[0];
    let b = render(&faint, 2, 1, &lifted, None)[0];
    assert!(b > a, "{b} > {a}");
}

#[test]
fn settings_that_draw_nothing_meaningful_are_refused() {
    let with = |change: fn(&mut RenderOptions)| {
        let mut options = RenderOptions::default();
        change(&mut options);
        options.validate()
    };
    assert_eq!(with(|_| ()), Ok(()));
    assert_eq!(with(|o| o.gamma = 0.0), Err(RenderOptionsError::BadGamma(0.0)));
    assert!(matches!(with(|o| o.gamma = f64::NAN), Err(RenderOptionsError::BadGamma(_))));
    assert_eq!(with(|o| o.clip = Clip::OutlierMass(-2.0)), Err(RenderOptionsError::BadClip(-2.0)));
    assert_eq!(with(|o| o.overlay = Some(1.5)), Err(RenderOptionsError::BadOverlay(1.5)));
    assert_eq!(with(|o| o.overlay = Some(0.5)), Ok(()));
}
