#!/usr/bin/env python3
"""Generate the reference fixtures under tests/fixtures/ for the Rust saliency crate.

Run through scripts/make-fixtures.sh (which sets up a venv), or directly:

    python scripts/make_fixtures.py --out tests/fixtures

Everything is CPU-only, float32, single-threaded and seeded, so re-running the
script with the same torch / torchvision / captum / Pillow versions reproduces
the same files (the versions are recorded in manifest.json).

What is written (see manifest.json for a per-tensor description):

  narrow_resnet50.safetensors        narrow (base width 8, 10 classes) torchvision ResNet-50 state_dict
  narrow_resnet50.pth                the same state_dict, torch.save zip format
  narrow_resnet50_f16.safetensors    the same, floating tensors in float16
  narrow_resnet50_bf16.safetensors   the same, floating tensors in bfloat16
  narrow_resnet18.safetensors        narrow torchvision ResNet-18 (BasicBlock [2,2,2,2])
  reference.safetensors              inputs, logits, targets and all attribution references
  chelsea.png / chelsea_rot.jpg / chelsea_grey.png / chelsea_rgba.png
  preprocess_reference.safetensors   torchvision preprocessing outputs for the images
  manifest.json, CREDITS.md

The truncated / bad-shape checkpoints are NOT written by default (they would add
~2.2 MB of redundant bytes); the Rust tests should derive them on the fly from
narrow_resnet50.safetensors (see manifest.json "derived_on_the_fly").  Pass
--with-broken to write them anyway.
"""

import argparse
import copy
import json
import os
import shutil
import sys
import time
import types
from contextlib import contextmanager

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

import torchvision
from torchvision import transforms
from torchvision.models.resnet import BasicBlock, Bottleneck, ResNet

import captum
from captum.attr import (
    GuidedBackprop,
    InputXGradient,
    IntegratedGradients,
    NoiseTunnel,
    Saliency,
)
from captum.attr._utils.approximation_methods import approximation_parameters

import PIL
from PIL import Image, ImageOps

import safetensors
from safetensors.torch import load_file, save_file

IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]

BASE_WIDTH = 8
NUM_CLASSES = 10
INPUT_HW = 64
K_INPUTS = 2
IG_STEPS = 50
SG_SAMPLES = 8
SG_SIGMA_FRACTION = 0.15

SEED_MODEL50 = 0
SEED_MODEL18 = 1
SEED_CALIB = 100
SEED_INPUTS = 200
SEED_NOISE = 300


# ----------------------------------------------------------------------------
# Determinism
# ----------------------------------------------------------------------------

def setup_determinism():
    torch.set_num_threads(1)
    torch.set_num_interop_threads(1)
    torch.use_deterministic_algorithms(True)
    torch.set_default_dtype(torch.float32)
    torch.manual_seed(0)
    np.random.seed(0)


# ----------------------------------------------------------------------------
# Narrow torchvision ResNet
# ----------------------------------------------------------------------------

