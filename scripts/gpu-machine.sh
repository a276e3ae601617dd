# Sourced by the scripts that run on the GPU machine (`device` tool): unpacks what travelled with
# the call (.bench's gzipped builds, .gl's Vulkan loader, .whl's Captum) and points Vulkan at the
# NVIDIA driver. Expects $out, the folder that comes back.
# A profiler or autotune setting left by an interrupted call would apply to every run after it.
rm -f cubecl.toml
for binary in .bench/*.gz; do gunzip -kf "$binary" && chmod +x "${binary%.gz}"; done
for deb in .gl/*.deb; do dpkg -x "$deb" /; done
ldconfig
# The NVIDIA ICD (libGLX_nvidia) needs glvnd's dispatch libraries, which the image lacks.
export VK_DRIVER_FILES=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
export __EGL_VENDOR_LIBRARY_FILENAMES=/usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json
{ cat "$VK_DRIVER_FILES"; ldconfig -p | grep -E "libvulkan|libGLX_nvidia|libGLdispatch"; } >> "$out/log.txt"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl
export PYTHONPATH=/tmp/site PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv | tee -a "$out/log.txt"
# labelled FIELDS: the benchmark's JSON report on stdin as one line, the JSON object FIELDS first,
# PyTorch's figures dropped (a line of several runs refers to one report's); an error if none came.
labelled() {
  python3 -c 'import json, sys
try: report = json.load(sys.stdin)
except ValueError: report = {"error": "no report (see log.txt)"}
report.pop("pytorch", None)
print(json.dumps({**json.loads(sys.argv[1]), **report}))' "$1"
}
# room SECONDS STEP: whether STEP, which takes up to SECONDS, still fits in BUDGET_S (counted from
# the script's start); if not, log.txt and stderr say it was skipped (stdout may be a JSON file).
room() {
  local left=$(( ${BUDGET_S:-450} - SECONDS ))
  (( left >= $1 )) || { echo "skipped $2: needs ${1} s, ${left} s left" | tee -a "$out/log.txt" >&2; return 1; }
}
