//! The `smoothgrad` crate for the browser: a wasm-bindgen layer with no maths in it.
//!
//! One [`Explainer`] owns a device (WebGPU, or burn's CPU backend where there is none), a
//! model, an image and at most one SmoothGrad run. Methods that only queue device work return
//! at once; those that read results back return a `Promise`, because every read in a browser
//! is asynchronous. Errors are JS `Error`s whose `name` says what kind of mistake it was.
//!
//! The features `webgpu` and `cpu` choose the backends a module carries (both by default, as the
//! wasm tests run). The site ships two modules, each with one backend (`crates/smoothgrad-site`,
//! `scripts/build-site.sh`): the CPU one, a fifth of the size (a quarter gzipped), is for the
//! machines without a hardware GPU.

use std::sync::Mutex;

use js_sys::{Array, Float32Array, Object, Promise, Reflect};
use serde::Deserialize;
use smoothgrad::burn::tensor::activation::softmax;
use smoothgrad::burn::tensor::{Device, Tensor, TensorData};
use smoothgrad::image::RgbImage;
use smoothgrad::{
    Attribution, ConvLowering, IntegratedGradients, Method, MethodSet, PortableNoise, Precision, Preprocess, RenderOptions, ResNet, ResNetConfig, SharedForward,
    SmoothGradOptions, SmoothGradRun, SmoothGradSums, Targets, checkpoint_config, load_checkpoint_bytes, preprocess::normalise,
};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::future_to_promise;

/// The kinds of error thrown to JS (`error.name`).
#[derive(Clone, Copy)]
enum ErrorKind {
    Weights,
    Image,
    Options,
    Target,
    State,
    Backend,
    Device,
    DeviceLost,
}

impl ErrorKind {
    fn name(self) -> &'static str {
        match self {
            Self::Weights => "WeightsError",
            Self::Image => "ImageError",
            Self::Options => "OptionsError",
            Self::Target => "TargetError",
            Self::State => "StateError",
            Self::Backend => "BackendError",
            Self::Device => "DeviceError",
            Self::DeviceLost => "DeviceLost",
        }
    }

    /// A JS `Error` of this kind.
    fn error(self, message: impl std::fmt::Display) -> JsValue {
        let error = js_sys::Error::new(&message.to_string());
        error.set_name(self.name());
        error.into()
    }
}

static PANIC_MESSAGE: Mutex<Option<String>> = Mutex::new(None);

/// After a trap (`RuntimeError: unreachable`), the panic that caused it. The instance is not to
/// be used again: start a new worker.
#[wasm_bindgen(js_name = takePanicMessage)]
pub fn take_panic_message() -> Option<String> {
    PANIC_MESSAGE.lock().ok()?.take()
}

fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let message = info.to_string();
        web_sys::console::error_1(&message.clone().into());
        if let Ok(mut slot) = PANIC_MESSAGE.lock() {
            *slot = Some(message);
        }
    }));
}

/// The image as the model sees it.
struct Prepared {
    crop: RgbImage,
    input: Tensor<4>,
}

/// `explain`'s options, as JS spells them.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AttributeOptions {
    method: String,
    target: usize,
    #[serde(default)]
    ig_steps: Option<usize>,
}

/// `integratedGradientsShare`'s options, as JS spells them.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ShareOptions {
    target: usize,
    #[serde(default)]
    ig_steps: Option<usize>,
    step_range: (usize, usize),
}

/// `classify`'s options, as JS spells them.
#[derive(Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ClassifyOptions {
    attribute: Option<String>,
    #[serde(default)]
    ig_steps: Option<usize>,
}

/// A SmoothGrad run's options, as JS spells them; missing ones take the paper's defaults.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RunOptions {
    #[serde(default)]
    method: Option<String>,
    #[serde(default)]
    methods: Option<Vec<String>>,
    target: usize,
    #[serde(default)]
    ig_steps: Option<usize>,
    samples: Option<usize>,
    noise_level: Option<f64>,
    micro_batch: Option<usize>,
    seed: Option<u64>,
    #[serde(default)]
    sample_range: Option<(usize, usize)>,
}

