//! `bench products`: the matrix products alone, ResNet-50's as one input gradient at a
//! micro-batch runs them on burn's GPU backend, replayed with each product kernel setting; prints
//! JSON lines: the settings, then each product as it is timed (a run cut short keeps those), then
//! the totals. A mode of the benchmark, not a program of its own: what travels to the GPU machine
//! is limited to 64 MiB.
//!
//! `cargo run --release --example bench -- products [--micro-batch 50] [--samples 50]
//! [--conv-lowering matrix-products|channels-last|unfolded|winograd] [--kernels cubek,tiled,tiled-v4,…]
//! [--runs 5] [--launches 20]`
//!
//! Each distinct product (operand shapes and transposed views as the gradient ran them) is timed
//! per setting as the median of `--runs` rounds of `--launches` launches, each round ended by a
//! device sync, after one warm-up launch (which compiles its kernel): wall-clock time, so small
//! products count their launch cost, with the operands warm in cache. `ms_per_gradient` weighs
//! each product by how often one gradient of the micro-batch runs it, `ms_per_smoothgrad` by how
//! often SmoothGrad with `--samples` does: the products' share of its time, per setting, at a
//! fraction of the cost of timing whole passes. Each setting's outputs are checked against the
//! first setting's (cubek's by default): `max_relative_error`, `matches_first` within 1e-4.

use serde_json::{Value, json};
use smoothgrad::burn::backend::Dispatch;
use smoothgrad::burn::tensor::{Device, DeviceKind, Distribution, Tensor};
use smoothgrad::{
    Attribution, ConvLowering, ConvProductBackend, Gradient, ProductKernels, ProductShape, ResNetConfig, Targets,
    record_products, use_product_kernels,
};

/// What to measure, from the command line.
struct Args {
    micro_batch: usize,
    conv_lowering: ConvLowering,
    kernels: Vec<ProductKernels>,
    samples: usize,
    runs: usize,
    launches: usize,
}

impl Args {
    fn parse() -> Self {
        let mut args = Self {
            micro_batch: 50,
            conv_lowering: ConvLowering::default(),
            kernels: ["cubek", "tiled", "tiled-v4"].map(|name| name.parse().expect("a known setting")).to_vec(),
            samples: 50,
            runs: 5,
            launches: 20,
        };
        for (flag, value) in super::flags(2) {
            let number = || value.parse().unwrap_or_else(|_| panic!("{flag} takes a number"));
            match flag.as_str() {
                "--micro-batch" => args.micro_batch = number(),
                "--samples" => args.samples = number(),
                "--runs" => args.runs = number(),
                "--launches" => args.launches = number(),
                "--conv-lowering" => args.conv_lowering = value.parse().unwrap_or_else(|error| panic!("{error}")),
                "--kernels" => {
                    let parsed: Result<_, _> = value.split(',').map(str::parse).collect();
                    args.kernels = parsed.unwrap_or_else(|error| panic!("{error}"));
                }
                _ => panic!("unknown flag {flag}"),
            }
        }
        args
    }
}

/// The distinct products of one input gradient of ResNet-50 at `micro_batch`, each with how often
/// it ran, in the order they first ran.
fn products_of_a_gradient(device: &Device, micro_batch: usize, lowering: ConvLowering) -> Vec<(ProductShape, usize)> {
    let model = ResNetConfig::resnet50(1000).init(device).with_conv_lowering(lowering);
    let images = Tensor::<4>::random([micro_batch, 3, 224, 224], Distribution::Normal(0.0, 1.0), device);
    let targets = Targets::top1(model.forward(images.clone()));
    use_product_kernels(ProductKernels::Cubek);
    let recorded = record_products(device, || {
        let _ = Gradient.attribute(&model, images, &targets).into_data();
    });
    let mut distinct: Vec<(ProductShape, usize)> = Vec::new();
    for shape in recorded {
        match distinct.iter_mut().find(|(seen, _)| *seen == shape) {
            Some((_, count)) => *count += 1,
            None => distinct.push((shape, 1)),
        }
    }
    distinct
}

/// Random operands of `shape`, transposed views where it has them.
fn operands(shape: &ProductShape, device: &Device) -> (Tensor<3>, Tensor<3>) {
    let normal = |dims: [usize; 3]| Tensor::<3>::random(dims, Distribution::Normal(0.0, 1.0), device);
    let operand = |[batch, rows, columns]: [usize; 3], transposed: bool| match transposed {
        true => normal([batch, columns, rows]).swap_dims(1, 2),
        false => normal([batch, rows, columns]),
    };
    let lhs = operand([shape.lhs_batch, shape.rows, shape.inner], shape.lhs_transposed);
    let rhs = operand([shape.rhs_batch, shape.inner, shape.columns], shape.rhs_transposed);
    (lhs, rhs)
}

