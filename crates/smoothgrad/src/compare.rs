//! How closely two maps agree: the measures the tests and the benchmark check results by.

/// max |ours − reference| / max |reference|: for exact computations.
pub fn max_relative_error(ours: &[f32], reference: &[f32]) -> f32 {
    let largest = reference.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    ours.iter().zip(reference).fold(0.0f32, |m, (a, b)| m.max((a - b).abs())) / largest
}

/// Pearson correlation: for maps of noisy inputs, where a ReLU input within rounding of zero can
/// be gated differently by two backends and change a patch of one sample's gradient.
pub fn correlation(ours: &[f32], reference: &[f32]) -> f64 {
    let mean = |values: &[f32]| values.iter().map(|&v| f64::from(v)).sum::<f64>() / values.len() as f64;
    let (mean_ours, mean_reference) = (mean(ours), mean(reference));
    let (mut cross, mut square_ours, mut square_reference) = (0.0, 0.0, 0.0);
    for (&a, &b) in ours.iter().zip(reference) {
        let (a, b) = (f64::from(a) - mean_ours, f64::from(b) - mean_reference);
        cross += a * b;
        square_ours += a * a;
        square_reference += b * b;
    }
    cross / (square_ours * square_reference).sqrt()
}

/// |‖ours‖ / ‖reference‖ − 1|: the scale, which correlation ignores.
pub fn norm_ratio_error(ours: &[f32], reference: &[f32]) -> f64 {
    let norm = |values: &[f32]| values.iter().map(|&v| f64::from(v).powi(2)).sum::<f64>().sqrt();
    (norm(ours) / norm(reference) - 1.0).abs()
}