/// How a map is drawn, as JS spells it.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DrawOptions {
    sign: Option<String>,
    clip_percentile: Option<f64>,
    gamma: Option<f64>,
    colormap: Option<String>,
    overlay: Option<f64>,
}

/// Options from JS. serde-wasm-bindgen reads only the fields a struct names, so a misspelt one
/// is never seen here (`deny_unknown_fields` cannot refuse it): `www/api.js` refuses those.
/// A wrong value is named by its option (`samples: invalid type: …`), in JS's words for Rust's
/// number types.
fn options_from<T: for<'de> Deserialize<'de>>(value: JsValue) -> Result<T, JsValue> {
    serde_path_to_error::deserialize(serde_wasm_bindgen::Deserializer::from(value)).map_err(|error| {
        // serde-wasm-bindgen's errors are JS Errors, whose text starts "Error: ".
        let text = error.inner().to_string();
        let text = text.strip_prefix("Error: ").unwrap_or(&text);
        let words = [("usize", "a whole number ≥ 0"), ("u64", "a whole number ≥ 0"), ("f64", "a number")];
        let text = words.iter().fold(text.to_owned(), |text, (rust, js)| {
            text.replace(&format!("expected {rust}"), &format!("expected {js}"))
        });
        match error.path().iter().next() {
            None => ErrorKind::Options.error(text),
            Some(_) => ErrorKind::Options.error(format!("{}: {text}", error.path())),
        }
    })
}

fn parse<T: std::str::FromStr>(name: &str) -> Result<T, JsValue>
where
    T::Err: std::fmt::Display,
{
    name.parse().map_err(|error| ErrorKind::Options.error(error))
}

/// SmoothGrad in the browser: load a model and an image, then classify and explain.
#[wasm_bindgen]
pub struct Explainer {
    device: Device,
    backend: String,
    conv_lowering: ConvLowering,
    precision: Precision,
    model: Option<ResNet>,
    image: Option<Prepared>,
    /// The model over the image, once both are set: the forward pass that the image's classes and
    /// plain maps share.
    forward: Option<SharedForward>,
    run: Option<SmoothGradRun<MethodSet, PortableNoise>>,
}

#[wasm_bindgen]
impl Explainer {
    /// Starts a device: `"webgpu"` or `"cpu"` (burn's CPU backend, compiled into this module),
    /// where the module was built with it (a `BackendError` says so where not). WebGPU can be
    /// started once per worker. `adapter`: on WebGPU, a description of the adapter
    /// (`GPUAdapter.info`'s vendor, architecture, device…), which decides how convolutions run
    /// fastest; ignored on the CPU.
    pub async fn create(backend: String, adapter: Option<String>) -> Result<Explainer, JsValue> {
        install_panic_hook();
        let (device, conv_lowering) = start_device(&backend, adapter).await?;
        Ok(Self {
            device,
            backend,
            conv_lowering,
            precision: Precision::default(),
            model: None,
            image: None,
            forward: None,
            run: None,
        })
    }

    /// `"webgpu"` or `"cpu"`.
    #[wasm_bindgen(getter)]
    pub fn backend(&self) -> String {
        self.backend.clone()
    }

    /// How the convolutions are computed: `"matrix-products"` or `"direct"` (SwiftShader).
    #[wasm_bindgen(getter, js_name = convLowering)]
    pub fn conv_lowering(&self) -> String {
        self.conv_lowering.name().into()
    }

    /// The float type the network computes in: `"f32"` (the default) or `"f16"`.
    #[wasm_bindgen(getter)]
    pub fn precision(&self) -> String {
        self.precision.name().into()
    }