fn product(lhs: &Tensor<3>, rhs: &Tensor<3>) -> Tensor<3> {
    Tensor::from_dispatch(Dispatch::conv_product(lhs.clone().into_dispatch(), rhs.clone().into_dispatch()))
}

/// Median microseconds a launch of `lhs · rhs` takes with the current setting, over `runs` rounds
/// of `launches` (their outputs kept until the round's sync, so that none is skipped).
fn microseconds(device: &Device, lhs: &Tensor<3>, rhs: &Tensor<3>, runs: usize, launches: usize) -> f64 {
    let launches = launches.max(1);
    let round = || super::seconds(device, || (0..launches).map(|_| product(lhs, rhs)).collect::<Vec<_>>());
    super::median(runs, |_| round() * 1e6 / launches as f64)
}

/// `max |ours − reference| / max |reference|`, on the device; NaN where either has a NaN (which a
/// maximum may skip, a sum does not).
fn max_relative_error(ours: Tensor<3>, reference: &Tensor<3>) -> f64 {
    let scale = reference.clone().abs().max().into_scalar::<f32>() as f64;
    let difference = (ours - reference.clone()).abs();
    let total = difference.clone().sum().into_scalar::<f32>() as f64;
    let largest = difference.max().into_scalar::<f32>() as f64;
    if total.is_finite() { largest / scale } else { f64::NAN }
}

fn print_line(line: &Value) {
    println!("{}", serde_json::to_string(line).expect("JSON"));
}

/// Runs the products' benchmark with the command line's settings (after `products`).
pub fn main() {
    let args = Args::parse();
    let device = Device::wgpu(DeviceKind::DefaultDevice);
    let gradients = args.samples.div_ceil(args.micro_batch);
    print_line(&json!({
        "what": "ResNet-50's matrix products of one input gradient, replayed per product kernel setting",
        "adapter": device.identity().map(|identity| identity.name),
        "micro_batch": args.micro_batch,
        "samples": args.samples,
        "conv_lowering": args.conv_lowering.name(),
        "runs": args.runs,
        "launches": args.launches,
    }));
    let products = products_of_a_gradient(&device, args.micro_batch, args.conv_lowering);
    let mut ms_per_gradient = vec![0.0; args.kernels.len()];
    for (shape, count) in &products {
        let (lhs, rhs) = operands(shape, &device);
        let flop = 2.0 * (shape.lhs_batch.max(shape.rhs_batch) * shape.rows * shape.inner * shape.columns) as f64;
        let mut reference = None;
        let timings: Vec<Value> = args.kernels.iter().zip(&mut ms_per_gradient).map(|(&kernels, total)| {
            use_product_kernels(kernels);
            // The warm-up launch, also what the launch saw: the replay is the recorded product.
            let mut output = None;
            let seen = record_products(&device, || output = Some(product(&lhs, &rhs)));
            assert_eq!(seen, [*shape], "the replay ran another product than the recorded one");
            let output = output.expect("a product");
            let error = reference.as_ref().map(|reference| max_relative_error(output.clone(), reference));
            reference.get_or_insert(output);
            let us = microseconds(&device, &lhs, &rhs, args.runs, args.launches);
            *total += us * *count as f64 / 1e3;
            json!({
                "kernels": kernels.name(),
                "us": us,
                "tflops": flop / us / 1e6,
                "max_relative_error": error,
                "matches_first": error.map(|error| error <= 1e-4),
            })
        }).collect();
        print_line(&json!({ "shape": format!("{shape:?}"), "count": count, "gflop": flop / 1e9, "timings": timings }));
    }
    use_product_kernels(ProductKernels::Cubek);
    let totals: Vec<Value> = args.kernels.iter().zip(&ms_per_gradient)
        .map(|(kernels, &ms)| json!({
            "kernels": kernels.name(),
            "ms_per_gradient": ms,
            "ms_per_smoothgrad": ms * gradients as f64,
            "vs_first": ms / ms_per_gradient[0],
        }))
        .collect();
    print_line(&json!({ "products": products.len(), "gradients_per_smoothgrad": gradients, "totals": totals }));
}
