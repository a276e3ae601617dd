//! Comparisons with the PyTorch/Captum fixtures (`scripts/make-fixtures.sh`), shared by the
//! native tests and the wasm/WebGPU tests. Every read is async, as wasm requires.

#![allow(dead_code)]

use smoothgrad::burn::tensor::{Device, Tensor, TensorData};
use smoothgrad::{
    Attribution, ConvLowering, Method, MethodSet, RecordedNoise, ResNet, ResNetConfig, SharedForward, SmoothGradOptions, SmoothGradRun, Smoothing,
    Targets,
    load_checkpoint_bytes,
};

/// Prints a measured figure: to stdout natively, to the browser console (which the wasm test
/// runner shows with `--nocapture`) in wasm.
macro_rules! report {
    ($($arg:tt)*) => {{
        #[cfg(target_family = "wasm")]
        wasm_bindgen_test::console_log!($($arg)*);
        #[cfg(not(target_family = "wasm"))]
        println!($($arg)*);
    }};
}
#[allow(unused_imports)] // only the wasm tests use it by path
pub(crate) use report;

/// The narrow torchvision-layout ResNet-50 (base width 8, 10 classes).
pub const MODEL: &[u8] = include_bytes!("../../../../tests/fixtures/narrow_resnet50.safetensors");
/// The same weights in half precision.
pub const MODEL_F16: &[u8] =
    include_bytes!("../../../../tests/fixtures/narrow_resnet50_f16.safetensors");
/// The same weights in bfloat16.
pub const MODEL_BF16: &[u8] =
    include_bytes!("../../../../tests/fixtures/narrow_resnet50_bf16.safetensors");
/// A narrow ResNet-18.
pub const MODEL_RESNET18: &[u8] =
    include_bytes!("../../../../tests/fixtures/narrow_resnet18.safetensors");
/// Inputs and Captum's outputs for them.
pub const REFERENCE: &[u8] = include_bytes!("../../../../tests/fixtures/reference.safetensors");

/// The fixture model's configuration.
pub fn narrow_resnet50() -> ResNetConfig {
    ResNetConfig::resnet50(10).with_base_width(8)
}

/// A reference tensor as host data.
pub fn reference(name: &str) -> TensorData {
    let file = safetensors::SafeTensors::deserialize(REFERENCE).expect("reference fixture parses");
    let view = file.tensor(name).unwrap_or_else(|_| panic!("no '{name}' in the reference"));
    let shape = view.shape().to_vec();
    match view.dtype() {
        safetensors::Dtype::F32 => {
            let values: Vec<f32> = view
                .data()
                .chunks_exact(4)
                .map(|bytes| f32::from_le_bytes(bytes.try_into().unwrap()))
                .collect();
            TensorData::new(values, shape)
        }
        safetensors::Dtype::I64 => {
            let values: Vec<i64> = view
                .data()
                .chunks_exact(8)
                .map(|bytes| i64::from_le_bytes(bytes.try_into().unwrap()))
                .collect();
            TensorData::new(values, shape)
        }
        other => panic!("unexpected dtype {other:?} for '{name}'"),
    }
}

/// A reference float tensor on `device`.
pub fn reference_tensor<const D: usize>(name: &str, device: &Device) -> Tensor<D> {
    Tensor::from_data(reference(name), device)
}

/// Loads `bytes` into the narrow ResNet-50 on `device`.
pub fn load(config: &ResNetConfig, bytes: &[u8], device: &Device) -> ResNet {
    load_checkpoint_bytes(config.init(device), bytes.to_vec()).expect("fixture checkpoint loads")
}

