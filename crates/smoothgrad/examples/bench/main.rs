//! Speed benchmark: ResNet-50 at 224×224, fp32, input gradient of one logit; prints JSON.
//!
//! `cargo run --release --example bench -- [--backend wgpu|flex] [--runs N] [--micro-batches 1,10,25,50]
//! [--conv-lowering matrix-products|channels-last|unfolded|winograd|direct] [--precision f32|f16]
//! [--products cubek|tiled|tiled-v4|tiled[-v4]-large|tall|wide|small]`
//! (`--features autotune` natively lets burn's GPU backend tune its kernels);
//! `… --example bench -- products …` times the matrix products alone (`products.rs`).
//!
//! Each figure is the median of `--runs` timed runs after one warm-up; every run ends with a
//! device sync, so the time is the device's work, not the queueing. Memory is what burn's pools
//! hold after the figure's runs (pools keep their pages until a cleanup, so it is the peak
//! reserved). `scripts/bench.py` runs this next to PyTorch and prints the ratios.

mod products;

use std::time::Instant;

use serde_json::{Value, json};
use smoothgrad::burn::module::Module;
use smoothgrad::burn::tensor::{Device, DeviceKind, Distribution, Tensor};
use smoothgrad::{
    Attribution, compare, ConvLowering, GaussianNoise, Gradient, Method, MethodSet, ResNet, ResNetConfig, SmoothGradOptions, SmoothGradRun,
    Precision, ProductKernels, Smoothing, Targets, UNFOLD_FROM_BATCH, use_product_kernels,
};

/// What to measure, from the command line.
struct Args {
    backend: String,
    runs: usize,
    samples: usize,
    micro_batches: Vec<usize>,
    conv_lowering: ConvLowering,
    precision: Precision,
    products: ProductKernels,
}

impl Args {
    fn parse() -> Self {
        let mut args = Self {
            backend: "wgpu".into(),
            runs: 5,
            samples: 50,
            micro_batches: vec![1, 10, 25, 50],
            conv_lowering: ConvLowering::default(),
            precision: Precision::default(),
            products: ProductKernels::default(),
        };
        for (flag, value) in flags(1) {
            match flag.as_str() {
                "--backend" => args.backend = value,
                "--runs" => args.runs = value.parse().expect("--runs takes a number"),
                "--samples" => args.samples = value.parse().expect("--samples takes a number"),
                "--micro-batches" => {
                    args.micro_batches = value
                        .split(',')
                        .map(|size| size.parse().expect("--micro-batches takes 1,10,…"))
                        .collect()
                }
                "--conv-lowering" => args.conv_lowering = value.parse().unwrap_or_else(|error| panic!("{error}")),
                "--precision" => args.precision = value.parse().unwrap_or_else(|error| panic!("{error}")),
                "--products" => args.products = value.parse().unwrap_or_else(|error| panic!("{error}")),
                _ => panic!("unknown flag {flag}"),
            }
        }
        args
    }

    fn device(&self) -> Device {
        match self.backend.as_str() {
            "wgpu" => Device::wgpu(DeviceKind::DefaultDevice),
            "flex" => Device::flex(),
            other => panic!("unknown backend {other} (wgpu or flex)"),
        }
    }
}

/// The command line's `--flag value` pairs after its first `skip` words.
fn flags(skip: usize) -> impl Iterator<Item = (String, String)> {
    let mut words = std::env::args().skip(skip);
    std::iter::from_fn(move || {
        let flag = words.next()?;
        let value = words.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        Some((flag, value))
    })
}

/// Seconds `work` takes, ended by a device sync (what it returns is kept until then, so that the
/// device runs it all).
fn seconds<T>(device: &Device, work: impl FnOnce() -> T) -> f64 {
    let started = Instant::now();
    let _kept = work();
    device.sync().expect("the device ran the work");
    started.elapsed().as_secs_f64()
}

/// The median of `runs` (at least one) timings.
fn median(runs: usize, timing: impl FnMut(usize) -> f64) -> f64 {
    let mut times: Vec<f64> = (0..runs.max(1)).map(timing).collect();
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}

/// Median seconds of `runs` runs of `work` after one warm-up, each ended by a device sync.
fn median_seconds(device: &Device, runs: usize, mut work: impl FnMut()) -> f64 {
    seconds(device, &mut work);
    median(runs, |_| seconds(device, &mut work))
}

/// Bytes burn's pools hold on `device` (`None` where the backend does not say).
fn reserved_bytes(device: &Device) -> Option<u64> {
    device.memory_pool_usage().map(|usage| usage.bytes_reserved)
}

/// One figure: time and the memory the pools held after it, starting from clean pools.
fn figure(device: &Device, runs: usize, work: impl FnMut()) -> Value {
    device.memory_cleanup();
    let seconds = median_seconds(device, runs, work);
    json!({ "ms": seconds * 1e3, "reserved_bytes": reserved_bytes(device) })
}

fn smoothgrad(model: &ResNet, image: &Tensor<4>, target: &Targets, samples: usize, micro_batch: usize) {
    let options = SmoothGradOptions { samples, micro_batch, ..Default::default() };
    let noise = GaussianNoise::new(options.seed, &image.device());
    let run = SmoothGradRun::new(model.clone(), Gradient, image.clone(), target.clone(), noise, options)
        .expect("valid options");
    // Read once at the end, as the page does per progress tick.
    let _ = run.run(|_, _| {}).map(Smoothing::Mean).into_data();
}