    /// Makes the weights loaded from now on compute in `"f32"` or `"f16"` (cast once, as they
    /// load). f16 needs a WebGPU adapter with `shader-f16`: elsewhere this throws an
    /// `OptionsError`. Choose before loading weights (a `StateError` after): casting a loaded
    /// model back to f32 would not give its f32 weights back.
    #[wasm_bindgen(js_name = setPrecision)]
    pub fn set_precision(&mut self, name: &str) -> Result<(), JsValue> {
        let precision: Precision = parse(name)?;
        precision.check_on(&self.device).map_err(|error| ErrorKind::Options.error(error))?;
        if self.model.is_some() && precision != self.precision {
            return Err(ErrorKind::State.error("choose the precision before loading weights"));
        }
        self.precision = precision;
        Ok(())
    }

    /// Loads a `.safetensors` checkpoint of any torchvision ResNet (its shape is read from the
    /// file); returns `{architecture, numClasses, baseWidth}`.
    #[wasm_bindgen(js_name = loadWeights)]
    pub fn load_weights(&mut self, bytes: Vec<u8>) -> Result<JsValue, JsValue> {
        let weights_error = |error| ErrorKind::Weights.error(error);
        let config = checkpoint_config(&bytes).map_err(weights_error)?;
        let model = load_checkpoint_bytes(config.init(&self.device), bytes).map_err(weights_error)?;
        self.set_model(model, &config)
    }

    /// A ResNet-50 with random weights: its maps mean nothing, but every step can be tried. The
    /// same network on every call with a backend: the workers that share a run, and one that
    /// replaces a crashed worker, hold the network the others do.
    #[wasm_bindgen(js_name = loadRandomWeights)]
    pub fn load_random_weights(&mut self, num_classes: usize) -> Result<JsValue, JsValue> {
        let config = ResNetConfig::resnet50(num_classes);
        self.device.seed(RANDOM_WEIGHTS_SEED);
        self.set_model(config.init(&self.device), &config)
    }

    fn set_model(&mut self, model: ResNet, config: &ResNetConfig) -> Result<JsValue, JsValue> {
        let model = model.with_conv_lowering(self.conv_lowering).with_precision(self.precision);
        self.model = Some(model.map_err(|error| ErrorKind::Options.error(error))?);
        self.share_forward();
        self.run = None;
        let info = Object::new();
        set(&info, "architecture", &config.architecture_name().into())?;
        set(&info, "numClasses", &config.num_classes.into())?;
        set(&info, "baseWidth", &config.base_width.into())?;
        Ok(info.into())
    }

    /// Decodes an image file (PNG, JPEG, WebP, GIF, BMP) and makes it the input; returns the
    /// RGBA pixels of the 224×224 crop the model sees.
    #[wasm_bindgen(js_name = setImage)]
    pub fn set_image(&mut self, bytes: &[u8]) -> Result<Vec<u8>, JsValue> {
        let crop = Preprocess::default().image(bytes).map_err(|error| ErrorKind::Image.error(error))?;
        Ok(self.set_crop(crop))
    }

    /// The same from RGBA pixels (a canvas's `ImageData.data`).
    #[wasm_bindgen(js_name = setImageRgba)]
    pub fn set_image_rgba(&mut self, rgba: Vec<u8>, width: u32, height: u32) -> Result<Vec<u8>, JsValue> {
        let crop = Preprocess::default()
            .image_from_rgba(rgba, width, height)
            .map_err(|error| ErrorKind::Image.error(error))?;
        Ok(self.set_crop(crop))
    }

    fn set_crop(&mut self, crop: RgbImage) -> Vec<u8> {
        let input = normalise(&crop, &self.device);
        let rgba = smoothgrad::image::DynamicImage::ImageRgb8(crop.clone()).into_rgba8().into_raw();
        self.image = Some(Prepared { crop, input });
        self.share_forward();
        self.run = None;
        rgba
    }