class NarrowResNet(ResNet):
    """torchvision.models.resnet.ResNet with the hard-coded width 64 replaced by `base`.

    This is a copy of torchvision's ResNet.__init__ (torchvision 0.29) with
    64 -> base, 128 -> 2*base, 256 -> 4*base, 512 -> 8*base.  The blocks
    (Bottleneck / BasicBlock), `_make_layer` and `forward` are torchvision's own,
    so the state_dict keys and the forward pass are exactly torchvision's.
    `width_per_group` (self.base_width) stays 64 so Bottleneck's inner width is
    `planes` (v1.5: stride on the 3x3 conv, downsample = 1x1 conv + BN).
    """

    def __init__(self, block, layers, num_classes=NUM_CLASSES, base=BASE_WIDTH):
        nn.Module.__init__(self)
        norm_layer = nn.BatchNorm2d
        self._norm_layer = norm_layer
        self.inplanes = base
        self.dilation = 1
        self.groups = 1
        self.base_width = 64  # width_per_group, NOT the network base width
        self.conv1 = nn.Conv2d(3, self.inplanes, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = norm_layer(self.inplanes)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(block, base, layers[0])
        self.layer2 = self._make_layer(block, base * 2, layers[1], stride=2)
        self.layer3 = self._make_layer(block, base * 4, layers[2], stride=2)
        self.layer4 = self._make_layer(block, base * 8, layers[3], stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(base * 8 * block.expansion, num_classes)

        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)


def features(model, x):
    """torchvision ResNet._forward_impl up to (and including) the flatten before fc."""
    x = model.conv1(x)
    x = model.bn1(x)
    x = model.relu(x)
    x = model.maxpool(x)
    x = model.layer1(x)
    x = model.layer2(x)
    x = model.layer3(x)
    x = model.layer4(x)
    x = model.avgpool(x)
    return torch.flatten(x, 1)


def smooth_images(n, generator, hw=INPUT_HW):
    """Smooth random RGB images in [0,1], then ImageNet-normalised. Shape [n,3,hw,hw]."""
    img = torch.zeros(n, 3, hw, hw)
    for cells, weight in ((4, 0.45), (8, 0.35), (16, 0.20)):
        low = torch.rand(n, 3, cells, cells, generator=generator)
        img += weight * F.interpolate(low, size=(hw, hw), mode="bilinear", align_corners=False)
    # stretch contrast a bit so the full [0,1] range is used
    lo = img.amin(dim=(1, 2, 3), keepdim=True)
    hi = img.amax(dim=(1, 2, 3), keepdim=True)
    img = ((img - lo) / (hi - lo)).clamp(0, 1)
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    return (img - mean) / std


def build_model(block, layers, seed, calib_x, log):
    """Build and randomise a narrow ResNet.  Returns the eval-mode model.

    Init recipe:
      1. torchvision's own init (kaiming_normal_ fan_out convs, default nn.Linear init),
         with torch.manual_seed(seed).
      2. Every BatchNorm2d, exactly as specified: weight ~ U(0.5, 1.5),
         bias ~ N(0, 0.1), running_mean ~ N(0, 0.1), running_var ~ U(0.5, 2.0)
         (num_batches_tracked = 0).  In eval mode the residual stream of the
         ResNet-50 grows to std ~14 by layer4 (ResNet-18: ~1.5), but stays finite
         and, importantly, the network stays in the "ordered" regime (smooth in
         its input: IG completeness holds to a few %).
      3. ADJUSTMENT (the only one): the fc layer.  With step 2 alone the pooled
         features have a large input-independent component, so fc's logits were
         dominated by a common offset (ResNet-50: all 64 probe inputs -> class 9,
         logit spread across inputs ~0.8 vs ~8 across classes).  So fc.bias is
         re-centred to -W @ mean_feature + N(0, 0.25) (mean over a separate
         calibration batch of 32 smooth random images) and fc.weight/fc.bias are
         rescaled so that the mean per-class std of the logits over that batch
         is 2.0.  This keeps logits O(1-10) and spreads the argmax over classes.
      Rejected alternative (tried): calibrating the BN running stats to the true
      batch statistics before perturbing them made the ResNet-50 chaotic (logit
      along the IG path alpha*x oscillated by +-3 every 0.05 in alpha, IG
      completeness off by 5x, bf16 rounding of the weights moved logits by 3.7).
    """
    torch.manual_seed(seed)
    model = NarrowResNet(block, layers)
    g = torch.Generator().manual_seed(seed + 10_000)
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    with torch.no_grad():
        for bn in bns:
            bn.weight.copy_(torch.empty_like(bn.weight).uniform_(0.5, 1.5, generator=g))
            bn.bias.copy_(torch.empty_like(bn.bias).normal_(0.0, 0.1, generator=g))
            bn.running_mean.copy_(torch.empty_like(bn.running_mean).normal_(0.0, 0.1, generator=g))
            bn.running_var.copy_(torch.empty_like(bn.running_var).uniform_(0.5, 2.0, generator=g))
            bn.num_batches_tracked.fill_(0)
        model.eval()

        # --- re-centre / rescale fc ---
        feats = features(model, calib_x)
        fbar = feats.mean(0)
        w = model.fc.weight
        b = -(w @ fbar) + torch.empty(NUM_CLASSES).normal_(0.0, 0.25, generator=g)
        model.fc.bias.copy_(b)
        logits = model.fc(feats)
        scale = 2.0 / logits.std(0).mean()
        model.fc.weight.mul_(scale)
        model.fc.bias.mul_(scale)
        log(f"{type(model.layer1[0]).__name__} model: fc rescaled by {scale.item():.3f}")
    model.eval()
    return model


def check_model_sane(name, model, probe_x, log):
    with torch.no_grad():
        y = model(probe_x)
    assert torch.isfinite(y).all(), f"{name}: non-finite logits"
    counts = torch.bincount(y.argmax(1), minlength=NUM_CLASSES)
    spread_inputs = y.std(0).mean().item()
    spread_classes = y.std(1).mean().item()
    absmax = y.abs().max().item()
    log(f"{name}: probe logits |max|={absmax:.3f}  std over inputs={spread_inputs:.3f} "
        f"std over classes={spread_classes:.3f}  argmax histogram={counts.tolist()}")
    assert 0.1 < spread_inputs < 20 and 0.1 < spread_classes < 20, f"{name}: logit scale off"
    assert absmax < 50, f"{name}: logits too large"
    assert (counts > 0).sum() >= 3, f"{name}: argmax degenerate ({counts.tolist()})"
    return dict(probe_absmax=absmax, probe_std_over_inputs=spread_inputs,
                probe_std_over_classes=spread_classes, probe_argmax_histogram=counts.tolist())


# ----------------------------------------------------------------------------
# Guided backprop (manual) and helpers
# ----------------------------------------------------------------------------

class GuidedReLU(torch.autograd.Function):
    """ReLU whose backward passes only positive gradients where its input was positive."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x.clamp(min=0)  # out-of-place: the saved input is never overwritten

    @staticmethod
    def backward(ctx, grad_out):
        (x,) = ctx.saved_tensors
        return grad_out.clamp(min=0) * (x > 0).to(grad_out.dtype)


@contextmanager
def guided_relus(model, counter):
    """Replace the forward of every nn.ReLU *module* by GuidedReLU.

    Because the patch is on the module object, every call of a reused module
    (torchvision's Bottleneck calls its single `self.relu` three times, BasicBlock
    twice, the stem once) goes through GuidedReLU.  `counter[0]` counts calls.
    """
    relus = [m for m in model.modules() if isinstance(m, nn.ReLU)]

    def fwd(self, x):
        counter[0] += 1
        return GuidedReLU.apply(x)

    for m in relus:
        m.forward = types.MethodType(fwd, m)
    try:
        yield
    finally:
        for m in relus:
            del m.forward


def grad_wrt_input(model, x, target):
    x = x.detach().clone().requires_grad_(True)
    out = model(x)
    sel = out.gather(1, target.view(-1, 1)).sum()
    (g,) = torch.autograd.grad(sel, x)
    return g.detach()


def ig_manual(model, x, target, alphas, weights):
    """x * sum_k w_k * grad(alpha_k * x)  (zero baseline)."""
    total = torch.zeros_like(x)
    for a, w in zip(alphas, weights):
        total += w * grad_wrt_input(model, a * x, target)
    return total * x


def manual_guided(model, x, target):
    counter = [0]
    with guided_relus(model, counter):
        g = grad_wrt_input(model, x, target)
    return g, counter[0]


@contextmanager
def fixed_torch_normal(noise, expected_std):
    """Make captum's NoiseTunnel use our saved noise.

    captum 0.9 NoiseTunnel._add_noise_to_input draws
        noise = torch.normal(0, stdev_expanded)   # stdev_expanded: [bsz*n, *shape]
    and adds it to input.repeat_interleave(n, dim=0).  We replace torch.normal for
    the duration of the call and return our (already sigma-scaled) noise instead,
    after checking captum asked for the same shape and std.
    """
    orig = torch.normal
    calls = [0]

    def fake(mean, std, *args, **kwargs):
        calls[0] += 1
        assert float(mean) == 0.0
        assert isinstance(std, torch.Tensor) and tuple(std.shape) == tuple(noise.shape), \
            (std.shape, noise.shape)
        assert torch.allclose(std, torch.full_like(std, expected_std)), "captum used another sigma"
        return noise.clone()

    torch.normal = fake
    try:
        yield calls
    finally:
        torch.normal = orig


def max_abs_diff(a, b):
    return (a - b).abs().max().item()


def assert_close(name, a, b, atol_frac=1e-5, log=print):
    """max|a-b| <= atol_frac * max(|a|,|b|): a tolerance relative to the tensor's own scale."""
    scale = max(a.abs().max().item(), b.abs().max().item(), 1e-30)
    d = max_abs_diff(a, b)
    ok = d <= atol_frac * scale
    log(f"  check {name}: max|diff|={d:.3e} (scale {scale:.3e}, rel {d / scale:.3e}) "
        f"{'OK' if ok else 'MISMATCH'}")
    return ok, d, d / scale


# ----------------------------------------------------------------------------
# main
# ----------------------------------------------------------------------------

def tensor_info(t):
    t = t.detach()
    d = dict(shape=list(t.shape), dtype=str(t.dtype).replace("torch.", ""))
    if t.is_floating_point() or t.is_complex():
        tf = t.float()
        d.update(max_abs=tf.abs().max().item(), mean=tf.mean().item(), std=tf.std().item() if tf.numel() > 1 else 0.0)
    else:
        d.update(min=int(t.min()), max=int(t.max()))
    return d


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures"))
    ap.add_argument("--with-broken", action="store_true",
                    help="also write narrow_resnet50_truncated/_badshape.safetensors")
    args = ap.parse_args()
    out = os.path.abspath(args.out)
    os.makedirs(out, exist_ok=True)
    t_start = time.time()
    setup_determinism()
    lines = []

    def log(s=""):
        print(s, flush=True)
        lines.append(s)

    def P(name):
        return os.path.join(out, name)

    checks = {}
    log(f"torch {torch.__version__}, torchvision {torchvision.__version__}, captum {captum.__version__}, "
        f"Pillow {PIL.__version__}, numpy {np.__version__}, safetensors {safetensors.__version__}")

    # ------------------------------------------------------------------ models
    calib_x = smooth_images(32, torch.Generator().manual_seed(SEED_CALIB))
    probe_x = smooth_images(128, torch.Generator().manual_seed(SEED_CALIB + 1))
    r50 = build_model(Bottleneck, [3, 4, 6, 3], SEED_MODEL50, calib_x, log)
    r18 = build_model(BasicBlock, [2, 2, 2, 2], SEED_MODEL18, calib_x, log)
    sane50 = check_model_sane("narrow resnet50", r50, probe_x, log)
    sane18 = check_model_sane("narrow resnet18", r18, probe_x, log)
    for p in list(r50.parameters()) + list(r18.parameters()):
        p.requires_grad_(False)  # we only need input gradients

    sd50 = {k: v.detach().clone().contiguous() for k, v in r50.state_dict().items()}
    sd18 = {k: v.detach().clone().contiguous() for k, v in r18.state_dict().items()}
    n_nbt = sum(1 for k in sd50 if k.endswith("num_batches_tracked"))
    log(f"resnet50 state_dict: {len(sd50)} tensors ({n_nbt} num_batches_tracked), "
        f"{sum(v.numel() for k, v in sd50.items() if v.is_floating_point())} floats")
    # A single metadata key: safetensors serialises the metadata map in hash order,
    # so more than one key makes the files non-reproducible byte-for-byte.
    meta50 = {"format": "pt"}
    meta18 = {"format": "pt"}
    save_file(sd50, P("narrow_resnet50.safetensors"), metadata=meta50)
    torch.save(r50.state_dict(), P("narrow_resnet50.pth"))
    sd50_f16 = {k: (v.half() if v.is_floating_point() else v) for k, v in sd50.items()}
    sd50_bf16 = {k: (v.bfloat16() if v.is_floating_point() else v) for k, v in sd50.items()}
    save_file(sd50_f16, P("narrow_resnet50_f16.safetensors"), metadata=meta50)
    save_file(sd50_bf16, P("narrow_resnet50_bf16.safetensors"), metadata=meta50)
    save_file(sd18, P("narrow_resnet18.safetensors"), metadata=meta18)

    # round-trip checks of the written checkpoints
    rt = load_file(P("narrow_resnet50.safetensors"))
    assert rt.keys() == sd50.keys() and all(torch.equal(rt[k], sd50[k]) for k in sd50)
    rt = torch.load(P("narrow_resnet50.pth"), map_location="cpu", weights_only=True)
    assert rt.keys() == sd50.keys() and all(torch.equal(rt[k], sd50[k]) for k in sd50)
    # the reference model must load with torchvision-style strict key matching
    tmp = NarrowResNet(Bottleneck, [3, 4, 6, 3])
    tmp.load_state_dict(load_file(P("narrow_resnet50.safetensors")), strict=True)

    broken = {}
    if args.with_broken:
        raw = open(P("narrow_resnet50.safetensors"), "rb").read()
        open(P("narrow_resnet50_truncated.safetensors"), "wb").write(raw[: len(raw) // 2])
        bad = dict(sd50)
        g7 = torch.Generator().manual_seed(7)
        bad["fc.weight"] = torch.randn(7, sd50["fc.weight"].shape[1], generator=g7) * 0.05
        bad["fc.bias"] = torch.zeros(7)
        save_file(bad, P("narrow_resnet50_badshape.safetensors"), metadata=meta50)
        broken = {"narrow_resnet50_truncated.safetensors": "first len//2 bytes of narrow_resnet50.safetensors",
                  "narrow_resnet50_badshape.safetensors": "same keys as narrow_resnet50.safetensors but fc.weight [7,256], fc.bias [7]"}

    # ------------------------------------------------------------------ inputs
    gin = torch.Generator().manual_seed(SEED_INPUTS)
    x0 = smooth_images(1, gin)
    with torch.no_grad():
        t0 = r50(x0).argmax(1).item()
    # pick the second input deterministically so that its top-1 class differs
    tries = 0
    while True:
        tries += 1
        x1 = smooth_images(1, gin)
        with torch.no_grad():
            t1 = r50(x1).argmax(1).item()
        if t1 != t0 or tries >= 50:
            break
    x = torch.cat([x0, x1], 0).contiguous()
    log(f"inputs: shape {list(x.shape)}, range [{x.min().item():.3f}, {x.max().item():.3f}] "
        f"(second input found after {tries} draw(s))")

    with torch.no_grad():
        logits = r50(x)
        r18_logits = r18(x)
    target = logits.argmax(1).to(torch.int64)
    log(f"logits:\n{logits}")
    log(f"target: {target.tolist()}  resnet18 logits argmax: {r18_logits.argmax(1).tolist()}")

    def logits_from(sd_low):
        m = NarrowResNet(Bottleneck, [3, 4, 6, 3])
        m.load_state_dict({k: (v.float() if v.is_floating_point() else v) for k, v in sd_low.items()}, strict=True)
        m.eval()
        with torch.no_grad():
            return m(x)

    logits_f16 = logits_from(load_file(P("narrow_resnet50_f16.safetensors")))
    logits_bf16 = logits_from(load_file(P("narrow_resnet50_bf16.safetensors")))
    log(f"max|logits_from_f16 - logits| = {max_abs_diff(logits_f16, logits):.3e}, "
        f"bf16: {max_abs_diff(logits_bf16, logits):.3e}")

    # ------------------------------------------------------------- attributions
    log("attributions:")
    grad_manual = grad_wrt_input(r50, x, target)
    gradient = Saliency(r50).attribute(x, target=target, abs=False).detach()
    checks["gradient_vs_autograd"] = assert_close("Saliency vs autograd", gradient, grad_manual, log=log)

    ixg = InputXGradient(r50).attribute(x, target=target).detach()
    checks["ixg_vs_manual"] = assert_close("InputXGradient vs x*grad", ixg, x * grad_manual, log=log)

    gb_captum = GuidedBackprop(r50).attribute(x, target=target).detach()
    gb_manual, n_relu_calls = manual_guided(r50, x, target)
    expected_calls = 1 + 3 * (3 + 4 + 6 + 3)
    log(f"  manual guided backprop: {n_relu_calls} ReLU calls patched (expected {expected_calls})")
    assert n_relu_calls == expected_calls
    ok, d, rel = assert_close("GuidedBackprop captum vs manual GuidedReLU", gb_captum, gb_manual, log=log)
    checks["guided_captum_vs_manual"] = (ok, d, rel)
    # guided backprop must actually differ from the plain gradient (else the test is vacuous)
    gb_vs_grad = max_abs_diff(gb_manual, grad_manual) / grad_manual.abs().max().item()
    log(f"  guided backprop vs plain gradient: rel max diff {gb_vs_grad:.3f}")
    # If captum disagreed, the manual implementation is the specification.
    guided = gb_captum if ok else gb_manual
    guided_source = "captum.attr.GuidedBackprop (verified == manual GuidedReLU)" if ok else \
        "manual GuidedReLU (captum differed, see checks)"

    ig = IntegratedGradients(r50)
    ig_gl = ig.attribute(x, baselines=torch.zeros_like(x), target=target, n_steps=IG_STEPS,
                         method="gausslegendre").detach()
    ig_rt = ig.attribute(x, baselines=torch.zeros_like(x), target=target, n_steps=IG_STEPS,
                         method="riemann_trapezoid").detach()
    quad = {}
    for method in ("gausslegendre", "riemann_trapezoid"):
        step_fn, alpha_fn = approximation_parameters(method)
        w64 = np.asarray(step_fn(IG_STEPS), dtype=np.float64)
        a64 = np.asarray(alpha_fn(IG_STEPS), dtype=np.float64)
        quad[method] = (a64, w64)
        # manual IG with the same quadrature, for cross-checking captum
        ig_m = ig_manual(r50, x, target, torch.tensor(a64, dtype=torch.float32),
                         torch.tensor(w64, dtype=torch.float32))
        checks[f"ig_{method}_vs_manual"] = assert_close(
            f"IG {method} captum vs manual quadrature", ig_gl if method == "gausslegendre" else ig_rt,
            ig_m, atol_frac=1e-4, log=log)
        log(f"  {method}: sum(weights)={w64.sum():.6f}, alphas[0]={a64[0]:.6g}, alphas[-1]={a64[-1]:.6g}")
    # completeness: sum(IG) ~ f(x) - f(0)
    with torch.no_grad():
        f0 = r50(torch.zeros_like(x)).gather(1, target.view(-1, 1)).squeeze(1)
    fx = logits.gather(1, target.view(-1, 1)).squeeze(1)
    completeness = {
        "f(x)-f(0)": (fx - f0).tolist(),
        "sum_ig_gausslegendre": ig_gl.flatten(1).sum(1).tolist(),
        "sum_ig_riemann_trapezoid": ig_rt.flatten(1).sum(1).tolist(),
    }
    log(f"  IG completeness: {completeness}")

    # How well-conditioned are the references?  Recompute them in float64 with a
    # double copy of the same model: the f32-vs-f64 gap is a lower bound for the
    # tolerance any other f32 implementation (burn) can be held to.
    r50d = copy.deepcopy(r50).double().eval()
    xd = x.double()
    with torch.no_grad():
        logits_d = r50d(xd)
    grad_d = grad_wrt_input(r50d, xd, target)
    gb_d, _ = manual_guided(r50d, xd, target)
    igd = ig_manual(r50d, xd, target, torch.tensor(quad["gausslegendre"][0]),
                    torch.tensor(quad["gausslegendre"][1]))
    conditioning = {}
    for name, a32, a64_ in (("logits", logits, logits_d), ("gradient", gradient, grad_d),
                            ("guided_backprop", guided, gb_d), ("integrated_gradients", ig_gl, igd)):
        d = (a32.double() - a64_).abs().max().item()
        conditioning[name] = d / a64_.abs().max().item()
        log(f"  f32 vs f64 {name}: max|diff|/max|ref| = {conditioning[name]:.2e}")
    assert logits_d.argmax(1).tolist() == target.tolist()

    # --------------------------------------------------------------- SmoothGrad
    sigma = SG_SIGMA_FRACTION * (x.flatten(1).amax(1) - x.flatten(1).amin(1))  # [2]
    gnoise = torch.Generator().manual_seed(SEED_NOISE)
    eps = torch.randn((K_INPUTS, SG_SAMPLES, 3, INPUT_HW, INPUT_HW), generator=gnoise)
    noise = (eps * sigma.view(K_INPUTS, 1, 1, 1, 1)).contiguous()
    noisy = (x.unsqueeze(1) + noise).reshape(K_INPUTS * SG_SAMPLES, 3, INPUT_HW, INPUT_HW)
    t_rep = target.repeat_interleave(SG_SAMPLES)

    g_noisy = grad_wrt_input(r50, noisy, t_rep)
    gb_noisy, _ = manual_guided(r50, noisy, t_rep)
    per_sample = {
        "gradient": g_noisy,
        "guided_backprop": gb_noisy,
        "input_x_gradient": noisy * g_noisy,
    }
    smooth = {}
    for name, a in per_sample.items():
        a = a.view(K_INPUTS, SG_SAMPLES, 3, INPUT_HW, INPUT_HW)
        # same arithmetic as captum NoiseTunnel: sum * 1 / n, then E[a^2] - E[a]^2
        mean = a.sum(1) * 1 / SG_SAMPLES
        sq = torch.pow(a, 2).sum(1) * 1 / SG_SAMPLES
        var = sq - mean * mean
        smooth[name] = (mean, sq, var)

    # cross-check against captum NoiseTunnel fed the same noise (one image at a time,
    # because captum's stdevs is one scalar per input tensor, not per example).
    nt_methods = {
        "gradient": (Saliency(r50), dict(abs=False)),
        "guided_backprop": (GuidedBackprop(r50), {}),
        "input_x_gradient": (InputXGradient(r50), {}),
    }
    nt_types = ("smoothgrad", "smoothgrad_sq", "vargrad")
    for name, (attr_obj, kw) in nt_methods.items():
        nt = NoiseTunnel(attr_obj)
        for ti, nt_type in enumerate(nt_types):
            res = []
            for i in range(K_INPUTS):
                with fixed_torch_normal(noise[i], float(sigma[i])) as calls:
                    r = nt.attribute(x[i:i + 1], nt_type=nt_type, nt_samples=SG_SAMPLES,
                                     stdevs=float(sigma[i]), target=int(target[i]), **kw)
                assert calls[0] == 1
                res.append(r.detach())
            res = torch.cat(res, 0)
            ok, d, rel = assert_close(f"NoiseTunnel({name}, {nt_type}) vs manual", res,
                                      smooth[name][ti], atol_frac=1e-5, log=log)
            checks[f"noisetunnel_{name}_{nt_type}"] = (ok, d, rel)

    # ------------------------------------------------------------ save reference
    ref = {
        "input": x,
        "logits": logits,
        "target": target,
        "logits_from_f16": logits_f16,
        "logits_from_bf16": logits_bf16,
        "resnet18_logits": r18_logits,
        "gradient": gradient,
        "input_x_gradient": ixg,
        "guided_backprop": guided,
        "integrated_gradients": ig_gl,
        "integrated_gradients_riemann_trapezoid": ig_rt,
        "ig_gausslegendre_alphas": torch.tensor(quad["gausslegendre"][0], dtype=torch.float32),
        "ig_gausslegendre_weights": torch.tensor(quad["gausslegendre"][1], dtype=torch.float32),
        "ig_gausslegendre_alphas_f64": torch.tensor(quad["gausslegendre"][0], dtype=torch.float64),
        "ig_gausslegendre_weights_f64": torch.tensor(quad["gausslegendre"][1], dtype=torch.float64),
        "ig_riemann_trapezoid_alphas": torch.tensor(quad["riemann_trapezoid"][0], dtype=torch.float32),
        "ig_riemann_trapezoid_weights": torch.tensor(quad["riemann_trapezoid"][1], dtype=torch.float32),
        "smoothgrad_noise": noise,
        "smoothgrad_sigma": sigma.contiguous(),
    }
    for name in ("gradient", "guided_backprop", "input_x_gradient"):
        mean, sq, var = smooth[name]
        ref[f"smoothgrad_{name}_mean"] = mean
        ref[f"smoothgrad_{name}_sq"] = sq
        ref[f"smoothgrad_{name}_var"] = var
    ref = {k: v.detach().contiguous() for k, v in ref.items()}
    for k, v in ref.items():
        assert torch.isfinite(v.double()).all(), k
        assert v.dtype in (torch.float32, torch.int64, torch.float64), (k, v.dtype)
    save_file(ref, P("reference.safetensors"), metadata={"format": "pt"})

    # ------------------------------------------------------------ preprocessing
    log("preprocessing:")
    import skimage.data
    src = os.path.join(skimage.data.data_dir, "chelsea.png")
    shutil.copyfile(src, P("chelsea.png"))
    upright = Image.open(P("chelsea.png"))
    upright.load()
    assert upright.mode == "RGB", upright.mode
    W, H = upright.size
    # fresh image objects without the original's XMP/ICC metadata for the derived files
    clean = Image.fromarray(np.asarray(upright))

    # EXIF Orientation 6 = "rotate 90 deg clockwise to display": store the pixels
    # rotated 90 deg counter-clockwise (PIL ROTATE_90 is CCW).  4:4:4, q95 so that
    # decoders (libjpeg-turbo vs zune-jpeg) differ only by IDCT rounding.
    stored = clean.transpose(Image.Transpose.ROTATE_90)
    exif = Image.Exif()
    exif[0x0112] = 6
    stored.save(P("chelsea_rot.jpg"), format="JPEG", quality=95, subsampling=0, exif=exif.tobytes())
    rot = Image.open(P("chelsea_rot.jpg"))
    assert rot.size == (H, W) and rot.getexif().get(0x0112) == 6
    rot_upright = ImageOps.exif_transpose(rot)
    assert rot_upright.size == (W, H)
    jpeg_err = np.abs(np.asarray(rot_upright, dtype=np.int16) - np.asarray(clean, dtype=np.int16))
    log(f"  chelsea_rot.jpg after exif_transpose vs chelsea.png: mean|diff|={jpeg_err.mean():.3f} "
        f"max={jpeg_err.max()} (JPEG loss)")
    assert jpeg_err.mean() < 3.0, "EXIF rotation direction wrong?"

    clean.convert("L").save(P("chelsea_grey.png"), format="PNG", optimize=True)
    rgba = clean.convert("RGBA")
    alpha = np.tile(np.linspace(255, 64, W).round().astype(np.uint8), (H, 1))
    rgba.putalpha(Image.fromarray(alpha, mode="L"))
    rgba.save(P("chelsea_rgba.png"), format="PNG", optimize=True)
    rgba_back = Image.open(P("chelsea_rgba.png"))
    assert rgba_back.mode == "RGBA"
    assert np.array_equal(np.asarray(rgba_back.convert("RGB")), np.asarray(clean)), \
        "RGBA file's colour channels must equal chelsea.png"

    tf = transforms.Compose([
        transforms.Resize(256),
        transforms.CenterCrop(224),
        transforms.ToTensor(),
        transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD),
    ])
    pre = {
        "chelsea": tf(Image.open(P("chelsea.png"))),
        "chelsea_rot": tf(ImageOps.exif_transpose(Image.open(P("chelsea_rot.jpg")))),
        "chelsea_grey": tf(Image.open(P("chelsea_grey.png")).convert("RGB")),
    }
    assert torch.equal(tf(Image.open(P("chelsea_rgba.png")).convert("RGB")), pre["chelsea"])
    pre = {k: v.float().contiguous() for k, v in pre.items()}
    for k, v in pre.items():
        assert tuple(v.shape) == (3, 224, 224), (k, v.shape)
    resized = transforms.Resize(256)(Image.open(P("chelsea.png"))).size
    log(f"  Resize(256) of {W}x{H} -> {resized[0]}x{resized[1]} (then CenterCrop 224)")
    save_file(pre, P("preprocess_reference.safetensors"), metadata={"format": "pt"})

    # ------------------------------------------------------------ credits
    with open(P("CREDITS.md"), "w") as f:
        f.write(CREDITS)

    # ------------------------------------------------------------ manifest
    def ckpt_desc(sd):
        return {k: dict(shape=list(v.shape), dtype=str(v.dtype).replace("torch.", "")) for k, v in sd.items()}

    ref_desc = {
        "input": "[2,3,64,64] f32. The k=2 model inputs, already ImageNet-normalised (smooth random RGB images in [0,1] "
                 "from bilinear-upsampled 4x4/8x8/16x16 uniform noise, contrast-stretched, then (v-mean)/std).",
        "logits": "[2,10] f32. narrow_resnet50 (eval mode) logits for `input`.",
        "target": "[2] i64. argmax of `logits`; the class used for every attribution (also for SmoothGrad samples).",
        "logits_from_f16": "[2,10] f32. Logits of the model whose weights are narrow_resnet50_f16.safetensors cast back to f32 "
                           "(i.e. the reference for loading the f16 file), computed in f32.",
        "logits_from_bf16": "[2,10] f32. Same for narrow_resnet50_bf16.safetensors.",
        "resnet18_logits": "[2,10] f32. narrow_resnet18 (eval mode) logits for `input`.",
        "gradient": "[2,3,64,64] f32. d logits[i,target[i]] / d input[i] (captum Saliency, abs=False).",
        "input_x_gradient": "[2,3,64,64] f32. input * gradient (captum InputXGradient).",
        "guided_backprop": "[2,3,64,64] f32. Guided backprop wrt input for target: every ReLU call (all 49, including the "
                           "three calls per Bottleneck of the shared inplace `relu` module and the stem) has backward "
                           "grad_out.clamp(min=0) * (relu_input > 0). Source: " + guided_source + ".",
        "integrated_gradients": "[2,3,64,64] f32. captum IntegratedGradients, zero baseline, n_steps=50, method='gausslegendre': "
                                "x * sum_k w_k * grad(alpha_k * x) with alphas/weights below.",
        "integrated_gradients_riemann_trapezoid": "[2,3,64,64] f32. Same with method='riemann_trapezoid' (NB: captum's "
                                "trapezoid weights are 1/n (halved at both ends), summing to (n-1)/n = 0.98, although the "
                                "alphas are linspace(0,1,n) with spacing 1/(n-1); see ig_riemann_trapezoid_weights).",
        "ig_gausslegendre_alphas": "[50] f32. captum gausslegendre alphas: 0.5*(1+nodes) of numpy leggauss(50), ascending, in (0,1).",
        "ig_gausslegendre_weights": "[50] f32. captum gausslegendre step sizes: 0.5*weights of leggauss(50); sum = 1.",
        "ig_gausslegendre_alphas_f64": "[50] f64. Same as ig_gausslegendre_alphas before rounding to f32.",
        "ig_gausslegendre_weights_f64": "[50] f64. Same as ig_gausslegendre_weights before rounding to f32.",
        "ig_riemann_trapezoid_alphas": "[50] f32. torch.linspace(0,1,50).",
        "ig_riemann_trapezoid_weights": "[50] f32. [1/(2n), 1/n, ..., 1/n, 1/(2n)] with n=50 (captum's definition, sum 0.98).",
        "smoothgrad_noise": "[2,8,3,64,64] f32. The noise actually added: noisy[i,s] = input[i] + smoothgrad_noise[i,s]. "
                            "Already scaled by sigma[i] (N(0,1) * sigma[i]).",
        "smoothgrad_sigma": "[2] f32. sigma[i] = 0.15 * (input[i].max() - input[i].min()) over the 3x64x64 values of image i.",
    }
    for name, desc in (("gradient", "plain input gradient"),
                       ("guided_backprop", "guided-backprop gradient"),
                       ("input_x_gradient", "noisy_input * gradient(noisy_input)")):
        ref_desc[f"smoothgrad_{name}_mean"] = f"[2,3,64,64] f32. mean over the 8 noisy samples of the {desc} (target fixed = `target`); computed as sum*1/8 (captum NoiseTunnel 'smoothgrad')."
        ref_desc[f"smoothgrad_{name}_sq"] = f"[2,3,64,64] f32. mean over samples of ({desc})^2 (captum 'smoothgrad_sq')."
        ref_desc[f"smoothgrad_{name}_var"] = f"[2,3,64,64] f32. _sq - _mean^2 (captum 'vargrad'). Can be slightly negative from rounding where the variance is ~0."

    pre_desc = {
        "chelsea": "[3,224,224] f32. Compose([Resize(256), CenterCrop(224), ToTensor(), Normalize(mean,std)]) of "
                   f"PIL.Image.open('chelsea.png') ({W}x{H} RGB -> Resize gives {resized[0]}x{resized[1]}, PIL bilinear with antialias).",
        "chelsea_rot": "[3,224,224] f32. Same transform of ImageOps.exif_transpose(Image.open('chelsea_rot.jpg')) "
                       "(decoded by Pillow's libjpeg; other JPEG decoders may differ by a few 1/255 levels).",
        "chelsea_grey": "[3,224,224] f32. Same transform of Image.open('chelsea_grey.png').convert('RGB') (three equal channels before Normalize).",
    }

    manifest = {
        "generator": "scripts/make_fixtures.py",
        "versions": {
            "python": sys.version.split()[0], "torch": torch.__version__, "torchvision": torchvision.__version__,
            "captum": captum.__version__, "pillow": PIL.__version__, "numpy": np.__version__,
            "safetensors": safetensors.__version__,
        },
        "determinism": "CPU, float32, torch.set_num_threads(1), torch.use_deterministic_algorithms(True), "
                       f"seeds: model50={SEED_MODEL50}, model18={SEED_MODEL18}, calib={SEED_CALIB}, "
                       f"inputs={SEED_INPUTS}, noise={SEED_NOISE}",
        "models": {
            "narrow_resnet50": {
                "topology": "torchvision ResNet(Bottleneck, [3,4,6,3]) v1.5 (stride on the 3x3 conv; "
                            "downsample = 1x1 conv (downsample.0) + BN (downsample.1))",
                "block": "bottleneck", "layers": [3, 4, 6, 3], "expansion": 4,
                "base_width": BASE_WIDTH, "stem_channels": BASE_WIDTH,
                "stage_planes": [BASE_WIDTH, 2 * BASE_WIDTH, 4 * BASE_WIDTH, 8 * BASE_WIDTH],
                "stage_out_channels": [4 * BASE_WIDTH, 8 * BASE_WIDTH, 16 * BASE_WIDTH, 32 * BASE_WIDTH],
                "fc_in": 32 * BASE_WIDTH, "num_classes": NUM_CLASSES, "bn_eps": 1e-5,
                "relu_calls_per_forward": expected_calls,
                "sanity": sane50,
            },
            "narrow_resnet18": {
                "topology": "torchvision ResNet(BasicBlock, [2,2,2,2])",
                "block": "basic", "layers": [2, 2, 2, 2], "expansion": 1,
                "base_width": BASE_WIDTH, "stem_channels": BASE_WIDTH,
                "stage_planes": [BASE_WIDTH, 2 * BASE_WIDTH, 4 * BASE_WIDTH, 8 * BASE_WIDTH],
                "fc_in": 8 * BASE_WIDTH, "num_classes": NUM_CLASSES, "bn_eps": 1e-5,
                "sanity": sane18,
            },
            "init": build_model.__doc__.strip(),
        },
        "input": {"k": K_INPUTS, "shape": [K_INPUTS, 3, INPUT_HW, INPUT_HW], "normalised": True,
                  "mean": IMAGENET_MEAN, "std": IMAGENET_STD},
        "attribution": {
            "target": "argmax of clean logits (per input), kept fixed for SmoothGrad samples",
            "integrated_gradients": {"baseline": "zeros", "n_steps": IG_STEPS,
                                     "methods": ["gausslegendre (default)", "riemann_trapezoid"],
                                     "internal_batch_size": None, "completeness": completeness},
            "smoothgrad": {"n_samples": SG_SAMPLES, "sigma_rule": "0.15 * (x.max() - x.min()) per input image",
                           "noise": "saved in reference.safetensors (smoothgrad_noise), seed " + str(SEED_NOISE),
                           "sample_order": "noise[i, s] for image i, sample s",
                           "stats": "mean = sum/n, sq = sum(a^2)/n, var = sq - mean^2 (captum vargrad)",
                           "base_methods": ["gradient", "guided_backprop", "input_x_gradient"]},
        },
        "f32_vs_f64_rel_max_diff": conditioning,
        "checks": {k: {"ok": bool(v[0]), "max_abs_diff": v[1], "rel_to_scale": v[2]} for k, v in checks.items()},
        "files": {
            "narrow_resnet50.safetensors": {
                "description": "state_dict of narrow_resnet50 (safetensors.torch.save_file). Contains the 53 int64 "
                               "`*.num_batches_tracked` scalars like torchvision checkpoints; loaders must skip them.",
                "tensors": ckpt_desc(sd50)},
            "narrow_resnet50.pth": {"description": "torch.save(state_dict) of the same model (zip format, pickled OrderedDict; "
                                                   "same keys/values as the safetensors file)."},
            "narrow_resnet50_f16.safetensors": {"description": "same keys; every floating tensor cast to float16 "
                                                               "(num_batches_tracked stays int64). Reference: logits_from_f16."},
            "narrow_resnet50_bf16.safetensors": {"description": "same keys; every floating tensor cast to bfloat16. "
                                                                "Reference: logits_from_bf16."},
            "narrow_resnet18.safetensors": {"description": "state_dict of narrow_resnet18 (wrong architecture for a "
                                                           "ResNet-50 loader; reference logits: resnet18_logits).",
                                            "tensors": ckpt_desc(sd18)},
            "reference.safetensors": {"description": "reference inputs/outputs for narrow_resnet50",
                                      "tensors": {k: dict(tensor_info(v), description=ref_desc[k]) for k, v in ref.items()}},
            "preprocess_reference.safetensors": {"description": "torchvision preprocessing of the sample images",
                                                 "tensors": {k: dict(tensor_info(v), description=pre_desc[k]) for k, v in pre.items()}},
            "chelsea.png": {"description": f"scikit-image data/chelsea.png copied byte-for-byte ({W}x{H} RGB, carries an sRGB ICC profile and XMP)."},
            "chelsea_rot.jpg": {"description": f"chelsea pixels rotated 90 deg counter-clockwise (stored {H}x{W}) with EXIF "
                                               "Orientation=6, JPEG q95 4:4:4. Honouring EXIF (rotate 90 deg clockwise) gives the "
                                               "upright cat. Reference: chelsea_rot."},
            "chelsea_grey.png": {"description": "chelsea converted to mode L (Pillow, ITU-R 601-2 luma). Reference: chelsea_grey."},
            "chelsea_rgba.png": {"description": "chelsea as RGBA; RGB channels identical to chelsea.png, alpha a horizontal "
                                                "ramp 255 -> 64. Dropping alpha (no compositing) must give exactly the `chelsea` reference."},
            "CREDITS.md": {"description": "image credits / licences"},
            **{k: {"description": v} for k, v in broken.items()},
        },
        "derived_on_the_fly": {} if broken else {
            "truncated": "bytes[..len/2] of narrow_resnet50.safetensors",
            "badshape": "narrow_resnet50.safetensors with fc.weight replaced by a [7,256] tensor and fc.bias by [7] "
                        "(all other keys unchanged), re-serialised with the safetensors crate",
        },
    }
    with open(P("manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1, sort_keys=False)
        f.write("\n")

    # ------------------------------------------------------------ summary
    log("")
    log("== reference.safetensors ==")
    for k, v in ref.items():
        i = tensor_info(v)
        extra = f"max|v|={i['max_abs']:.4g}" if "max_abs" in i else f"values={v.tolist()}"
        log(f"  {k:45s} {str(i['shape']):18s} {i['dtype']:8s} {extra}")
    log("== preprocess_reference.safetensors ==")
    for k, v in pre.items():
        i = tensor_info(v)
        log(f"  {k:45s} {str(i['shape']):18s} {i['dtype']:8s} max|v|={i['max_abs']:.4g} "
            f"range=[{v.min().item():.4f},{v.max().item():.4f}]")
    log("== files ==")
    total = 0
    for name in sorted(os.listdir(out)):
        os.chmod(P(name), 0o644)  # safetensors writes 0600
        sz = os.path.getsize(P(name))
        total += sz
        log(f"  {name:42s} {sz:>10,d} B")
    log(f"  {'TOTAL':42s} {total:>10,d} B ({total / 2**20:.2f} MiB)")
    if total > 5 * 2**20:
        log("  WARNING: fixtures exceed 5 MiB")
    bad = [k for k, v in checks.items() if not v[0]]
    log(f"checks: {len(checks) - len(bad)}/{len(checks)} OK" + (f", MISMATCH: {bad}" if bad else ""))
    log(f"done in {time.time() - t_start:.1f} s")
    # A captum/manual mismatch for guided backprop is tolerated (manual is saved);
    # every other mismatch is a failure.
    hard = [k for k in bad if k != "guided_captum_vs_manual"]
    return 1 if hard else 0


CREDITS = """# Fixture credits

## Images

`chelsea.png` is copied unchanged from scikit-image's bundled sample data
(`skimage/data/chelsea.png`, `skimage.data.chelsea()`: "Chelsea the cat").
Photograph by Stéfan van der Walt, released into the public domain under
**CC0** ("No copyright restrictions. CC0 by the photographer (Stefan van der
Walt)", scikit-image documentation).

`chelsea_rot.jpg`, `chelsea_grey.png` and `chelsea_rgba.png` are derived from it
by `scripts/make_fixtures.py` (rotation + EXIF orientation tag, greyscale
conversion, added alpha ramp) and are likewise CC0.

## Models and tensors

`narrow_resnet50*`, `narrow_resnet18*` are randomly initialised (untrained)
networks using torchvision's ResNet topology (torchvision: BSD-3-Clause); no
pretrained weights are included. All `*.safetensors` reference tensors are
generated by `scripts/make_fixtures.py` with PyTorch, torchvision and Captum
(BSD-3-Clause).
"""


if __name__ == "__main__":
    sys.exit(main())
