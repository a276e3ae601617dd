//! Every way a checkpoint can be wrong gets its own error, never a panic.

mod common;

use common::*;
use smoothgrad::burn::tensor::Device;
use smoothgrad::{ResNetConfig, WeightsError, checkpoint_config, load_checkpoint_bytes};

fn device() -> Device {
    Device::flex()
}

fn load_into(config: ResNetConfig, bytes: &[u8]) -> Result<(), WeightsError> {
    load_checkpoint_bytes(config.init(&device()), bytes.to_vec()).map(|_| ())
}

#[test]
fn truncated_checkpoint_is_reported_as_truncated() {
    let half = &MODEL[..MODEL.len() / 2];
    let error = load_into(narrow_resnet50(), half).unwrap_err();
    assert_eq!(error, WeightsError::Truncated { len: half.len(), expected: MODEL.len() });
    assert!(error.to_string().contains(&format!("{} bytes of the {}", half.len(), MODEL.len())), "{error}");
}

#[test]
fn bytes_after_the_data_are_not_called_truncated() {
    let appended = [MODEL, b"extra".as_slice()].concat();
    let error = load_into(narrow_resnet50(), &appended).unwrap_err();
    assert_eq!(error, WeightsError::TrailingBytes { len: MODEL.len() + 5, expected: MODEL.len() });
    assert!(error.to_string().contains("5 bytes more than"), "{error}");
}

#[test]
fn checkpoint_cut_inside_its_header_is_not_a_checkpoint() {
    let error = load_into(narrow_resnet50(), &MODEL[..20]).unwrap_err();
    assert!(matches!(error, WeightsError::NotACheckpoint(_)), "{error}");
}

#[test]
fn an_image_is_not_a_checkpoint() {
    let png = include_bytes!("../../../tests/fixtures/chelsea.png");
    let error = load_into(narrow_resnet50(), png).unwrap_err();
    assert!(matches!(error, WeightsError::NotACheckpoint(_)), "{error}");
    assert!(error.to_string().contains(".safetensors"), "{error}");
}

#[test]
fn resnet18_weights_in_a_resnet50_list_missing_and_unexpected_tensors() {
    let error = load_into(narrow_resnet50(), MODEL_RESNET18).unwrap_err();
    let WeightsError::WrongArchitecture { missing, unexpected } = &error else {
        panic!("expected WrongArchitecture, got {error}");
    };
    assert!(missing.iter().any(|name| name == "layer1.0.conv3.weight"), "{missing:?}");
    assert!(unexpected.is_empty() || unexpected.iter().all(|name| !name.contains("num_batches")));
    assert!(error.to_string().contains(&format!("{} expected tensors missing", missing.len())), "{error}");
}

#[test]
fn resnet50_weights_in_a_resnet18_report_unexpected_tensors() {
    let config = ResNetConfig::resnet18(10).with_base_width(8);
    let error = load_into(config, MODEL).unwrap_err();
    let WeightsError::WrongArchitecture { unexpected, .. } = &error else {
        panic!("expected WrongArchitecture, got {error}");
    };
    assert!(unexpected.iter().any(|name| name == "layer1.0.conv3.weight"), "{unexpected:?}");
}

#[test]
fn wrong_class_count_names_the_tensor_and_both_shapes() {
    let config = narrow_resnet50().with_num_classes(7);
    let error = load_into(config, MODEL).unwrap_err();
    let WeightsError::ShapeMismatch { tensor, expected, found } = &error else {
        panic!("expected ShapeMismatch, got {error}");
    };
    assert!(tensor.starts_with("fc."), "{tensor}");
    assert_ne!(expected, found);
    let message = error.to_string();
    assert!(message.contains(tensor.as_str()) && message.contains("10"), "{message}");
}

#[test]
fn wrong_width_is_a_shape_mismatch() {
    let config = narrow_resnet50().with_base_width(16);
    let error = load_into(config, MODEL).unwrap_err();
    assert!(matches!(error, WeightsError::ShapeMismatch { .. }), "{error}");
}

#[cfg(feature = "pytorch")]
#[test]
fn truncated_pth_is_reported_with_the_readers_reason() {
    let pth = include_bytes!("../../../tests/fixtures/narrow_resnet50.pth");
    let error = load_into(narrow_resnet50(), &pth[..pth.len() / 2]).unwrap_err();
    let WeightsError::Unreadable(reason) = &error else {
        panic!("expected Unreadable, got {error}");
    };
    println!("truncated .pth: {error}");
    assert!(reason.to_lowercase().contains("zip"), "{reason}");
}