    /// `{logits, probabilities}` of the image, as `Float32Array`s. With `{attribute: method}`
    /// (and `igSteps`) also `target`, the top-1 class as the device chose it, and `map`, the
    /// method's map for it (as [`Explainer::attribute`] gives it): Gradient, Guided Backprop and
    /// Input × Gradient take both from one forward pass, so the pair costs what the map costs.
    ///
    /// The image's classes and its maps (but Integrated Gradients') share one forward pass
    /// between calls ([`SharedForward`]): the first records its convolutions, and the others
    /// (another method, another class, classifying again) replay them, until new weights load or
    /// a run starts.
    pub fn classify(&self, options: JsValue) -> Result<Promise, JsValue> {
        let options: ClassifyOptions =
            if options.is_undefined() || options.is_null() { ClassifyOptions::default() } else { options_from(options)? };
        let (logits, top1) = match options.attribute {
            Some(name) => {
                let top1 = self.forward()?.attribute_top1(&method(&name, options.ig_steps)?);
                (top1.logits.clone(), Some(top1))
            }
            None => (self.forward()?.logits(), None),
        };
        let probabilities = softmax(logits.clone(), 1);
        Ok(future_to_promise(async move {
            let result = Object::new();
            set(&result, "logits", &read(logits).await?.into())?;
            set(&result, "probabilities", &read(probabilities).await?.into())?;
            if let Some(top1) = top1 {
                let target = read(top1.targets.indices().float()).await?.get_index(0);
                set(&result, "target", &target.into())?;
                set(&result, "map", &read(top1.maps).await?.into())?;
            }
            Ok(result.into())
        }))
    }

    /// Runs a narrow ResNet-50 (random weights, a quarter of the channels) forward and
    /// backward once on a blank crop and drops it; the model, image and run are untouched.
    /// Browsers compile wasm code with their optimising compiler only once it runs: on the CPU
    /// backend that makes a visitor's first map about half a second slower than the next. This
    /// pass compiles the same code for a fraction of the work, so the page runs it while the
    /// weights download. Resolves when the pass is done.
    #[wasm_bindgen(js_name = warmUp)]
    pub fn warm_up(&self) -> Promise {
        let model = ResNetConfig::resnet50(WARM_UP_CLASSES)
            .with_base_width(WARM_UP_BASE_WIDTH)
            .init(&self.device)
            .with_conv_lowering(self.conv_lowering);
        let side = Preprocess::default().crop as usize;
        // The crop's size, so convolutions take the same code paths as a real image's.
        let blank = Tensor::<4>::zeros([1, 3, side, side], &self.device);
        let maps = Method::Gradient.attribute_top1(&model, blank).maps;
        future_to_promise(async move {
            read(maps).await?;
            Ok(JsValue::UNDEFINED)
        })
    }

    /// The method's map of the clean image for `target`: `Float32Array` `[3, 224, 224]`. It shares
    /// the image's forward pass with the other maps and the classes ([`Explainer::classify`]).
    pub fn attribute(&self, options: JsValue) -> Result<Promise, JsValue> {
        let options: AttributeOptions = options_from(options)?;
        let method = method(&options.method, options.ig_steps)?;
        let target = self.target(options.target)?;
        let map = self.forward()?.attribute(&method, &target);
        Ok(future_to_promise(async move { Ok(read(map).await?.into()) }))
    }

