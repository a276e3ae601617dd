//! The JS-facing layer in a browser: typed errors, and the same numbers on WebGPU and the CPU.
#![cfg(target_family = "wasm")]

use js_sys::{Array, Float32Array, Object, Promise, Reflect};
use smoothgrad::compare;
use smoothgrad_web::Explainer;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use wasm_bindgen_test::{wasm_bindgen_test, wasm_bindgen_test_configure};

wasm_bindgen_test_configure!(run_in_dedicated_worker);

const WEIGHTS: &[u8] = include_bytes!("../../../tests/fixtures/narrow_resnet50.safetensors");
/// The same weights rounded to half precision (they load as f32).
const WEIGHTS_F16: &[u8] = include_bytes!("../../../tests/fixtures/narrow_resnet50_f16.safetensors");
const IMAGE: &[u8] = include_bytes!("../../../tests/fixtures/chelsea.png");

fn options(json: &str) -> JsValue {
    js_sys::JSON::parse(json).unwrap()
}

/// The error a call threw.
fn error<T>(result: Result<T, JsValue>) -> js_sys::Error {
    result.err().expect("an error").dyn_into::<js_sys::Error>().expect("a JS Error")
}

/// The `name` of the error a call threw.
fn error_name<T>(result: Result<T, JsValue>) -> String {
    String::from(error(result).name())
}

async fn values(promise: Promise) -> Vec<f32> {
    Float32Array::from(JsFuture::from(promise).await.unwrap()).to_vec()
}

/// An explainer with the fixture model and image. WebGPU here is SwiftShader, and the wasm is
/// told so, as the page tells it.
async fn ready(backend: &str) -> Explainer {
    let adapter = (backend == "webgpu").then(|| "google swiftshader".to_string());
    let mut explainer = Explainer::create(backend.into(), adapter).await.unwrap();
    let info = explainer.load_weights(WEIGHTS.to_vec()).unwrap();
    assert_eq!(Reflect::get(&info, &"architecture".into()).unwrap(), "resnet50");
    assert_eq!(Reflect::get(&info, &"numClasses".into()).unwrap(), 10);
    let crop = explainer.set_image(IMAGE).unwrap();
    assert_eq!(crop.len(), 224 * 224 * 4);
    explainer
}

/// SmoothGrad on the fixture model: 3 samples, 2 at a time.
const RUN: &str = r#""method":"gradient","target":3,"samples":3,"microBatch":2,"seed":11"#;

/// Starts a run (`RUN` and `more` options) and steps it to the end; returns the steps taken.
fn run_to_end(explainer: &mut Explainer, more: &str) -> usize {
    explainer.start(options(&format!("{{{RUN}{more}}}"))).unwrap();
    steps_to_end(explainer)
}

/// Steps the started run to its end; returns the steps taken.
fn steps_to_end(explainer: &mut Explainer) -> usize {
    let mut steps = 0;
    loop {
        let progress = explainer.step().unwrap();
        steps += 1;
        if Reflect::get(&progress, &"done".into()).unwrap() == Reflect::get(&progress, &"total".into()).unwrap() {
            return steps;
        }
    }
}

/// SmoothGrad's mean map after running every step.
async fn smoothgrad(explainer: &mut Explainer) -> Vec<f32> {
    assert_eq!(run_to_end(explainer, ""), 2);
    values(explainer.smoothed("mean".into(), None).unwrap()).await
}

