//! Which logit each image is explained for.

use burn::tensor::{Device, Int, Tensor, TensorData};

/// Why a target could not be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TargetError {
    /// A class index the classifier does not have.
    #[error("class {class} is out of range: the model has {num_classes} classes (0–{})", num_classes - 1)]
    OutOfRange {
        /// The index asked for.
        class: usize,
        /// The classifier's number of classes.
        num_classes: usize,
    },
}

/// One target class per image, held on the device as a one-hot mask `[batch, classes]` so that
/// choosing the clean image's top-1 needs no read back to the host.
#[derive(Clone, Debug)]
pub struct Targets {
    mask: Tensor<2>,
}

impl Targets {
    /// The given class for each image.
    pub fn classes(
        classes: &[usize],
        num_classes: usize,
        device: &Device,
    ) -> Result<Self, TargetError> {
        if let Some(&class) = classes.iter().find(|&&class| class >= num_classes) {
            return Err(TargetError::OutOfRange { class, num_classes });
        }
        let indices: Vec<i64> = classes.iter().map(|&class| class as i64).collect();
        let indices =
            Tensor::<1, Int>::from_data(TensorData::new(indices, [classes.len()]), device);
        Ok(Self { mask: one_hot(indices, num_classes) })
    }

    /// Each image's highest-scoring class.
    pub fn top1(logits: Tensor<2>) -> Self {
        let logits = logits.detach().without_autodiff();
        let [_, num_classes] = logits.dims();
        let best = logits.argmax(1).squeeze_dim::<1>(1);
        Self { mask: one_hot(best, num_classes) }
    }

    /// The class indices, `[batch]`, on the device (read them back to show them).
    pub fn indices(&self) -> Tensor<1, Int> {
        self.mask.clone().argmax(1).squeeze_dim(1)
    }

    /// Images it holds a target for.
    pub fn images(&self) -> usize {
        self.mask.dims()[0]
    }

    /// The target of image `index` alone.
    pub fn select(&self, index: usize) -> Self {
        Self { mask: self.mask.clone().narrow(0, index, 1) }
    }

    /// A single image's target repeated for `times` copies of that image.
    pub fn repeat(&self, times: usize) -> Self {
        Self { mask: self.mask.clone().repeat_dim(0, times) }
    }

    /// Sum over images of each image's target logit: its gradient is every image's own.
    pub fn score(&self, logits: Tensor<2>) -> Tensor<1> {
        (logits * self.mask.clone()).sum()
    }
}

/// `[batch, classes]` with a 1 at each image's class.
///
/// Built by comparison rather than `Tensor::one_hot`, whose index check reads the indices back
/// synchronously, which wasm cannot do.
fn one_hot(indices: Tensor<1, Int>, num_classes: usize) -> Tensor<2> {
    let [batch] = indices.dims();
    let device = indices.device();
    let classes = Tensor::<1, Int>::arange(0..num_classes as i64, &device)
        .reshape([1, num_classes])
        .expand([batch, num_classes]);
    classes.equal(indices.reshape([batch, 1]).expand([batch, num_classes])).float()
}