/// Gradient and Guided Backprop of one image, each method alone (two forward and two backward
/// passes) and as one [`MethodSet`] (one forward pass and two backward passes): what each
/// SmoothGrad sample of the page's default view costs.
fn gradient_and_guided_backprop(device: &Device, runs: usize, model: &ResNet, image: &Tensor<4>, target: &Targets) -> Value {
    let methods = [Method::Gradient, Method::GuidedBackprop];
    let alone = figure(device, runs, || {
        let _ = methods.iter().map(|method| method.attribute(model, image.clone(), target)).collect::<Vec<_>>();
    });
    let set = MethodSet::new(methods.to_vec()).expect("two methods");
    let shared = figure(device, runs, || {
        let _ = set.attribute(model, image.clone(), target);
    });
    let ratio = shared["ms"].as_f64().zip(alone["ms"].as_f64()).map(|(shared, alone)| shared / alone);
    json!({ "each_alone": alone, "shared_forward": shared, "shared_over_alone": ratio })
}

/// The input gradient of `model` against that of `reference` (the same weights in f32 on the CPU
/// backend with burn's own convolutions: exact kernels, no tuning) for `images`, each for the class `target` names:
/// `{batch, max_relative_error, correlation}`, so a GPU run checks the kernels it timed, and a
/// half-precision run its rounding.
fn gradient_against_cpu(model: &ResNet, reference: &ResNet, images: &Tensor<4>, target: &Targets) -> Value {
    let batch = images.dims()[0];
    let class = target.indices().into_data().iter::<i64>().next().expect("a class index") as usize;
    let targets = |device: &Device| Targets::classes(&vec![class; batch], 1000, device).expect("a class of the model");
    let cpu = reference.fc.weight.device();
    let cpu_gradient = Gradient.attribute(reference, images.clone().to_device(&cpu), &targets(&cpu));
    let values = |tensor: Tensor<4>| tensor.into_data().iter::<f32>().collect::<Vec<_>>();
    let ours = Gradient.attribute(model, images.clone(), &targets(&images.device()));
    let (ours, reference) = (values(ours), values(cpu_gradient));
    json!({
        "batch": batch,
        "max_relative_error": compare::max_relative_error(&ours, &reference),
        "correlation": compare::correlation(&ours, &reference),
    })
}

/// `UNFOLD_FROM_BATCH` noisy copies of `image`: the smallest batch whose convolutions the GPU
/// backend lowers as a batch (distinct images, so that a mix-up between them shows).
fn noisy_batch(image: &Tensor<4>) -> Tensor<4> {
    let copies = image.clone().repeat_dim(0, UNFOLD_FROM_BATCH);
    let noise = Tensor::<4>::random(copies.dims(), Distribution::Normal(0.0, 0.5), &image.device());
    copies + noise
}

fn main() {
    if std::env::args().nth(1).as_deref() == Some("products") {
        return products::main();
    }
    let args = Args::parse();
    use_product_kernels(args.products);
    let device = args.device();
    let full = ResNetConfig::resnet50(1000).init(&device).with_conv_lowering(args.conv_lowering);
    let model = full.clone().with_precision(args.precision).unwrap_or_else(|error| panic!("{error}"));
    // Off the device, so that its memory is the timed model's alone.
    // burn's own convolutions: no kernel or lowering of ours on either side of the comparison.
    let reference = full.to_device(&Device::flex()).with_conv_lowering(ConvLowering::Direct);
    let image = Tensor::<4>::random([1, 3, 224, 224], Distribution::Normal(0.0, 1.0), &device);
    let target = Targets::top1(model.forward(image.clone()));

    let forward = figure(&device, args.runs, || {
        let _ = model.forward(image.clone());
    });
    let forward_backward = figure(&device, args.runs, || {
        let _ = Gradient.attribute(&model, image.clone(), &target);
    });
    let shared_forward = gradient_and_guided_backprop(&device, args.runs, &model, &image, &target);
    let smoothgrad: Vec<Value> = args
        .micro_batches
        .iter()
        .map(|&micro_batch| {
            let mut result = figure(&device, args.runs, || {
                smoothgrad(&model, &image, &target, args.samples, micro_batch)
            });
            result["micro_batch"] = json!(micro_batch);
            result
        })
        .collect();

    let exact = args.backend == "flex" && args.precision == Precision::Single;
    let check = (!exact).then(|| gradient_against_cpu(&model, &reference, &image, &target));
    let batched_check = (!exact).then(|| gradient_against_cpu(&model, &reference, &noisy_batch(&image), &target));

    let report = json!({
        "project": "smoothgrad (burn)",
        "burn": "0.22.1",
        "backend": args.backend,
        "autotune": cfg!(feature = "autotune"),
        "conv_lowering": args.conv_lowering.name(),
        "precision": args.precision.name(),
        "products": args.products.name(),
        "gradient_vs_cpu": check,
        "batched_gradient_vs_cpu": batched_check,
        "device": format!("{device:?}"),
        // The GPU's name as its driver gives it: on a machine with a software renderer (lavapipe)
        // beside a GPU, which one the figures are from.
        "adapter": device.identity().map(|identity| identity.name),
        "model": "resnet50 224x224, random weights",
        "runs": args.runs,
        "samples": args.samples,
        "forward_b1": forward,
        "forward_backward_b1": forward_backward,
        "gradient_and_guided_backprop_b1": shared_forward,
        "smoothgrad": smoothgrad,
    });
    println!("{}", serde_json::to_string_pretty(&report).expect("JSON"));
}
