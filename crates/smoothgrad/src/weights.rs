//! Loading torchvision/timm ResNet checkpoints (safetensors, and `.pth` natively).

use std::sync::Arc;

use burn::store::burn_pack::Tensor as PackTensor;
use burn::store::{
    ApplyResult, FloatCastAdapter, ModuleAdapter, ModuleSnapshot, PyTorchToBurnAdapter, bridge,
};
use burn::tensor::{BoolStore, DType, Shape, TensorData};
use safetensors::tensor::Metadata;
use safetensors::{Dtype, SafeTensors};

use crate::resnet::{BlockKind, ResNet, ResNetConfig};

/// Why a checkpoint could not be loaded into a model.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum WeightsError {
    /// The bytes are no checkpoint this loader reads.
    #[error("not a model checkpoint: {0}. Expected a .safetensors file (or a torchvision .pth)")]
    NotACheckpoint(String),
    /// The file ends before the data its header announces.
    #[error(
        "the checkpoint is truncated: {len} bytes of the {expected} its header announces. \
         Download it again"
    )]
    Truncated {
        /// Bytes received.
        len: usize,
        /// Bytes the header announces.
        expected: usize,
    },
    /// The file goes on after the data its header announces: something was appended to it.
    #[error(
        "the checkpoint has {} bytes more than the {expected} its header announces (something \
         was appended to it). Download it again",
        len - expected
    )]
    TrailingBytes {
        /// Bytes received.
        len: usize,
        /// Bytes the header announces.
        expected: usize,
    },
    /// The checkpoint is for another network.
    #[error(
        "the checkpoint is for a different architecture: {} expected tensors missing (first: {}), \
         {} unexpected tensors (first: {})",
        missing.len(), preview(missing), unexpected.len(), preview(unexpected)
    )]
    WrongArchitecture {
        /// Tensors the model needs that the checkpoint lacks.
        missing: Vec<String>,
        /// Tensors in the checkpoint that the model does not have.
        unexpected: Vec<String>,
    },
    /// A tensor has the right name but the wrong shape.
    #[error("tensor '{tensor}' has shape {found:?} in the checkpoint, the model expects {expected:?}")]
    ShapeMismatch {
        /// Its torchvision name.
        tensor: String,
        /// Shape in the model.
        expected: Vec<usize>,
        /// Shape in the checkpoint.
        found: Vec<usize>,
    },
    /// Tensor names or shapes that describe a network too large, or empty, to build.
    #[error("the checkpoint describes a ResNet this tool will not build: {0}")]
    Implausible(String),
    /// A `.pth` file where only safetensors can be read (wasm has no files to hand the reader).
    #[error(
        "this is a PyTorch .pth checkpoint, which can only be read natively; convert it to \
         .safetensors or use the Hugging Face hub's timm/resnet50.tv_in1k safetensors"
    )]
    PthUnsupported,
    /// Anything else the reader reported.
    #[error("could not read the checkpoint: {0}")]
    Unreadable(String),
}

fn preview(names: &[String]) -> String {
    const SHOWN: usize = 5;
    match names.len() {
        0 => "none".into(),
        n if n <= SHOWN => names.join(", "),
        n => format!("{}, … and {} more", names[..SHOWN].join(", "), n - SHOWN),
    }
}

/// torchvision's `downsample.0`/`downsample.1` become this crate's `downsample.conv`/`.bn`.
const RENAMED: [(&str, &str); 2] = [(".downsample.0.", ".downsample.conv."), (".downsample.1.", ".downsample.bn.")];

/// A checkpoint's tensor name as this crate's modules call it ([`RENAMED`]).
///
/// By plain replacement, not burn-store's `KeyRemapper`: its regular expressions brought the
/// `regex` crates into the wasm, and the linker dropped them and burn-store's path filter once
/// they were gone, 18 % of the CPU module.
fn module_name(name: &str) -> String {
    RENAMED.iter().fold(name.to_owned(), |name, (from, to)| name.replace(from, to))
}

/// Linear weights transposed, f16/bf16 widened to f32.
fn adapter() -> impl ModuleAdapter + 'static {
    PyTorchToBurnAdapter.chain(FloatCastAdapter::to(DType::F32))
}