/// `max |ours − reference| / max |reference|`, asserted ≤ `tolerance` (a bare `f32` bounds
/// only it), and the correlation asserted ≥ the tolerance's; returns the former.
pub async fn assert_matches<const D: usize>(
    what: &str,
    ours: Tensor<D>,
    reference: TensorData,
    tolerance: impl Into<Tolerance>,
) -> f32 {
    let tolerance = tolerance.into();
    let ours = ours.into_data_async().await.expect("read back");
    assert_eq!(ours.shape(), reference.shape(), "{what}: shape");
    let ours = ours.try_to_vec::<f32>().unwrap();
    let expected = reference.try_to_vec::<f32>().unwrap();
    let scale = expected.iter().fold(0.0f32, |max, value| max.max(value.abs()));
    let relative = smoothgrad::compare::max_relative_error(&ours, &expected);
    let correlation = smoothgrad::compare::correlation(&ours, &expected);
    report!("{what}: max|ours − reference| / max|reference| = {relative:.3e} (scale {scale:.3e}), correlation {correlation:.6}");
    assert!(relative.is_finite() && relative <= tolerance.relative, "{what}: relative error {relative:e} > {:e}", tolerance.relative);
    assert!(correlation >= tolerance.correlation, "{what}: correlation {correlation} < {}", tolerance.correlation);
    relative
}

/// The bound for fp32.
pub const TOLERANCE: f32 = 1e-4;

/// How close a map must be to its reference.
#[derive(Clone, Copy, Debug)]
pub struct Tolerance {
    /// Bound on `max |ours − reference| / max |reference|`.
    pub relative: f32,
    /// Floor on the correlation with the reference.
    pub correlation: f64,
}

impl From<f32> for Tolerance {
    fn from(relative: f32) -> Self {
        Self { relative, correlation: -1.0 }
    }
}

/// The error stated for half precision (`Precision::Half`, README): maps correlate ≥ 0.97 with
/// f32's, and no value is off by more than 30 % of the map's largest. Measured on the fixtures
/// with burn's CPU backend in f16: 0.987–0.992 and 7–21 % against Captum.
pub const HALF_TOLERANCE: Tolerance = Tolerance { relative: 0.3, correlation: 0.97 };

/// Reference target classes.
pub fn reference_targets(device: &Device) -> Targets {
    Targets::classes(&reference_classes(), 10, device).unwrap()
}

/// Reference target classes as indices.
fn reference_classes() -> Vec<usize> {
    reference("target").try_to_vec::<i64>().unwrap().iter().map(|&c| c as usize).collect()
}

/// Logits of the fixture inputs.
pub async fn check_logits(bytes: &[u8], name: &str, device: &Device) -> f32 {
    let model = load(&narrow_resnet50(), bytes, device);
    let logits = model.forward(reference_tensor("input", device));
    assert_matches(name, logits, reference(name), TOLERANCE).await
}

/// ResNet-18 logits (the BasicBlock path).
pub async fn check_resnet18(device: &Device) -> f32 {
    let config = ResNetConfig::resnet18(10).with_base_width(8);
    let model = load(&config, MODEL_RESNET18, device);
    let logits = model.forward(reference_tensor("input", device));
    assert_matches("resnet18_logits", logits, reference("resnet18_logits"), TOLERANCE).await
}

/// The clean top-1 chosen on the device equals PyTorch's argmax.
pub async fn check_top1(device: &Device) {
    let model = load(&narrow_resnet50(), MODEL, device);
    let targets = Targets::top1(model.forward(reference_tensor("input", device)));
    let ours: TensorData = targets.indices().into_data_async().await.unwrap();
    let expected = reference("target");
    let as_i64 = |data: TensorData| -> Vec<i64> {
        data.convert::<i64>().try_to_vec::<i64>().unwrap()
    };
    assert_eq!(as_i64(ours), as_i64(expected));
}

/// A method's top-1 maps from one call: the logits, the classes chosen from them and the maps
/// for those classes, each against PyTorch/Captum.
pub async fn check_top1_maps(method: &impl Attribution, name: &str, device: &Device) {
    let model = load(&narrow_resnet50(), MODEL, device);
    let top1 = method.attribute_top1(&model, reference_tensor("input", device));
    assert_matches(&format!("{name}: logits"), top1.logits, reference("logits"), TOLERANCE).await;
    let classes: TensorData = top1.targets.indices().into_data_async().await.unwrap();
    let classes = classes.convert::<i64>().try_to_vec::<i64>().unwrap();
    assert_eq!(classes, reference("target").try_to_vec::<i64>().unwrap(), "{name}: top-1 classes");
    assert_matches(&format!("{name}: top-1 maps"), top1.maps, reference(name), TOLERANCE).await;
}