    /// Integrated Gradients' part of the map of the clean image for `target` that the path
    /// points `stepRange: [start, end]` of its `igSteps` contribute (`{target, igSteps,
    /// stepRange}`): `Float32Array` `[3, 224, 224]`. Workers sharing the steps each compute a
    /// share; [`Explainer::integrated_gradients_from_shares`] makes the map of them all.
    /// `earlier`, when given, is the share of other steps that the result adds to: a worker
    /// that takes its steps a pass at a time (to report progress) carries one running share
    /// instead of holding a share per pass.
    #[wasm_bindgen(js_name = integratedGradientsShare)]
    pub fn integrated_gradients_share(&self, options: JsValue, earlier: JsValue) -> Result<Promise, JsValue> {
        let options: ShareOptions = options_from(options)?;
        let target = self.target(options.target)?;
        let (start, end) = options.step_range;
        let earlier = if earlier.is_undefined() || earlier.is_null() { None } else { Some(self.share_values(earlier)?) };
        let share = integrated_gradients(options.ig_steps)?
            .share(self.model()?, self.input()?, &target, start..end)
            .map_err(|error| ErrorKind::Options.error(error))?;
        // In the order IntegratedGradients::share sums its passes: a share carried a pass
        // (`batch_size` steps) at a time is then the share of the whole range, to the bit.
        let share = match earlier {
            Some(earlier) => earlier + share,
            None => share,
        };
        Ok(future_to_promise(async move { Ok(read(share).await?.into()) }))
    }

    /// Integrated Gradients' map of the clean image from the
    /// [shares](Explainer::integrated_gradients_share) of all its steps, `Float32Array`s
    /// `[3, 224, 224]` (this worker's own among them, in any order). The steps are in the shares
    /// already: making the map takes only the baseline, zero here as for every map.
    #[wasm_bindgen(js_name = integratedGradientsFromShares)]
    pub fn integrated_gradients_from_shares(&self, shares: Array) -> Result<Promise, JsValue> {
        let mut shares = shares.iter().map(|share| self.share_values(share));
        let own = shares.next().ok_or_else(|| self.bad_share())??;
        let others = shares.collect::<Result<Vec<_>, _>>()?;
        let map = IntegratedGradients::default().map_from_shares(self.input()?, own, others);
        Ok(future_to_promise(async move { Ok(read(map).await?.into()) }))
    }

    /// Prepares a SmoothGrad run (`{method, target, samples, noiseLevel, microBatch, seed,
    /// igSteps, sampleRange}`); the noise comes from `seed` alone, so a run is the same on every
    /// backend. `sampleRange: [start, end]` runs only those samples of the `samples`: workers
    /// sharing one run each take a range and [`Explainer::smoothed`] merges their sums.
    /// `methods: [name, …]` instead of `method` runs them together over the same noisy copies,
    /// sharing what their passes have in common ([`MethodSet`]); the maps and sums then hold one
    /// `[3, 224, 224]` map per method, one after another.
    pub fn start(&mut self, options: JsValue) -> Result<(), JsValue> {
        let options: RunOptions = options_from(options)?;
        let defaults = SmoothGradOptions::default();
        let settings = SmoothGradOptions {
            samples: options.samples.unwrap_or(defaults.samples),
            noise_level: options.noise_level.unwrap_or(defaults.noise_level),
            micro_batch: options.micro_batch.unwrap_or(defaults.micro_batch),
            seed: options.seed.unwrap_or(defaults.seed),
        };
        let methods = run_methods(options.method, options.methods, options.ig_steps)?;
        let target = self.target(options.target)?;
        let noise = PortableNoise::new(settings.seed, &self.device);
        let options_error = |error| ErrorKind::Options.error(error);
        let mut run = SmoothGradRun::new(self.model()?.clone(), methods, self.input()?, target, noise, settings)
            .map_err(options_error)?;
        if let Some((start, end)) = options.sample_range {
            run = run.with_sample_range(start..end).map_err(options_error)?;
        }
        // The run needs the memory more than the plain maps need the time.
        if let Some(forward) = &self.forward {
            forward.forget();
        }
        self.run = Some(run);
        Ok(())
    }

    /// Queues the next micro-batch (on the CPU backend, computes it); returns `{done, total}`.
    pub fn step(&mut self) -> Result<JsValue, JsValue> {
        let progress = self.run.as_mut().ok_or_else(no_run)?.step();
        let result = Object::new();
        set(&result, "done", &progress.done.into())?;
        set(&result, "total", &progress.total.into())?;
        Ok(result.into())
    }