#[wasm_bindgen_test]
async fn webgpu_and_cpu_give_the_same_classification_and_smoothgrad_for_a_seed() {
    let mut gpu = ready("webgpu").await;
    let mut cpu = ready("cpu").await;
    assert_eq!(gpu.backend(), "webgpu");
    // SwiftShader has no shader-f16: refused, and the explainer goes on in f32.
    assert_eq!(error_name(gpu.set_precision("f16")), "OptionsError");
    assert_eq!(gpu.precision(), "f32");
    assert_eq!((gpu.conv_lowering(), cpu.conv_lowering()), ("direct".into(), "matrix-products".into()));
    let probabilities = |result: JsValue| Float32Array::from(Reflect::get(&result, &"probabilities".into()).unwrap()).to_vec();
    let on_gpu = probabilities(JsFuture::from(gpu.classify(JsValue::UNDEFINED).unwrap()).await.unwrap());
    let on_cpu = probabilities(JsFuture::from(cpu.classify(JsValue::UNDEFINED).unwrap()).await.unwrap());
    assert_eq!(on_gpu.len(), 10);
    assert!((on_cpu.iter().sum::<f32>() - 1.0).abs() < 1e-5);
    assert!(compare::max_relative_error(&on_gpu, &on_cpu) < 1e-4, "probabilities differ");
    // Not element by element: on noisy inputs a ReLU input within rounding of zero can be gated
    // differently by the two backends' summation orders, which changes a patch of the gradient
    // (measured natively on this model: max error 2e-2, correlation ≥ 0.99989, norms within 5e-4),
    // while SmoothGrad with other noise correlates at ~0.16.
    let (on_gpu, on_cpu) = (smoothgrad(&mut gpu).await, smoothgrad(&mut cpu).await);
    let (correlation, norm_ratio) = (compare::correlation(&on_gpu, &on_cpu), compare::norm_ratio_error(&on_gpu, &on_cpu));
    web_sys::console::log_1(
        &format!("SmoothGrad WebGPU vs CPU, same seed: correlation {correlation}, norm ratio off by {norm_ratio:e}").into(),
    );
    assert!(correlation > 0.999, "SmoothGrad differs between backends: correlation {correlation}");
    assert!(norm_ratio < 1e-2, "SmoothGrad's scale differs between backends: {norm_ratio}");
}