/// One attribution method on both fixture inputs.
pub async fn check_method(method: &impl Attribution, name: &str, device: &Device) -> f32 {
    check_method_in_copies(method, name, 1, device).await
}

/// One attribution method on a batch of `copies` copies of both fixture inputs (batch size
/// changes the kernels a backend picks).
pub async fn check_method_in_copies(
    method: &impl Attribution,
    name: &str,
    copies: usize,
    device: &Device,
) -> f32 {
    check_method_lowered(method, name, copies, ConvLowering::default(), device).await
}

/// The same with the network's convolutions computed as `lowering` says.
pub async fn check_method_lowered(
    method: &impl Attribution,
    name: &str,
    copies: usize,
    lowering: ConvLowering,
    device: &Device,
) -> f32 {
    let model = load(&narrow_resnet50(), MODEL, device).with_conv_lowering(lowering);
    check_model_method(&model, method, name, copies, TOLERANCE, device).await
}

/// One attribution method of `model` (the fixture weights) on `copies` copies of both fixture
/// inputs, within `tolerance` of Captum's.
pub async fn check_model_method(
    model: &ResNet,
    method: &impl Attribution,
    name: &str,
    copies: usize,
    tolerance: impl Into<Tolerance>,
    device: &Device,
) -> f32 {
    let inputs: Tensor<4> = reference_tensor("input", device);
    let targets = Targets::classes(&reference_classes().repeat(copies), 10, device).unwrap();
    let maps = method.attribute(model, inputs.repeat_dim(0, copies), &targets);
    let what = format!("{name} ×{copies} ({:?}, {:?})", model.conv_lowering, model.precision());
    assert_matches(&what, maps, repeated(reference(name), copies), tolerance).await
}

/// The methods named by `names` (the references' names) as one [`MethodSet`] of `model` on `copies`
/// copies of both fixture inputs: each method's slice of the set's maps within [`TOLERANCE`] of
/// Captum's. Returns the largest difference, relative to the map's largest value, between a
/// method's slice and its maps computed alone.
pub async fn check_method_set(model: &ResNet, names: &[&str], copies: usize, device: &Device) -> f32 {
    let methods: Vec<Method> = names.iter().map(|name| name.replace('_', "-").parse().unwrap()).collect();
    let set = MethodSet::new(methods.clone()).unwrap();
    let inputs: Tensor<4> = reference_tensor("input", device).repeat_dim(0, copies);
    let targets = Targets::classes(&reference_classes().repeat(copies), 10, device).unwrap();
    let maps = set.attribute(model, inputs.clone(), &targets);
    let mut from_alone = 0.0f32;
    for (index, (method, name)) in methods.iter().zip(names).enumerate() {
        let slice = maps.clone().narrow(1, 3 * index, 3);
        let what = format!("{name} ×{copies} in the set {names:?} ({:?})", model.conv_lowering);
        assert_matches(&what, slice.clone(), repeated(reference(name), copies), TOLERANCE).await;
        let error = difference(slice, method.attribute(model, inputs.clone(), &targets)).await;
        report!("{what}: max|set − alone| / max|alone| = {error:.3e}");
        from_alone = from_alone.max(error);
    }
    from_alone
}

/// What a page asks of the image it shows, a call at a time, through one [`SharedForward`]:
/// the classes (untracked, recording), Guided Backprop's maps and Gradient's top-1 maps
/// (replaying), then after `forget` Input×Gradient's top-1 maps (tracked, recording) and the
/// classes again (replaying). Each against PyTorch/Captum; returns the largest difference from
/// the same call without a shared pass.
pub async fn check_shared_forward(model: &ResNet, device: &Device) -> f32 {
    let input: Tensor<4> = reference_tensor("input", device);
    let targets = reference_targets(device);
    let shared = SharedForward::new(model.clone(), input.clone());
    let what = |name: &str| format!("{name} from a shared forward pass ({:?})", model.conv_lowering);
    let mut from_alone = Vec::new();
    let mut check = async |name: &str, ours: Tensor<4>, alone: Tensor<4>| {
        assert_matches(&what(name), ours.clone(), reference(name), TOLERANCE).await;
        from_alone.push(difference(ours, alone).await);
    };
    let logits = shared.logits();
    assert_matches(&what("logits"), logits.clone(), reference("logits"), TOLERANCE).await;
    let logits_from_alone = difference(logits, model.forward(input.clone())).await;
    let guided = Method::GuidedBackprop;
    check("guided_backprop", shared.attribute(&guided, &targets), guided.attribute(model, input.clone(), &targets)).await;
    let gradient = Method::Gradient;
    check("gradient", shared.attribute_top1(&gradient).maps, gradient.attribute_top1(model, input.clone()).maps).await;
    shared.forget();
    let times_input = Method::InputXGradient;
    check("input_x_gradient", shared.attribute_top1(&times_input).maps, times_input.attribute(model, input.clone(), &targets)).await;
    let replayed_logits = difference(shared.logits(), model.forward(input)).await;
    let error = from_alone.into_iter().chain([logits_from_alone, replayed_logits]).fold(0.0, f32::max);
    report!("{}: max|shared − alone| / max|alone| = {error:.3e}", what("every map and the logits"));
    error
}