    /// The run's map so far for a smoothing (`"mean"`, `"mean-of-squares"`, `"variance"`,
    /// `"abs-mean"`): `Float32Array` `[3, 224, 224]` per method. Awaiting it waits for the queued
    /// steps.
    /// `others`, when given, are the [sums](Explainer::sums) of other workers' shares of the
    /// same run, merged in first.
    pub fn smoothed(&self, smoothing: JsValue, others: Option<Array>) -> Result<Promise, JsValue> {
        // Not `&str`: wasm-bindgen's glue passes any other value as a string of no length, and
        // the module traps.
        let smoothing = smoothing
            .as_string()
            .ok_or_else(|| ErrorKind::Options.error(format!("a smoothing is a name, not a {}", smoothing.js_typeof().as_string().unwrap_or_default())))?;
        let mut sums = self.run()?.sums().clone();
        for other in others.iter().flat_map(Array::iter) {
            sums = sums.merge(self.sums_from_js(&other)?);
        }
        let map = sums.map(parse(&smoothing)?);
        Ok(future_to_promise(async move { Ok(read(map).await?.into()) }))
    }

    /// This run's own sums so far, `{count, sum, sumOfSquares}` (`Float32Array`s
    /// `[3, 224, 224]` per method), for another worker's [`Explainer::smoothed`].
    pub fn sums(&self) -> Result<Promise, JsValue> {
        let sums = self.run()?.sums().clone();
        Ok(future_to_promise(async move {
            let result = Object::new();
            set(&result, "count", &sums.count.into())?;
            set(&result, "sum", &read(sums.sum).await?.into())?;
            set(&result, "sumOfSquares", &read(sums.sum_of_squares).await?.into())?;
            Ok(result.into())
        }))
    }

    /// RGBA pixels of a `[3, 224, 224]` map (`{sign, clipPercentile, gamma, colormap, overlay}`),
    /// over the input crop when `overlay` > 0.
    pub fn render(&self, map: &[f32], options: JsValue) -> Result<Vec<u8>, JsValue> {
        let draw: DrawOptions = options_from(options)?;
        let defaults = RenderOptions::default();
        let options = RenderOptions {
            sign: draw.sign.as_deref().map(parse).transpose()?.unwrap_or(defaults.sign),
            clip: draw.clip_percentile.map(smoothgrad::Clip::Percentile).unwrap_or(defaults.clip),
            gamma: draw.gamma.unwrap_or(defaults.gamma),
            colormap: draw.colormap.as_deref().map(parse).transpose()?.unwrap_or(defaults.colormap),
            overlay: draw.overlay.filter(|opacity| *opacity > 0.0),
        };
        options.validate().map_err(|error| ErrorKind::Options.error(error))?;
        let image = self.image.as_ref().ok_or_else(no_image)?;
        let (width, height) = (image.crop.width() as usize, image.crop.height() as usize);
        if map.len() != 3 * width * height {
            return Err(ErrorKind::Options.error(format!(
                "a map of {} values cannot be drawn at {width}×{height} (3 channels need {})",
                map.len(),
                3 * width * height
            )));
        }
        Ok(smoothgrad::render(map, width, height, &options, options.overlay.map(|_| &image.crop)))
    }

    fn run(&self) -> Result<&SmoothGradRun<MethodSet, PortableNoise>, JsValue> {
        self.run.as_ref().ok_or_else(no_run)
    }

    /// `{count, sum, sumOfSquares}` from JS, checked against this run's shape.
    fn sums_from_js(&self, value: &JsValue) -> Result<SmoothGradSums, JsValue> {
        let shape = self.run()?.sums().sum.dims();
        let length: usize = shape.iter().product();
        let bad = || {
            ErrorKind::Options.error(format!(
                "a share's sums must be {{count, sum, sumOfSquares}} with {length} values each"
            ))
        };
        let field = |key: &str| Reflect::get(value, &key.into()).map_err(|_| bad());
        let values = |key: &str| self.image_values(field(key)?, shape, &bad);
        let count = field("count")?.as_f64().filter(|n| n.fract() == 0.0 && *n >= 0.0).ok_or_else(bad)?;
        Ok(SmoothGradSums { count: count as usize, sum: values("sum")?, sum_of_squares: values("sumOfSquares")? })
    }

