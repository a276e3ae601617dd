#!/usr/bin/env bash
# The speed run on the GPU machine (`device` tool): PyTorch eager + Captum and the project's
# native wgpu benchmark (Vulkan) side by side, JSON into $OUT: as shipped (h100.json); the
# Winograd lowering with cubek's products and ours (h100-winograd.json); its matrix products
# alone with cubek's kernels and ours (h100-products.jsonl); our own product kernel in whole
# passes, both lowerings (h100-tiled.json); the channels-last lowering, each of cubek's
# matrix-product strategies in turn and the shipped one in f16 (h100-matmul.json, one JSON report
# a line); with burn's autotune (h100-autotune.json) and its choices; kernel profiles of the
# shipped build (profile.log) and of our kernel with channels-last (profile-tiled.log).
# Every report says whether its gradient matches the CPU backend's. Steps run most wanted first,
# each only if the time it needs is left of BUDGET_S (default 450 s, inside a 480 s call), so that
# a call that runs short still brings back complete files; log.txt names what was skipped.
# Prepare here first:
#   scripts/bench-prepare.sh   (builds .bench/bench*, fetches .gl/libvulkan1 and .whl/captum)
# then run on the device, carrying .bench .gl .whl:  scripts/bench-h100.sh
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-/tmp/bench-out}
mkdir -p "$out"
source scripts/gpu-machine.sh
# A short smoke run first: if Vulkan is not found, say so before the long runs.
timeout 90 .bench/bench --backend wgpu --runs 1 --samples 2 --micro-batches 2 | tee -a "$out/log.txt"
# Each build runs beside PyTorch into h100<suffix>.json, bounded so that PyTorch's figures come
# back even if it is very slow.
beside_pytorch() { # $1: a build in .bench; the rest: more arguments for bench.py
  local build=$1
  shift
  python3 scripts/bench.py --project "timeout ${PROJECT_TIMEOUT:-240} .bench/$build --backend wgpu" --runs "${RUNS:-5}" "$@" \
    > "$out/h100${build#bench}.json" 2> >(tee -a "$out/log.txt" >&2)
  cat "$out/h100${build#bench}.json"
}
# One configuration against the PyTorch figures of h100.json (not repeated on each line), one
# JSON line labelled with what it is.
compared() { # $1: the label (JSON), $2: a build in .bench, $3: micro-batches; the rest: more arguments for the benchmark
  local label=$1 build=$2 micro_batches=$3
  shift 3
  local what="$label $build $micro_batches $*"
  room 70 "$what" || return 0
  echo "$what" >> "$out/log.txt"
  python3 scripts/bench.py --reference "$out/h100.json" --runs 3 --micro-batches "$micro_batches" \
    --project "timeout 60 .bench/$build --backend wgpu $*" 2>> "$out/log.txt" | labelled "$label"
}
# The matrix products are most of the GPU time: each of cubek's strategies in turn for every
# product ("default" is the shipped choice by shape, "cubek-auto" cubek's default as shipped
# before it), timed by the build where CUBEK_MATMUL_AUTO picks one.
strategy() { # $1: strategy; the rest: as for compared, from the micro-batches
  local name=$1
  shift
  CUBEK_MATMUL_AUTO=${name#default} compared "{\"matmul_strategy\": \"$name\"}" bench-matmul "$@"
}
# Our own product kernel (`--products`, crates/smoothgrad/src/tiled_product.rs) in the shipped build.
products() { # $1: which (tiled, tiled-v4, tiled[-v4]-large, -tall, -wide, -small); the rest: as for compared, from the micro-batches
  local name=$1
  shift
  compared "{\"products\": \"$name\"}" bench "$@" --products "$name"
}
# 1. The shipped build (bench) beside PyTorch: every figure with its ratio to PyTorch's.
beside_pytorch bench
# 1b. Winograd's minimal filtering for the 3×3 stride-1 convolutions and their input gradients
# (`--conv-lowering winograd`, crates/smoothgrad/src/winograd/), untimed on a GPU until this run:
# F(4×4, 3×3) on 56×56 and 28×28 (4 times fewer multiply-adds there), F(2×2, 3×3) on 14×14 and
# 7×7 (2.25 times), about 23 % fewer in all; with cubek's products at every micro-batch (batch 1:
# beside the direct kernel of the shipped build), then with ours.
{ products cubek 1,10,25,50 --conv-lowering winograd
  products tiled-v4 10,25,50 --conv-lowering winograd; } | tee "$out/h100-winograd.json"
# 2. Its matrix products alone (most of its GPU time), replayed with cubek's kernels (the shipped
# choice, first: the others' outputs are checked against its) and ours, per product and weighed by
# how often a gradient and SmoothGrad-50 run it (h100-products.jsonl: for each table its settings,
# a line per product, its totals): micro-batch 50 in both lowerings, then 10.
table() { # $1: our kernel settings beside cubek's; the rest: more arguments for `bench products`
  local kernels=$1
  shift
  room 90 "products $*" || return 0
  echo "products $kernels $*" >> "$out/log.txt"
  timeout 90 .bench/bench products --runs 3 --launches 10 --kernels "cubek,$kernels" "$@" 2>> "$out/log.txt" ||
    echo "{\"error\": \"bench products $* ended with $? (see log.txt)\"}"
}
# The vectorized tiles that suit each lowering's products (128×64 for channels-last's 64 channels).
{ table tiled,tiled-v4,tiled-v4-large,tiled-v4-small --micro-batch 50
  table tiled,tiled-v4,tiled-v4-large,tiled-v4-tall,tiled-v4-small --micro-batch 50 --conv-lowering channels-last
  table tiled,tiled-v4 --micro-batch 10
  table tiled,tiled-v4,tiled-v4-large --micro-batch 50 --conv-lowering winograd; } | tee "$out/h100-products.jsonl"
# 3. Where its time goes: its kernel times (the logger loses the last ones at exit), as shipped
# (profile.log), and in step 4 with our product kernel and channels-last (profile-tiled.log).
profile() { # $1: the log's name; the rest: more arguments for the benchmark
  local log=$1
  shift
  room 70 "profile $log" || return 0
  printf '[profiling.logger]\nlevel = "basic"\nfile = "%s"\n' "$out/$log" > cubecl.toml
  timeout 60 .bench/bench --backend wgpu --runs 3 --micro-batches 50 "$@" > /dev/null
  rm -f cubecl.toml
}
profile profile.log
# 4. Our own product kernel in whole passes, untimed on a GPU until this run: vectorized and
# scalar, the tile chosen by shape, in both lowerings (channels-last with cubek's kernels as the
# control), then each vectorized tile that suits channels-last's products alone, then batch 1
# (h100-tiled.json); then its profile.
{ products tiled-v4 10,25,50
  products tiled 10,25,50
  products cubek 10,25,50 --conv-lowering channels-last
  products tiled-v4 10,25,50 --conv-lowering channels-last
  products tiled 10,25,50 --conv-lowering channels-last
  for tile in large tall small; do
    products "tiled-v4-$tile" 10,50 --conv-lowering channels-last
  done
  products tiled-v4 1; } | tee "$out/h100-tiled.json"
# Its kernel times with channels-last (also what that lowering spends outside the products).
profile profile-tiled.log --conv-lowering channels-last --products tiled-v4
if [ -x .bench/bench-matmul ]; then
  # 5. The channels-last lowering (`--conv-lowering channels-last`: from micro-batch 10 on, one
  # product over the batch per convolution), with the shipped choice of kernel and with the
  # strategies that suit large products; its batched gradient against the CPU's.
  for name in default simple-unit-min double-unit-max gemm-k1024; do
    strategy "$name" 10,25,50 --conv-lowering channels-last
  done | tee "$out/h100-matmul.json"
  # 6. The shipped choice computing in f16 (`--precision f16`, the page's option on GPUs with
  # shader-f16): its figures beside h100.json's f32 ones, and its gradient against the CPU's f32.
  # 7. Then every strategy in turn: cubek's former default first, then the page's kernels
  # (no-subgroups), the control (default) last.
  { strategy default 1,10,50 --precision f16
    for name in cubek-auto no-subgroups simple-unit-min double-unit-max double-unit-min gemm gemm-k1024 default; do
      strategy "$name" 10,50
    done; } | tee -a "$out/h100-matmul.json"
  # Batch 1, the page's micro-batch on WebGPU's default limits, with the 3×3 and 7×7 convolutions
  # unfolded too (direct as shipped): the strategies that suit long, narrow products.
  for name in default no-subgroups cubek-auto gemm gemm-k1024; do
    strategy "$name" 1 --conv-lowering unfolded
  done | tee -a "$out/h100-matmul.json"
fi
# 8. Any other build put in .bench to compare, against the same PyTorch figures.
for variant in $(ls .bench | grep -v -e '\.gz$' -e '^bench$' -e '^bench-matmul$' -e '^bench-autotune$'); do
  room 250 "$variant" && beside_pytorch "$variant" --reference "$out/h100.json"
done
# 9. burn's autotune (against h100.json's PyTorch figures) and its choices (autotune-decisions.jsonl,
# one per tuned shape): which kernels win on this GPU, the shortlist for a build without autotune.
if [ -x .bench/bench-autotune ] && room 250 autotune; then
  printf '[autotune.decisions]\nfile = "%s"\n[autotune.logger]\nlevel = "minimal"\nfile = "%s"\n' \
    "$out/autotune-decisions.jsonl" "$out/autotune.log" > cubecl.toml
  beside_pytorch bench-autotune --reference "$out/h100.json"
  rm -f cubecl.toml
fi
# Files: log.txt, h100.json, h100-winograd.json, h100-products.jsonl, profile.log, h100-tiled.json,
# profile-tiled.log, h100-matmul.json, then one per extra build and autotune's three (the device
# tool has brought back at most 8).
ls "$out"
