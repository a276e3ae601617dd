//! The float type the network computes in: single precision, or half where the device has it.

use std::str::FromStr;

use burn::module::{Module, ModuleMapper, Param};
use burn::tensor::{DType, Device, Tensor};

use crate::names::{UnknownName, by_name};

/// The float type of the network's weights and activations. Inputs, gradients and SmoothGrad's
/// sums stay f32 whatever it is: the network casts on the way in and out.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Precision {
    /// f32, as PyTorch and Captum compute: the reference.
    #[default]
    Single,
    /// f16 (WebGPU's `shader-f16`): half the memory per image and per weight. Matrix products
    /// still sum in f32 (cubek's accumulator for f16 operands), and batch norms derive their
    /// scale in f32, as a running variance can underflow f16; activations and their gradients
    /// are rounded to 11 significant bits at every layer.
    Half,
}

impl Precision {
    /// The tensor element type it computes in.
    pub fn dtype(self) -> DType {
        match self {
            Self::Single => DType::F32,
            Self::Half => DType::F16,
        }
    }

    /// Its name for benchmarks and the JS API: `"f32"` or `"f16"`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Single => "f32",
            Self::Half => "f16",
        }
    }

    /// `Ok` where `device` computes in it (f16 on WebGPU needs the adapter's `shader-f16`),
    /// else why not.
    pub fn check_on(self, device: &Device) -> Result<(), UnsupportedPrecision> {
        if device.supports_dtype(self.dtype()) {
            Ok(())
        } else {
            Err(UnsupportedPrecision {
                precision: self.name(),
                device: format!("{device:?}"),
            })
        }
    }
}

impl FromStr for Precision {
    type Err = UnknownName;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        let table = [Self::Single, Self::Half].map(|precision| (precision.name(), precision));
        by_name("precision", name, &table)
    }
}

/// A precision the device cannot compute in.
#[derive(Debug, thiserror::Error, PartialEq)]
#[error(
    "{precision} is not available on this device ({device}): half precision needs a GPU whose \
     WebGPU adapter offers shader-f16"
)]
pub struct UnsupportedPrecision {
    /// The precision asked for.
    pub precision: &'static str,
    /// The device, as burn describes it.
    pub device: String,
}

/// `module`'s float parameters cast to `precision`, except those of the modules named in
/// `kept_single` (their struct names), which stay f32.
pub(crate) fn cast_parameters<M: Module>(
    module: M,
    precision: Precision,
    kept_single: &'static [&'static str],
) -> M {
    module.map(&mut CastParameters {
        dtype: precision.dtype(),
        kept_single,
        depth_kept: 0,
    })
}

struct CastParameters {
    dtype: DType,
    kept_single: &'static [&'static str],
    /// How many of the modules being visited are in `kept_single` (they could nest).
    depth_kept: usize,
}

impl CastParameters {
    fn is_kept(&self, container_type: &str) -> bool {
        container_type
            .strip_prefix("Struct:")
            .is_some_and(|name| self.kept_single.contains(&name))
    }
}

impl ModuleMapper for CastParameters {
    fn enter_module(&mut self, _name: &str, container_type: &str) {
        self.depth_kept += usize::from(self.is_kept(container_type));
    }

    fn exit_module(&mut self, _name: &str, container_type: &str) {
        self.depth_kept -= usize::from(self.is_kept(container_type));
    }

    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        if self.depth_kept > 0 {
            return param;
        }
        let dtype = self.dtype;
        param.map(|tensor| tensor.cast(dtype))
    }
}