const ZIP_MAGIC: &[u8] = b"PK\x03\x04";
/// A safetensors file begins with its header's length, in this many bytes.
const HEADER_LENGTH_BYTES: usize = 8;

/// Loads a checkpoint held in memory into `model`, whose configuration must match it.
///
/// Safetensors everywhere; a `.pth` (a ZIP) natively through a temporary file.
pub fn load_checkpoint_bytes(mut model: ResNet, bytes: Vec<u8>) -> Result<ResNet, WeightsError> {
    if bytes.starts_with(ZIP_MAGIC) {
        return load_pth_bytes(model, &bytes);
    }
    let result = model.apply(safetensors_tensors(bytes)?, None, Some(Box::new(adapter())), true);
    checked(model, result)
}

/// The checkpoint's tensors, each copied out of `bytes` when the model takes it.
///
/// Not burn-store's `SafetensorsStore`: its 0.22.1 parses the whole header again for every
/// tensor it reads (320 times for ResNet-50) and copies every tensor twice (out of the file, then
/// again to align it), most of a load's time. Here the header is parsed once for all of them and
/// an f32 tensor copied once.
fn safetensors_tensors(bytes: Vec<u8>) -> Result<Vec<PackTensor>, WeightsError> {
    let (header_len, metadata) = safetensors_header(&bytes)?;
    let data_start = HEADER_LENGTH_BYTES + header_len;
    let bytes = Arc::new(bytes);
    metadata
        .offset_keys()
        .into_iter()
        .map(|name| {
            let info = metadata.info(&name).expect("a name the header lists");
            let dtype = burn_dtype(info.dtype)
                .ok_or_else(|| WeightsError::Unreadable(format!("tensor '{name}' has an unsupported type, {:?}", info.dtype)))?;
            let shape = Shape::from(info.shape.clone());
            let (from, to) = info.data_offsets;
            let (bytes, data_shape) = (Arc::clone(&bytes), shape.clone());
            Ok(bridge::deferred(module_name(&name), dtype, shape, None, move || {
                Ok(tensor_data(&bytes[data_start + from..data_start + to], data_shape.clone(), dtype))
            }))
        })
        .collect()
}

/// `raw`, little-endian as safetensors stores it, as tensor data: f32 in one copy, already
/// aligned for its type (`TensorData::from_bytes_vec` copies a byte vector twice).
fn tensor_data(raw: &[u8], shape: Shape, dtype: DType) -> TensorData {
    match dtype {
        DType::F32 => TensorData::new(
            raw.chunks_exact(4).map(|value| f32::from_le_bytes(value.try_into().expect("4 bytes"))).collect::<Vec<f32>>(),
            shape,
        ),
        _ => TensorData::from_bytes_vec(raw.to_vec(), shape, dtype),
    }
}

/// The types `SafetensorsStore` reads, so that a checkpoint's extra tensors are reported as
/// unexpected, as before, rather than refused for their type.
fn burn_dtype(dtype: Dtype) -> Option<DType> {
    Some(match dtype {
        Dtype::F64 => DType::F64,
        Dtype::F32 => DType::F32,
        Dtype::F16 => DType::F16,
        Dtype::BF16 => DType::BF16,
        Dtype::I64 => DType::I64,
        Dtype::I32 => DType::I32,
        Dtype::I16 => DType::I16,
        Dtype::I8 => DType::I8,
        Dtype::U64 => DType::U64,
        Dtype::U32 => DType::U32,
        Dtype::U8 => DType::U8,
        Dtype::BOOL => DType::Bool(BoolStore::Native),
        _ => return None,
    })
}

/// Loads a checkpoint file (`.safetensors` or `.pth`).
#[cfg(not(target_family = "wasm"))]
pub fn load_checkpoint_file(
    model: ResNet,
    path: impl AsRef<std::path::Path>,
) -> Result<ResNet, WeightsError> {
    let bytes = std::fs::read(path.as_ref()).map_err(|error| {
        WeightsError::Unreadable(format!("{}: {error}", path.as_ref().display()))
    })?;
    load_checkpoint_bytes(model, bytes)
}

