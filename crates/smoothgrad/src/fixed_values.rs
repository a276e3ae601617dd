//! Test inputs: a fixed sequence, so that a comparison never depends on a generator's state.

/// `count` values in [-1, 1], a different sequence for each `seed`.
pub fn fixed_values(count: usize, seed: u64) -> Vec<f32> {
    (0..count as u64)
        .map(|i| ((i.wrapping_mul(2654435761).wrapping_add(seed * 40503) % 2001) as f32 - 1000.0) / 1000.0)
        .collect()
}
