#!/usr/bin/env bash
# The speed run on the GPU machine (`device` tool): PyTorch eager + Captum and the project's
# native wgpu benchmark (Vulkan) side by side, JSON into $OUT: as shipped (h100.json) and with
# burn's autotune (h100-autotune.json, which also says whether its gradient matches the CPU's).
# Prepare here first:
#   scripts/bench-prepare.sh   (builds .bench/bench*, fetches .gl/libvulkan1 and .whl/captum)
# then run on the device, carrying .bench .gl .whl:  scripts/bench-h100.sh
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-/tmp/bench-out}
mkdir -p "$out"
for binary in .bench/*.gz; do gunzip -kf "$binary" && chmod +x "${binary%.gz}"; done
for deb in .gl/*.deb; do dpkg -x "$deb" /; done
ldconfig
# The NVIDIA ICD (libGLX_nvidia) needs glvnd's dispatch libraries, which the image lacks.
export VK_DRIVER_FILES=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
export __EGL_VENDOR_LIBRARY_FILENAMES=/usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json
cat "$VK_DRIVER_FILES"; ldconfig -p | grep -E "libvulkan|libGLX_nvidia|libGLdispatch" | tee "$out/libs.txt"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl
export PYTHONPATH=/tmp/site PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv | tee "$out/gpu.txt"
# A short smoke run first: if Vulkan is not found, say so before the long runs.
timeout 120 .bench/bench --backend wgpu --runs 1 --samples 2 --micro-batches 2 | tee "$out/smoke.json"
# The project's run is bounded so that PyTorch's figures come back even if it is very slow.
for variant in bench bench-autotune; do
  [ -x ".bench/$variant" ] || continue
  name=h100${variant#bench}
  python3 scripts/bench.py --project "timeout ${PROJECT_TIMEOUT:-240} .bench/$variant --backend wgpu" --runs "${RUNS:-10}" \
    > "$out/$name.json" 2> >(tee "$out/$name.log" >&2)
  cat "$out/$name.json"
done