/// The ResNet a safetensors checkpoint holds — blocks per stage, block kind, stem width and
/// classes — read from its tensor names and shapes, so a file can be loaded without being told
/// what it is. Loading it then checks every tensor.
pub fn checkpoint_config(bytes: &[u8]) -> Result<ResNetConfig, WeightsError> {
    if bytes.starts_with(ZIP_MAGIC) {
        return Err(WeightsError::PthUnsupported);
    }
    let (_, metadata) = safetensors_header(bytes)?;
    let tensors = metadata.tensors();
    let first_dim = |name: &str| tensors.get(name).and_then(|info| info.shape.first().copied());
    let mut layers = [0usize; 4];
    for name in tensors.keys() {
        let mut parts = name.split('.');
        let stage = parts.next().and_then(|part| part.strip_prefix("layer")?.parse::<usize>().ok());
        let block = parts.next().and_then(|part| part.parse::<usize>().ok());
        if let (Some(stage @ 1..=4), Some(block)) = (stage, block) {
            layers[stage - 1] = layers[stage - 1].max(block + 1);
        }
    }
    match (first_dim("conv1.weight"), first_dim("fc.weight")) {
        (Some(base_width), Some(num_classes)) if layers.iter().all(|&blocks| blocks > 0) => {
            check_plausible(layers, base_width, num_classes, bytes.len())?;
            let block = if tensors.contains_key("layer1.0.conv3.weight") {
                BlockKind::Bottleneck
            } else {
                BlockKind::Basic
            };
            Ok(ResNetConfig::new(layers, block)
                .with_base_width(base_width)
                .with_num_classes(num_classes))
        }
        _ => {
            let mut unexpected: Vec<String> = tensors.into_keys().collect();
            unexpected.sort();
            Err(WeightsError::WrongArchitecture {
                missing: ["conv1.weight", "layer1.0.conv1.weight", "fc.weight"]
                    .into_iter()
                    .filter(|name| !unexpected.iter().any(|found| found == name))
                    .map(String::from)
                    .collect(),
                unexpected,
            })
        }
    }
}

/// The most blocks a stage may have: torchvision's deepest ResNet (152) has 36, timm's 200 has 48.
const MAX_BLOCKS_PER_STAGE: usize = 64;
/// The widest stem accepted: torchvision's is 64, wide variants stay far below this.
const MAX_BASE_WIDTH: usize = 1024;

/// The fewest weights a ResNet of this shape has: each block's 3×3 convolution at its stage's
/// width, and the classifier on the narrowest final width (a basic block's).
fn min_weights(layers: [usize; 4], base_width: usize, num_classes: usize) -> u64 {
    let blocks = layers.iter().enumerate().map(|(stage, &blocks)| {
        let planes = (base_width as u64) << stage;
        (blocks as u64).saturating_mul(9 * planes * planes)
    });
    let classifier = (8 * base_width as u64).saturating_mul(num_classes as u64);
    blocks.fold(classifier, u64::saturating_add)
}

/// Refuses, before anything is allocated, a configuration a crafted or mangled file could ask
/// for: a block index of 10⁸ would otherwise build 10⁸ blocks, and names alone (empty tensors)
/// could ask for a network of gigabytes. A real checkpoint holds every weight, in two bytes at
/// least (f16), so what is built stays within a few times the file's size.
fn check_plausible(layers: [usize; 4], base_width: usize, num_classes: usize, file_len: usize) -> Result<(), WeightsError> {
    let implausible = |what: String| Err(WeightsError::Implausible(what));
    if let Some(stage) = layers.iter().position(|&blocks| blocks > MAX_BLOCKS_PER_STAGE) {
        return implausible(format!(
            "layer{} has {} blocks (at most {MAX_BLOCKS_PER_STAGE})",
            stage + 1,
            layers[stage]
        ));
    }
    if !(1..=MAX_BASE_WIDTH).contains(&base_width) {
        return implausible(format!("conv1 has {base_width} output channels (1 to {MAX_BASE_WIDTH})"));
    }
    if num_classes == 0 {
        return implausible("fc has no classes".into());
    }
    let weights = min_weights(layers, base_width, num_classes);
    if (file_len as u64) < weights.saturating_mul(2) {
        return implausible(format!("its tensor names describe at least {weights} weights, more than its {file_len} bytes hold"));
    }
    Ok(())
}