#[test]
fn checkpoint_config_reads_depth_width_and_classes_from_the_file() {
    let config = checkpoint_config(MODEL).unwrap();
    assert_eq!(config, narrow_resnet50());
    assert_eq!(config.architecture_name(), "resnet50");
    let config18 = checkpoint_config(MODEL_RESNET18).unwrap();
    assert_eq!(config18, ResNetConfig::resnet18(10).with_base_width(8));
    assert_eq!(config18.architecture_name(), "resnet18");
    load_into(config, MODEL).expect("the inferred configuration loads the checkpoint");
}

#[test]
fn checkpoint_config_refuses_what_is_no_resnet() {
    let png = include_bytes!("../../../tests/fixtures/chelsea.png");
    assert!(matches!(checkpoint_config(png), Err(WeightsError::NotACheckpoint(_))));
    let half = &MODEL[..MODEL.len() / 2];
    assert_eq!(checkpoint_config(half), Err(WeightsError::Truncated { len: half.len(), expected: MODEL.len() }));
    let other = safetensors_with(&[("encoder.weight", vec![4, 4])]);
    let error = checkpoint_config(&other).unwrap_err();
    let WeightsError::WrongArchitecture { missing, unexpected } = &error else {
        panic!("expected WrongArchitecture, got {error}");
    };
    assert!(missing.contains(&"conv1.weight".to_string()), "{missing:?}");
    assert_eq!(unexpected, &["encoder.weight".to_string()]);
}

#[test]
fn checkpoint_config_refuses_a_network_too_deep_too_big_or_empty_before_building_it() {
    // Names, and `f32s` of data standing for the weights a real checkpoint holds.
    let resnet = |width: usize, last_block: &str, classes: usize, f32s: usize| {
        safetensors_with(&[
            ("conv1.weight", vec![width, 3, 1, 1]),
            (last_block, vec![1]),
            ("layer2.0.conv1.weight", vec![1]),
            ("layer3.0.conv1.weight", vec![1]),
            ("layer4.0.conv1.weight", vec![1]),
            ("fc.weight", vec![classes, 1]),
            ("data", vec![f32s]),
        ])
    };
    let deep = checkpoint_config(&resnet(8, "layer1.99999999.conv1.weight", 10, 0)).unwrap_err();
    assert_eq!(deep, WeightsError::Implausible("layer1 has 100000000 blocks (at most 64)".into()));
    let empty = checkpoint_config(&resnet(8, "layer1.0.conv1.weight", 0, 0)).unwrap_err();
    assert_eq!(empty, WeightsError::Implausible("fc has no classes".into()));
    // 64 blocks and width 1024 pass each check alone; together they are 1.4 × 10⁹ weights.
    let huge = checkpoint_config(&resnet(1024, "layer1.63.conv1.weight", 10, 0)).unwrap_err();
    assert!(matches!(&huge, WeightsError::Implausible(why) if why.starts_with("its tensor names describe at least 1396785152 weights")), "{huge}");
    // [36, 1, 1, 1] blocks of width 8: 9 × (36 × 8² + 16² + 32² + 64²) + 64 × 10 = 69 760 weights, 139 520 bytes in f16.
    let short = checkpoint_config(&resnet(8, "layer1.35.conv1.weight", 10, 30_000)).unwrap_err();
    assert!(matches!(&short, WeightsError::Implausible(why) if why.contains("at least 69760 weights")), "{short}");
    let config = checkpoint_config(&resnet(8, "layer1.35.conv1.weight", 10, 35_000)).unwrap();
    assert_eq!(config.layers, [36, 1, 1, 1]);
}

/// A safetensors file of zero-filled f32 tensors.
fn safetensors_with(tensors: &[(&str, Vec<usize>)]) -> Vec<u8> {
    let data: Vec<Vec<u8>> =
        tensors.iter().map(|(_, shape)| vec![0u8; 4 * shape.iter().product::<usize>()]).collect();
    let views: Vec<(&str, safetensors::tensor::TensorView)> = tensors
        .iter()
        .zip(&data)
        .map(|((name, shape), bytes)| {
            (*name, safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape.clone(), bytes).unwrap())
        })
        .collect();
    safetensors::serialize(views, None).unwrap()
}
