#!/usr/bin/env python3
"""The speed reference: the project's benchmark beside the same work in PyTorch eager.

Runs ResNet-50 at 224x224, fp32, gradient of the top-1 logit w.r.t. the input — forward
(batch 1), forward+backward (batch 1), SmoothGrad-50 at several micro-batches — in PyTorch
eager (a hand loop, Captum's NoiseTunnel, and the course's one-image loop) and then the
project's `bench` example on the same machine, and prints one JSON with the ratios
project / PyTorch. Medians of several runs after a warm-up; every run ends with a sync.

  python3 scripts/bench.py --project "target/release/examples/bench --backend wgpu"

`scripts/bench.sh` builds the example and calls this. With `--reference h100.json` the PyTorch
figures come from that earlier report instead (`scripts/bench-h100.sh`, for its other builds).
"""
import argparse
import json
import platform
import shlex
import statistics
import subprocess
import sys
import time

import torch
import torchvision


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--project", help="command running the project's bench (prints JSON); omit to run PyTorch alone")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--samples", type=int, default=50)
    parser.add_argument("--micro-batches", default="1,10,25,50")
    parser.add_argument("--no-captum", action="store_true", help="skip Captum's NoiseTunnel")
    parser.add_argument("--reference", help="take PyTorch's figures from this earlier report of this script "
                        "(same machine, same invocation) instead of running PyTorch again")
    return parser.parse_args()


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def figure(device, runs, work):
    """Median milliseconds of `runs` runs after a warm-up, and the peak memory they took."""
    work()
    sync(device)
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    times = []
    for _ in range(max(runs, 1)):
        started = time.perf_counter()
        work()
        sync(device)
        times.append((time.perf_counter() - started) * 1e3)
    result = {"ms": statistics.median(times)}
    if device.type == "cuda":
        result["allocated_bytes"] = torch.cuda.max_memory_allocated(device)
        result["reserved_bytes"] = torch.cuda.max_memory_reserved(device)
    return result


def input_gradient(model, images, target):
    images = images.detach().requires_grad_(True)
    score = model(images)[:, target].sum()
    (gradient,) = torch.autograd.grad(score, images)
    return gradient


def smoothgrad_loop(model, image, target, sigma, samples, micro_batch):
    """What the project does: device noise, running Σg and Σg², one read at the end."""
    total = torch.zeros_like(image[0])
    total_sq = torch.zeros_like(image[0])
    for start in range(0, samples, micro_batch):
        batch = min(micro_batch, samples - start)
        noisy = image + torch.randn((batch, *image.shape[1:]), device=image.device) * sigma
        gradient = input_gradient(model, noisy, target)
        total += gradient.sum(0)
        total_sq += (gradient * gradient).sum(0)
    return (total / samples).cpu()


def course_loop(model, image, target, sigma, samples):
    """The course's SmoothGrad: one noisy copy per forward/backward, `.grad` accumulated."""
    total = torch.zeros_like(image)
    for _ in range(samples):
        noisy = (image + torch.randn_like(image) * sigma).requires_grad_(True)
        model(noisy)[0, target].backward()
        total += noisy.grad
    return (total / samples).cpu()


def pytorch_figures(args, device, micro_batches):
    torch.manual_seed(0)
    model = torchvision.models.resnet50().to(device).eval()
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    image = torch.randn(1, 3, 224, 224, device=device)
    with torch.no_grad():
        target = int(model(image).argmax())
    sigma = 0.15 * float(image.max() - image.min())
    figures = {
        "forward_b1": figure(device, args.runs, lambda: model(image)),
        "forward_backward_b1": figure(device, args.runs, lambda: input_gradient(model, image, target)),
        "smoothgrad": [
            dict(micro_batch=size, **figure(
                device, args.runs,
                lambda size=size: smoothgrad_loop(model, image, target, sigma, args.samples, size)))
            for size in micro_batches
        ],
        "course_loop": figure(device, max(args.runs // 2, 1),
                              lambda: course_loop(model, image, target, sigma, args.samples)),
    }
    if not args.no_captum:
        from captum.attr import NoiseTunnel, Saliency

        tunnel = NoiseTunnel(Saliency(model))
        figures["captum_noise_tunnel"] = [
            dict(micro_batch=size, **figure(
                device, args.runs,
                lambda size=size: tunnel.attribute(
                    image, nt_type="smoothgrad", nt_samples=args.samples,
                    nt_samples_batch_size=size, stdevs=sigma, target=target).cpu()))
            for size in micro_batches
        ]
    return figures


def pytorch_modes(args, device, micro_batches):
    """Default PyTorch (cuDNN may use TF32 for convolutions) and strict fp32, as burn computes."""
    modes = {}
    if device.type == "cuda":
        torch.backends.cudnn.allow_tf32 = True
        modes["default_tf32_convs"] = pytorch_figures(args, device, micro_batches)
        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cuda.matmul.allow_tf32 = False
    modes["strict_fp32"] = pytorch_figures(args, device, micro_batches)
    return modes


def ratios(project, reference):
    """project / PyTorch for every figure both have."""
    out = {}
    for key in ("forward_b1", "forward_backward_b1"):
        out[key] = project[key]["ms"] / reference[key]["ms"]
    by_size = {row["micro_batch"]: row for row in reference["smoothgrad"]}
    for row in project["smoothgrad"]:
        size = row["micro_batch"]
        if size in by_size:
            out[f"smoothgrad{project['samples']}_mb{size}"] = row["ms"] / by_size[size]["ms"]
            if row.get("reserved_bytes") and by_size[size].get("reserved_bytes"):
                out[f"memory_mb{size}"] = row["reserved_bytes"] / by_size[size]["reserved_bytes"]
    return out


def reference_report(path):
    """PyTorch's part of an earlier report; without one the project's figures still count, unpaired."""
    try:
        with open(path) as file:
            earlier = json.load(file)
        report = {key: earlier[key] for key in ("device", "torch", "torchvision", "threads", "pytorch")}
    except (OSError, ValueError, KeyError) as error:
        return {"pytorch": {}, "pytorch_error": f"no PyTorch figures in {path}: {error!r}"}
    report["pytorch_from"] = path
    return report


def main():
    args = parse_args()
    device = torch.device(args.device)
    micro_batches = [int(size) for size in args.micro_batches.split(",")]
    if args.reference:
        report = reference_report(args.reference)
    else:
        report = {
            "device": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or platform.machine(),
            "torch": torch.__version__,
            "torchvision": torchvision.__version__,
            "threads": torch.get_num_threads(),
            "pytorch": pytorch_modes(args, device, micro_batches),
        }
    if args.project:
        command = shlex.split(args.project) + [
            "--runs", str(args.runs), "--samples", str(args.samples),
            "--micro-batches", args.micro_batches]
        print("running:", shlex.join(command), file=sys.stderr)
        run = subprocess.run(command, stdout=subprocess.PIPE, text=True)
        if run.returncode == 0:
            project = json.loads(run.stdout)
            report["project"] = project
            report["ratios_project_over_pytorch"] = {
                mode: ratios(project, figures) for mode, figures in report["pytorch"].items()}
        else:
            # The PyTorch figures still count: keep them and say what failed.
            report["project_error"] = f"exit status {run.returncode}; see stderr"
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