/// `max |a − b| / max |b|`.
async fn difference<const D: usize>(a: Tensor<D>, b: Tensor<D>) -> f32 {
    let [a, b] = [a.into_data_async().await.unwrap(), b.into_data_async().await.unwrap()];
    smoothgrad::compare::max_relative_error(&a.try_to_vec::<f32>().unwrap(), &b.try_to_vec::<f32>().unwrap())
}

/// `data` stacked `copies` times along its first dimension.
fn repeated(data: TensorData, copies: usize) -> TensorData {
    let mut shape = data.shape().to_vec();
    shape[0] *= copies;
    TensorData::new(data.try_to_vec::<f32>().unwrap().repeat(copies), shape)
}

/// SmoothGrad of `method` over the recorded noise, for every smoothing variant and both inputs.
pub async fn check_smoothgrad(
    method: &(impl Attribution + Clone),
    name: &str,
    micro_batch: usize,
    device: &Device,
) -> Vec<(String, f32)> {
    let model = load(&narrow_resnet50(), MODEL, device);
    check_model_smoothgrad(&model, method, &[name], micro_batch, TOLERANCE, device).await
}

/// The same for `model` (the fixture weights), within `tolerance`; `names` are the references of
/// `method`'s maps, in order (one, or a [`MethodSet`]'s).
pub async fn check_model_smoothgrad(
    model: &ResNet,
    method: &(impl Attribution + Clone),
    names: &[&str],
    micro_batch: usize,
    tolerance: impl Into<Tolerance> + Copy,
    device: &Device,
) -> Vec<(String, f32)> {
    let inputs: Tensor<4> = reference_tensor("input", device);
    let noise: Tensor<5> = reference_tensor("smoothgrad_noise", device);
    let targets = reference_targets(device);
    let mut errors = Vec::new();
    for image in 0..inputs.dims()[0] {
        let recorded = RecordedNoise::new(noise.clone().narrow(0, image, 1).squeeze_dim(0));
        let options = SmoothGradOptions { samples: recorded.samples(), micro_batch, ..Default::default() };
        let input = inputs.clone().narrow(0, image, 1);
        let run = SmoothGradRun::new(model.clone(), method.clone(), input, targets.select(image), recorded, options)
            .unwrap();
        let sums = run.run(|_, _| {});
        for (smoothing, suffix) in
            [(Smoothing::Mean, "mean"), (Smoothing::MeanOfSquares, "sq"), (Smoothing::Variance, "var")]
        {
            for (index, name) in names.iter().enumerate() {
                let key = format!("smoothgrad_{name}_{suffix}");
                let expected = slice_first(reference(&key), image);
                let map = sums.map(smoothing).narrow(0, 3 * index, 3);
                let error = assert_matches(&format!("{key}[{image}]"), map, expected, tolerance).await;
                errors.push((format!("{key}[{image}]"), error));
            }
        }
    }
    errors
}

/// Row `index` of a reference batch.
fn slice_first(data: TensorData, index: usize) -> TensorData {
    let shape = data.shape().to_vec();
    let row: usize = shape[1..].iter().product();
    let values = data.try_to_vec::<f32>().unwrap()[index * row..(index + 1) * row].to_vec();
    TensorData::new(values, shape[1..].to_vec())
}

