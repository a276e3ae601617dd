//! Test inputs: a fixed sequence, so that a comparison never depends on a generator's state.

/// `count` values in [-1, 1], a different sequence for each `seed`.
pub fn fixed_values(count: usize, seed: u64) -> Vec<f32> {
    (0..count as u64)
        .map(|i| ((i.wrapping_mul(2654435761).wrapping_add(seed * 40503) % 2001) as f32 - 1000.0) / 1000.0)
        .collect()
}

/// A tensor of `shape` on `device` holding [`fixed_values`].
pub fn fixed_tensor<const D: usize>(shape: [usize; D], seed: u64, device: &burn::tensor::Device) -> burn::tensor::Tensor<D> {
    let values = burn::tensor::TensorData::new(fixed_values(shape.iter().product(), seed), shape);
    burn::tensor::Tensor::from_data(values, device)
}