/// The safetensors header `bytes` begins with: its length, and what it says of each tensor.
/// Errors say whether the file is cut off or has bytes appended, which safetensors does not.
fn safetensors_header(bytes: &[u8]) -> Result<(usize, Metadata), WeightsError> {
    use safetensors::SafeTensorError;
    match SafeTensors::read_metadata(bytes) {
        Ok(header) => Ok(header),
        Err(SafeTensorError::MetadataIncompleteBuffer) => {
            let (len, expected) = (bytes.len(), announced_len(bytes));
            Err(match expected {
                Some(expected) if len > expected => WeightsError::TrailingBytes { len, expected },
                Some(expected) => WeightsError::Truncated { len, expected },
                None => WeightsError::NotACheckpoint(SafeTensorError::MetadataIncompleteBuffer.to_string()),
            })
        }
        Err(error) => Err(WeightsError::NotACheckpoint(format!(
            "no valid safetensors header ({error})"
        ))),
    }
}

/// The size of the safetensors file `bytes` begins: the header's length (8 bytes), the header,
/// and the data its tensors' offsets reach. safetensors reports a size that differs from it, too
/// short or too long, as one error.
fn announced_len(bytes: &[u8]) -> Option<usize> {
    let header_len = u64::from_le_bytes(bytes.get(..HEADER_LENGTH_BYTES)?.try_into().ok()?);
    let header_end = HEADER_LENGTH_BYTES.checked_add(usize::try_from(header_len).ok()?)?;
    let metadata: Metadata = serde_json::from_slice(bytes.get(HEADER_LENGTH_BYTES..header_end)?).ok()?;
    header_end.checked_add(metadata.data_len())
}

#[cfg(all(feature = "pytorch", not(target_family = "wasm")))]
fn load_pth_bytes(mut model: ResNet, bytes: &[u8]) -> Result<ResNet, WeightsError> {
    use burn::store::{KeyRemapper, PytorchStore};
    let unreadable = |error: std::io::Error| WeightsError::Unreadable(error.to_string());
    // The PyTorch reader needs a file it can seek in.
    let mut file = tempfile::NamedTempFile::new().map_err(unreadable)?;
    std::io::Write::write_all(&mut file, bytes).map_err(unreadable)?;
    // The reader renames through burn-store's KeyRemapper (regular expressions) only.
    let remapper = RENAMED.iter().try_fold(KeyRemapper::new(), |remapper, (from, to)| {
        remapper.add_pattern(from.replace('.', r"\."), *to)
    });
    let mut store = PytorchStore::from_file(file.path())
        .remap(remapper.expect("static patterns are valid"))
        .skip_enum_variants(true)
        .allow_partial(true)
        .validate(false);
    let result = model.load_from(&mut store).map_err(|error| WeightsError::Unreadable(error.to_string()))?;
    checked(model, result)
}

#[cfg(not(all(feature = "pytorch", not(target_family = "wasm"))))]
fn load_pth_bytes(_model: ResNet, _bytes: &[u8]) -> Result<ResNet, WeightsError> {
    Err(WeightsError::PthUnsupported)
}

/// torchvision checkpoints carry a BatchNorm step counter the model has no use for.
fn is_ignored(name: &str) -> bool {
    name.ends_with("num_batches_tracked")
}

/// `model`, if the checkpoint's tensors applied to it fitted it exactly.
fn checked(model: ResNet, result: ApplyResult) -> Result<ResNet, WeightsError> {
    let unexpected: Vec<String> =
        result.unused.into_iter().filter(|name| !is_ignored(name)).collect();
    if !result.missing.is_empty() || !unexpected.is_empty() {
        return Err(WeightsError::WrongArchitecture {
            missing: result.missing.into_iter().map(|(path, _)| path).collect(),
            unexpected,
        });
    }
    match result.errors.into_iter().next() {
        None => Ok(model),
        Some(burn::store::ApplyError::ShapeMismatch { path, expected, found }) => {
            Err(WeightsError::ShapeMismatch {
                tensor: path,
                expected: expected.to_vec(),
                found: found.to_vec(),
            })
        }
        Some(other) => Err(WeightsError::Unreadable(other.to_string())),
    }
}