    /// An [Integrated Gradients share](Explainer::integrated_gradients_share) from JS.
    fn share_values(&self, value: JsValue) -> Result<Tensor<4>, JsValue> {
        let [_, channels, height, width] = self.input()?.dims();
        self.image_values(value, [1, channels, height, width], &|| self.bad_share())
    }

    fn bad_share(&self) -> JsValue {
        let length = self.input().map_or(0, |input| input.dims().iter().product());
        ErrorKind::Options.error(format!("shares must be Float32Arrays of {length} values, at least one"))
    }

    /// A `Float32Array` from JS as a tensor of `shape` (this image's values); `bad()` otherwise.
    fn image_values<const D: usize>(
        &self,
        value: JsValue,
        shape: [usize; D],
        bad: &impl Fn() -> JsValue,
    ) -> Result<Tensor<D>, JsValue> {
        let array: Float32Array = value.dyn_into().map_err(|_| bad())?;
        if array.length() as usize != shape.iter().product::<usize>() {
            return Err(bad());
        }
        Ok(Tensor::from_data(TensorData::new(array.to_vec(), shape), &self.device))
    }

    fn model(&self) -> Result<&ResNet, JsValue> {
        self.model.as_ref().ok_or_else(|| ErrorKind::State.error("no model: load weights first"))
    }

    fn input(&self) -> Result<Tensor<4>, JsValue> {
        Ok(self.image.as_ref().ok_or_else(no_image)?.input.clone())
    }

    fn forward(&self) -> Result<&SharedForward, JsValue> {
        match &self.forward {
            Some(forward) => Ok(forward),
            None => Err(self.model().err().unwrap_or_else(no_image)),
        }
    }

    /// A new shared forward pass for a new model or image (nothing recorded).
    fn share_forward(&mut self) {
        self.forward = match (&self.model, &self.image) {
            (Some(model), Some(image)) => Some(SharedForward::new(model.clone(), image.input.clone())),
            _ => None,
        };
    }

    fn target(&self, class: usize) -> Result<Targets, JsValue> {
        Targets::classes(&[class], self.model()?.num_classes(), &self.device)
            .map_err(|error| ErrorKind::Target.error(error))
    }
}

#[cfg(not(any(feature = "webgpu", feature = "cpu")))]
compile_error!("build the web crate with a backend: the `webgpu` feature, `cpu`, or both");

/// Seeds the device's generator for [`Explainer::load_random_weights`].
const RANDOM_WEIGHTS_SEED: u64 = 0x5EED;

/// [`Explainer::warm_up`]'s network: ResNet-50's layers at a quarter of the width (a sixteenth of
/// the multiply-adds), a few classes.
const WARM_UP_BASE_WIDTH: usize = 16;
const WARM_UP_CLASSES: usize = 10;

/// The backends the JS API knows, whether or not this module was built with them.
const BACKENDS: [&str; 2] = ["webgpu", "cpu"];

/// The device for `backend`, and how convolutions run fastest on it (`adapter` matters on WebGPU only).
#[cfg_attr(not(feature = "webgpu"), allow(unused_variables))]
async fn start_device(backend: &str, adapter: Option<String>) -> Result<(Device, ConvLowering), JsValue> {
    match backend {
        #[cfg(feature = "webgpu")]
        "webgpu" => {
            let device = Device::wgpu_options()
                .init_async()
                .await
                .map_err(|error| ErrorKind::Backend.error(format!("WebGPU could not be started: {error}")))?;
            Ok((device, ConvLowering::for_adapter(&adapter.unwrap_or_default())))
        }
        #[cfg(feature = "cpu")]
        "cpu" => Ok((Device::flex(), ConvLowering::default())),
        known if BACKENDS.contains(&known) => Err(ErrorKind::Backend.error(format!(
            "this WebAssembly module was built without the {known} backend: load the one built with it"
        ))),
        other => Err(ErrorKind::Options.error(format!("unknown backend '{other}': choose webgpu or cpu"))),
    }
}