#[wasm_bindgen_test]
async fn classify_brings_the_top1_map_of_the_same_pass_when_asked() {
    let explainer = ready("cpu").await;
    let field = |result: &JsValue, key: &str| Reflect::get(result, &key.into()).unwrap();
    let floats = |result: &JsValue, key: &str| Float32Array::from(field(result, key)).to_vec();
    let plain = JsFuture::from(explainer.classify(JsValue::UNDEFINED).unwrap()).await.unwrap();
    assert!(field(&plain, "map").is_undefined() && field(&plain, "target").is_undefined());
    for method in ["gradient", "guided-backprop", "input-x-gradient", "integrated-gradients"] {
        let asked = options(&format!(r#"{{"attribute":"{method}","igSteps":4}}"#));
        let result = JsFuture::from(explainer.classify(asked).unwrap()).await.unwrap();
        let logits = floats(&result, "logits");
        let top1 = (0..logits.len()).max_by(|&a, &b| logits[a].total_cmp(&logits[b])).unwrap();
        assert_eq!(field(&result, "target").as_f64(), Some(top1 as f64), "{method}");
        let probabilities = floats(&result, "probabilities");
        assert!(compare::max_relative_error(&probabilities, &floats(&plain, "probabilities")) < 1e-5, "{method}");
        let alone = options(&format!(r#"{{"method":"{method}","target":{top1},"igSteps":4}}"#));
        let expected = values(explainer.attribute(alone).unwrap()).await;
        let map = floats(&result, "map");
        assert!(compare::max_relative_error(&map, &expected) < 1e-5, "{method}: the map differs from attribute's");
    }
    for nonsense in [r#"{"attribute":"saliency"}"#, r#"{"attribute":"integrated-gradients","igSteps":0}"#] {
        assert_eq!(error_name(explainer.classify(options(nonsense))), "OptionsError", "{nonsense}");
    }
}

#[wasm_bindgen_test]
async fn an_image_s_calls_share_its_forward_pass_until_new_weights_load() {
    let classify = |explainer: &Explainer| JsFuture::from(explainer.classify(options(r#"{"attribute":"gradient"}"#)).unwrap());
    let map = |explainer: &Explainer, asked: &str| values(explainer.attribute(options(asked)).unwrap());
    let asked = [r#"{"method":"guided-backprop","target":3}"#, r#"{"method":"gradient","target":5}"#];
    // Each map from its own pass: the image set again before each.
    let mut alone = ready("cpu").await;
    let mut expected = Vec::new();
    for asked in asked {
        alone.set_image(IMAGE).unwrap();
        expected.push(map(&alone, asked).await);
    }
    // The page's order: the classes with a map, then other maps. The f16-rounded weights' pass
    // recorded first must not be replayed for the f32 weights loaded after.
    let mut shared = Explainer::create("cpu".into(), None).await.unwrap();
    shared.load_weights(WEIGHTS_F16.to_vec()).unwrap();
    shared.set_image(IMAGE).unwrap();
    classify(&shared).await.unwrap();
    assert_ne!(map(&shared, asked[0]).await, expected[0], "the f16-rounded weights give other maps");
    shared.load_weights(WEIGHTS.to_vec()).unwrap();
    classify(&shared).await.unwrap();
    for (asked, expected) in asked.iter().zip(&expected) {
        assert_eq!(&map(&shared, asked).await, expected, "{asked}: a replayed pass changed the map");
    }
}

#[wasm_bindgen_test]
async fn warming_up_changes_no_model_image_or_run() {
    let bare = Explainer::create("cpu".into(), None).await.unwrap();
    JsFuture::from(bare.warm_up()).await.unwrap();
    assert_eq!(error_name(bare.classify(JsValue::UNDEFINED)), "StateError", "the warm-up left a model behind");

    let mut explainer = ready("cpu").await;
    let gradient = r#"{"method":"gradient","target":3}"#;
    let map = values(explainer.attribute(options(gradient)).unwrap()).await;
    let expected_run = smoothgrad(&mut ready("cpu").await).await;
    explainer.start(options(&format!("{{{RUN}}}"))).unwrap();
    explainer.step().unwrap();
    JsFuture::from(explainer.warm_up()).await.unwrap();
    assert_eq!(values(explainer.attribute(options(gradient)).unwrap()).await, map);
    explainer.step().unwrap();
    assert_eq!(values(explainer.smoothed("mean".into(), None).unwrap()).await, expected_run, "the run was disturbed");
}

#[wasm_bindgen_test]
async fn workers_sharing_a_run_merge_into_the_whole_run() {
    let (mut whole, mut first, mut rest) = (ready("cpu").await, ready("cpu").await, ready("cpu").await);
    let expected = smoothgrad(&mut whole).await;
    assert_eq!(run_to_end(&mut first, r#","sampleRange":[0,1]"#), 1);
    assert_eq!(run_to_end(&mut rest, r#","sampleRange":[1,3]"#), 1);
    let sums = JsFuture::from(first.sums().unwrap()).await.unwrap();
    assert_eq!(Reflect::get(&sums, &"count".into()).unwrap(), 1);
    let merged = values(rest.smoothed("mean".into(), Some(Array::of1(&sums))).unwrap()).await;
    assert!(compare::max_relative_error(&merged, &expected) < 1e-5, "merged shares differ from the whole run");
    let alone = values(rest.smoothed("mean".into(), None).unwrap()).await;
    assert!(compare::max_relative_error(&alone, &expected) > 1e-2, "a share alone is not the whole run");

    let truncated = Object::new();
    Reflect::set(&truncated, &"count".into(), &1.into()).unwrap();
    for key in ["sum", "sumOfSquares"] {
        Reflect::set(&truncated, &key.into(), &Float32Array::new_with_length(10)).unwrap();
    }
    assert_eq!(error_name(rest.smoothed("mean".into(), Some(Array::of1(&truncated)))), "OptionsError");
    // Not a name: refused, where a `&str` parameter took it for an empty string and trapped.
    let not_a_name = error(rest.smoothed(JsValue::from(3), None));
    assert_eq!((String::from(not_a_name.name()), String::from(not_a_name.message())), ("OptionsError".into(), "a smoothing is a name, not a number".into()));
    assert_eq!(error_name(rest.smoothed("median".into(), None)), "OptionsError");
    assert_eq!(error_name(first.start(options(&format!(r#"{{{RUN},"sampleRange":[2,4]}}"#)))), "OptionsError");
}

#[wasm_bindgen_test]
async fn methods_run_together_give_each_method_s_own_run() {
    let mut explainer = ready("cpu").await;
    let run = |methods: &str| options(&format!(r#"{{"methods":{methods},"target":3,"samples":3,"microBatch":2,"seed":11}}"#));
    let mut mean_of = async |methods: &str| {
        explainer.start(run(methods)).unwrap();
        steps_to_end(&mut explainer);
        values(explainer.smoothed("mean".into(), None).unwrap()).await
    };
    let together = mean_of(r#"["guided-backprop","gradient"]"#).await;
    let guided = mean_of(r#"["guided-backprop"]"#).await;
    let gradient = mean_of(r#"["gradient"]"#).await;
    assert_eq!(together.len(), 2 * 3 * 224 * 224);
    // One forward pass shared by both: the same operations on the same values, the same numbers.
    assert_eq!(together, [guided, gradient].concat());

    for (asked, message) in [
        (r#"[]"#, "a set of attribution methods needs at least one method"),
        (r#"["gradient","gradient"]"#, "`methods` names gradient more than once"),
        (r#"["gradient","saliency"]"#, "unknown method 'saliency'"),
    ] {
        let refused = error(explainer.start(run(asked)));
        assert_eq!(String::from(refused.name()), "OptionsError", "{asked}");
        assert!(String::from(refused.message()).starts_with(message), "{asked}: {}", String::from(refused.message()));
    }
    let both = options(r#"{"method":"gradient","methods":["gradient"],"target":3}"#);
    assert_eq!(String::from(error(explainer.start(both)).message()), "a SmoothGrad run takes either `method` or `methods`");
}

#[wasm_bindgen_test]
async fn workers_sharing_integrated_gradients_steps_make_the_whole_map() {
    let (whole, first, rest) = (ready("cpu").await, ready("cpu").await, ready("cpu").await);
    let ig = r#""target":3,"igSteps":7"#;
    let expected = values(whole.attribute(options(&format!(r#"{{"method":"integrated-gradients",{ig}}}"#))).unwrap()).await;
    let share = |explainer: &Explainer, range: &str| {
        explainer.integrated_gradients_share(options(&format!(r#"{{{ig},"stepRange":{range}}}"#)), JsValue::UNDEFINED)
    };
    let (early, late) = (share(&first, "[0,3]").unwrap(), share(&rest, "[3,7]").unwrap());
    let shares = Array::of2(&JsFuture::from(late).await.unwrap(), &JsFuture::from(early).await.unwrap());
    let from_shares = |explainer: &Explainer, shares: &Array| explainer.integrated_gradients_from_shares(shares.clone());
    let merged = values(from_shares(&rest, &shares).unwrap()).await;
    assert!(compare::max_relative_error(&merged, &expected) < 1e-5, "the shares' map differs from the whole one");
    let alone = values(from_shares(&rest, &Array::of1(&shares.get(0))).unwrap()).await;
    assert!(compare::max_relative_error(&alone, &expected) > 1e-2, "a share alone is not the whole map");

    for range in ["[3,3]", "[5,8]"] {
        assert_eq!(error_name(share(&first, range)), "OptionsError", "{range}");
    }
    assert_eq!(error_name(from_shares(&rest, &Array::new())), "OptionsError");
    assert_eq!(error_name(from_shares(&rest, &Array::of1(&Float32Array::new_with_length(10)))), "OptionsError");
}

#[wasm_bindgen_test]
async fn a_share_carried_a_pass_at_a_time_is_the_whole_map_to_the_bit() {
    let explainer = ready("cpu").await;
    // 12 steps: a pass of 10 (IntegratedGradients' batch) and one of 2, as attribute() takes them.
    let ig = r#""target":3,"igSteps":12"#;
    let expected = values(explainer.attribute(options(&format!(r#"{{"method":"integrated-gradients",{ig}}}"#))).unwrap()).await;
    let share = |range: &str, earlier: &JsValue| {
        explainer.integrated_gradients_share(options(&format!(r#"{{{ig},"stepRange":{range}}}"#)), earlier.clone())
    };
    let first = JsFuture::from(share("[0,10]", &JsValue::UNDEFINED).unwrap()).await.unwrap();
    let both = JsFuture::from(share("[10,12]", &first).unwrap()).await.unwrap();
    let map = values(explainer.integrated_gradients_from_shares(Array::of1(&both)).unwrap()).await;
    assert_eq!(map, expected, "carrying the share changed the map");
    let without = values(explainer.integrated_gradients_from_shares(Array::of1(&first)).unwrap()).await;
    assert!(compare::max_relative_error(&without, &expected) > 1e-3, "the first pass alone is not the map");
    let short = Float32Array::new_with_length(10).into();
    assert_eq!(error_name(share("[10,12]", &short)), "OptionsError");
}

#[wasm_bindgen_test]
async fn half_precision_is_chosen_before_the_weights_and_stays_close_to_f32() {
    let mut half = Explainer::create("cpu".into(), None).await.unwrap();
    assert_eq!(error_name(half.set_precision("f64")), "OptionsError");
    half.set_precision("f16").unwrap();
    half.load_weights(WEIGHTS.to_vec()).unwrap();
    half.set_image(IMAGE).unwrap();
    assert_eq!(error_name(half.set_precision("f32")), "StateError");
    assert_eq!(half.precision(), "f16");
    let (on_f16, on_f32) = (smoothgrad(&mut half).await, smoothgrad(&mut ready("cpu").await).await);
    let correlation = compare::correlation(&on_f16, &on_f32);
    web_sys::console::log_1(&format!("SmoothGrad f16 vs f32: correlation {correlation}").into());
    // The README's stated error for f16 (measured here: 0.981), and not f32 itself.
    assert!((0.97..0.999_999).contains(&correlation), "correlation {correlation}");
}

#[wasm_bindgen_test]
async fn every_mistake_is_a_named_error_and_the_explainer_stays_usable() {
    let mut explainer = Explainer::create("cpu".into(), None).await.unwrap();
    assert_eq!(error_name(explainer.classify(JsValue::UNDEFINED)), "StateError");
    assert_eq!(error_name(explainer.load_weights(WEIGHTS[..WEIGHTS.len() / 2].to_vec())), "WeightsError");
    assert_eq!(error_name(explainer.load_weights(IMAGE.to_vec())), "WeightsError");
    assert_eq!(error_name(explainer.set_image(b"not an image")), "ImageError");
    assert_eq!(error_name(explainer.set_image(&IMAGE[..IMAGE.len() / 3])), "ImageError");
    assert_eq!(error_name(explainer.set_image_rgba(vec![0; 7], 2, 2)), "ImageError");
    let mut explainer = ready("cpu").await;
    for (json, kind) in [
        (r#"{"method":"gradient","target":0,"samples":0}"#, "OptionsError"),
        (r#"{"method":"gradient","target":0,"noiseLevel":-1}"#, "OptionsError"),
        (r#"{"method":"gradient","target":0,"samples":-3}"#, "OptionsError"),
        (r#"{"method":"gradient","target":0,"microBatch":0}"#, "OptionsError"),
        (r#"{"method":"saliency","target":0}"#, "OptionsError"),
        (r#"{"method":"integrated-gradients","target":0,"igSteps":0}"#, "OptionsError"),
        (r#"{"method":"integrated-gradients","target":0,"igSteps":100000}"#, "OptionsError"),
        (r#"{"method":"gradient","target":10}"#, "TargetError"),
    ] {
        assert_eq!(error_name(explainer.start(options(json))), kind, "{json}");
    }
    // A value of the wrong type is named by its option, in JS's words.
    let message = String::from(error(explainer.start(options(r#"{"method":"gradient","target":0,"seed":1.5}"#))).message());
    assert_eq!(message, "seed: invalid type: floating point `1.5`, expected a whole number ≥ 0");
    assert_eq!(error_name(explainer.step()), "StateError");
    assert_eq!(error_name(explainer.smoothed("median".into(), None)), "StateError");
    let map = values(explainer.attribute(options(r#"{"method":"guided-backprop","target":2}"#)).unwrap()).await;
    assert_eq!(map.len(), 3 * 224 * 224);
    assert_eq!(error_name(explainer.render(&map, options(r#"{"colormap":"rainbow"}"#))), "OptionsError");
    assert_eq!(error_name(explainer.render(&map[..10], options("{}"))), "OptionsError");
    for nonsense in [r#"{"gamma":0}"#, r#"{"gamma":-1}"#, r#"{"clipPercentile":101}"#, r#"{"overlay":2}"#] {
        assert_eq!(error_name(explainer.render(&map, options(nonsense))), "OptionsError", "{nonsense}");
    }
    let rgba = explainer.render(&map, options(r#"{"sign":"signed","overlay":0.5}"#)).unwrap();
    assert_eq!(rgba.len(), 224 * 224 * 4);
    assert!(rgba.chunks(4).any(|pixel| pixel[..3] != rgba[..3]), "the map draws something");
}
