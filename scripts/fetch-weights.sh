#!/usr/bin/env bash
# Downloads torchvision's ImageNet ResNet-50 (IMAGENET1K_V1, published as safetensors by the
# Hugging Face hub as timm/resnet50.tv_in1k) into weights/resnet50.safetensors, for self-hosting:
# scripts/build-site.sh copies weights/*.safetensors into the site, and the page prefers them.
# The SHA-256 is checked against SMOOTHGRAD_WEIGHTS_SHA256 when set, else against the hub's own
# statement of it (the X-Linked-Etag header of its LFS file); the file must then be a safetensors
# checkpoint with torchvision's ResNet tensor names.
set -euo pipefail
cd "$(dirname "$0")/.."
url=${SMOOTHGRAD_WEIGHTS_URL:-https://huggingface.co/timm/resnet50.tv_in1k/resolve/main/model.safetensors}
out=${1:-weights/resnet50.safetensors}
expected=${SMOOTHGRAD_WEIGHTS_SHA256:-}

command -v curl >/dev/null 2>&1 || { echo "curl is needed (apt-get install curl)" >&2; exit 1; }

# A safetensors file: 8 bytes of little-endian header length, then a JSON header naming tensors.
check_checkpoint() {
  local file=$1 size header_len
  size=$(stat -c %s "$file")
  [ "$size" -gt 1000000 ] || { echo "$file: only $size bytes, not a ResNet-50 checkpoint" >&2; return 1; }
  header_len=$(head -c 8 "$file" | od -An -t u8 --endian=little | tr -d ' ')
  [ "$header_len" -gt 0 ] && [ "$header_len" -lt 10000000 ] || { echo "$file: not a safetensors file" >&2; return 1; }
  head -c $((8 + header_len)) "$file" | tail -c "$header_len" | grep -q '"conv1.weight"' \
    || { echo "$file: a safetensors file without conv1.weight: not a torchvision ResNet" >&2; return 1; }
  head -c $((8 + header_len)) "$file" | tail -c "$header_len" | grep -q '"layer4.2.conv3.weight"' \
    || { echo "$file: no layer4.2.conv3.weight: not a ResNet-50" >&2; return 1; }
}

if [ -z "$expected" ]; then
  if ! headers=$(curl -sSfIL --retry 2 "$url"); then
    echo "cannot reach $url (offline?); the page can still load the weights in the browser later" >&2
    exit 1
  fi
  expected=$(printf '%s\n' "$headers" | tr -d '\r' \
    | awk 'tolower($1) == "x-linked-etag:" { gsub(/"/, "", $2); print $2 }' | tail -n 1)
  if [ -n "$expected" ]; then
    echo "SHA-256 stated by the hub: $expected"
  else
    echo "warning: the hub stated no SHA-256; only the file's format will be checked" >&2
  fi
fi

if [ -f "$out" ] && [ -n "$expected" ] && [ "$(sha256sum "$out" | cut -d' ' -f1)" = "$expected" ]; then
  echo "$out is already there and its SHA-256 matches"
  exit 0
fi

mkdir -p "$(dirname "$out")"
tmp="$out.part"
echo "downloading $url"
curl -fL --retry 3 --progress-bar -o "$tmp" "$url"
actual=$(sha256sum "$tmp" | cut -d' ' -f1)
if [ -n "$expected" ] && [ "$actual" != "$expected" ]; then
  echo "SHA-256 mismatch: got $actual, expected $expected; the download is kept as $tmp" >&2
  exit 1
fi
check_checkpoint "$tmp"
mv "$tmp" "$out"
echo "$out: $(stat -c %s "$out") bytes, SHA-256 $actual"