fn no_run() -> JsValue {
    ErrorKind::State.error("no SmoothGrad run: call start() first")
}

fn no_image() -> JsValue {
    ErrorKind::State.error("no image: choose an image first")
}

/// A run's methods: `method` or `methods`, one of the two.
fn run_methods(method: Option<String>, methods: Option<Vec<String>>, ig_steps: Option<usize>) -> Result<MethodSet, JsValue> {
    let names = match (method, methods) {
        (Some(name), None) => vec![name],
        (None, Some(names)) => names,
        _ => return Err(ErrorKind::Options.error("a SmoothGrad run takes either `method` or `methods`")),
    };
    let mut methods = Vec::with_capacity(names.len());
    for name in &names {
        if names.iter().filter(|other| *other == name).count() > 1 {
            return Err(ErrorKind::Options.error(format!("`methods` names {name} more than once")));
        }
        methods.push(self::method(name, ig_steps)?);
    }
    MethodSet::new(methods).map_err(|error| ErrorKind::Options.error(error))
}

fn method(name: &str, ig_steps: Option<usize>) -> Result<Method, JsValue> {
    let method: Method = parse(name)?;
    Ok(match ig_steps {
        None => method,
        Some(steps) => method.with_steps(checked_steps(steps)?),
    })
}

/// Integrated Gradients with `igSteps` steps (Captum's defaults otherwise).
fn integrated_gradients(ig_steps: Option<usize>) -> Result<IntegratedGradients, JsValue> {
    let defaults = IntegratedGradients::default();
    Ok(IntegratedGradients { steps: ig_steps.map(checked_steps).transpose()?.unwrap_or(defaults.steps), ..defaults })
}

fn checked_steps(steps: usize) -> Result<std::num::NonZeroUsize, JsValue> {
    std::num::NonZeroUsize::new(steps).filter(|steps| steps.get() <= smoothgrad::MAX_IG_STEPS).ok_or_else(|| {
        ErrorKind::Options.error(format!("Integrated Gradients takes 1 to {} steps (got {steps})", smoothgrad::MAX_IG_STEPS))
    })
}

/// Reads a tensor back into a `Float32Array`. A lost GPU device (CubeCL says "poisoned": every
/// later call on it fails) is a `DeviceLost` error, for the page to start a new worker.
async fn read<const D: usize>(tensor: Tensor<D>) -> Result<Float32Array, JsValue> {
    let data = tensor.into_data_async().await.map_err(|error| match error.is_device_poisoned() {
        true => ErrorKind::DeviceLost.error(loss_cause(error.reason())),
        false => ErrorKind::Device.error(format!("the device failed: {error:?}")),
    })?;
    let values = data.try_to_vec::<f32>().map_err(|error| ErrorKind::Device.error(format!("{error:?}")))?;
    Ok(Float32Array::from(values.as_slice()))
}

/// What the browser said of a lost device ("Destroyed: Device was destroyed."), out of CubeCL's
/// report around it ("The device is poisoned", "Caused by:", a backtrace).
fn loss_cause(reason: &str) -> &str {
    let cause = reason.split_once("Caused by:").map_or(reason, |(_, cause)| cause);
    cause.lines().map(str::trim).find(|line| !line.is_empty()).unwrap_or(reason)
}

fn set(object: &Object, key: &str, value: &JsValue) -> Result<(), JsValue> {
    Reflect::set(object, &key.into(), value).map(|_| ())
}
