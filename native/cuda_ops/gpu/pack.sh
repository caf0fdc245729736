#!/usr/bin/env bash
# Prepares what a GPU machine needs to build and check the CUDA op (it has nvcc, cmake and a Python environment
# with the CUDA 13 libraries, but no network, no ONNX Runtime and no GoogleTest), in parts that each fit in one
# transfer next to the working tree (a call carries 64 MB in all; the tree itself is ~32 MB):
#   build/gpu-carry/part-1        ORT 1.29's headers and CPU runtime, and GoogleTest's sources (~10 MB): enough
#                                 for the kernel tests and the kernel-level benchmark (against cuBLAS)
#   build/gpu-carry/part-2        the reference model rewritten by `sparseonnx sparsify` (calibrated thresholds at
#                                 50%), for the model check (the dense model is in the tree)
#   build/gpu-carry/part-3 ...    ORT's CUDA 13 provider (230 MB, ~165 MB compressed), for the ORT host tests on
#                                 CUDA, the model check and the benchmark against ORT's own CUDA MatMul
#
#   native/cuda_ops/gpu/pack.sh            # here, after ./build.sh (which fetched the ORT 1.29 headers and runtime)
#
# Then on the GPU machine, from the repository root, once per part (each call carrying one part):
#   native/cuda_ops/gpu/check.sh receive build/gpu-carry/part-I
# and finally:
#   native/cuda_ops/gpu/check.sh run "$OUT"     # builds, runs the CUDA tests and the benchmark, results in $OUT
set -euo pipefail
cd "$(dirname "$0")/../../.."
ROOT="$(pwd)"
ORT_SDK="$ROOT/build/deps/onnxruntime-1.29.0"
ORT_CUDA="$ROOT/build/deps/onnxruntime-1.29.0-cuda"
GPU_NPM_PACKAGE="com.github.asus4.onnxruntime.linux-x64-gpu@0.4.9"
GPU_NPM_TARBALL="com.github.asus4.onnxruntime.linux-x64-gpu-0.4.9.tgz"
GPU_NPM_SHA256="2b459e0c17f340c92970c10ed86de4f37a3009f93c14053e6ad4334cbb6be412"
# What a call can carry beside the tracked tree, with a margin.
TREE_BYTES="$(git ls-files -z | xargs -0 du -cb | tail -1 | cut -f1)"
PART_BYTES=$(( (60 << 20) - TREE_BYTES ))
CARRY="$ROOT/build/gpu-carry"

[ -f "$ORT_SDK/lib/libonnxruntime.so" ] && [ -x bin/sparseonnx ] \
    || { echo "error: run ./build.sh first (it fetches ONNX Runtime 1.29 and builds bin/sparseonnx)" >&2; exit 1; }
[ -d /usr/src/googletest ] || { echo "error: GoogleTest's sources are needed (Debian: libgtest-dev, which build.sh installs)" >&2; exit 1; }

if [ ! -f "$ORT_CUDA/libonnxruntime_providers_cuda.so" ]; then
    echo "==> Fetching ONNX Runtime 1.29's CUDA 13 provider ($GPU_NPM_PACKAGE, ~180 MB)"
    tmp="$(mktemp -d)"
    (cd "$tmp" && npm pack --silent "$GPU_NPM_PACKAGE" >/dev/null)
    echo "$GPU_NPM_SHA256  $tmp/$GPU_NPM_TARBALL" | sha256sum -c --quiet -
    mkdir -p "$ORT_CUDA"
    tar -xzf "$tmp/$GPU_NPM_TARBALL" -C "$ORT_CUDA" --strip-components=4 \
        package/Plugins/Linux/x64/libonnxruntime_providers_cuda.so package/Plugins/Linux/x64/libonnxruntime_providers_shared.so
    rm -rf "$tmp"
fi

echo "==> Packing into $CARRY (parts of $((PART_BYTES >> 20)) MB)"
rm -rf "$CARRY" && mkdir -p "$CARRY/part-1" "$CARRY/staging"
tar -C "$ROOT/build/deps" -cf "$CARRY/staging/base.tar" onnxruntime-1.29.0/include onnxruntime-1.29.0/lib/libonnxruntime.so
tar -C /usr/src -rf "$CARRY/staging/base.tar" googletest
xz -6 -T"$(nproc)" -c "$CARRY/staging/base.tar" > "$CARRY/part-1/base.tar.xz"
sha256sum "$CARRY/part-1/base.tar.xz" | cut -d' ' -f1 > "$CARRY/part-1/base.sha256"
[ "$(stat -c %s "$CARRY/part-1/base.tar.xz")" -le "$PART_BYTES" ] || { echo "error: part 1 is larger than a transfer" >&2; exit 1; }

echo "==> The reference model, rewritten at 50% with calibrated thresholds"
mkdir -p "$CARRY/part-2" "$CARRY/staging/model"
bin/sparseonnx sparsify models/llama-brown/model.onnx -o "$CARRY/staging/model/model.onnx" --mode threshold --sparsity 0.5 \
    --calibration models/llama-brown/data/valid.txt --spontaneous closed-form --samples 16 --validation-samples 8 >/dev/null
tar -C "$CARRY/staging" -cJf "$CARRY/part-2/model.tar.xz" model/model.onnx
sha256sum "$CARRY/part-2/model.tar.xz" | cut -d' ' -f1 > "$CARRY/part-2/model.sha256"

tar -C "$ORT_CUDA" -cf "$CARRY/staging/provider.tar" libonnxruntime_providers_cuda.so libonnxruntime_providers_shared.so
xz -6 -T"$(nproc)" -c "$CARRY/staging/provider.tar" > "$CARRY/staging/provider.tar.xz"
(cd "$CARRY/staging" && split -b "$PART_BYTES" -d -a 2 provider.tar.xz provider.tar.xz.)
sha256sum "$CARRY/staging/provider.tar.xz" | cut -d' ' -f1 > "$CARRY/provider.sha256"
index=3
for chunk in "$CARRY"/staging/provider.tar.xz.*; do
    mkdir -p "$CARRY/part-$index"
    mv "$chunk" "$CARRY/part-$index/"
    cp "$CARRY/provider.sha256" "$CARRY/part-$index/"
    index=$((index + 1))
done
rm -rf "$CARRY/staging" "$CARRY/provider.sha256"
du -sh "$CARRY"/part-*
echo "Carry each part in its own call: native/cuda_ops/gpu/check.sh receive build/gpu-carry/part-I; then check.sh run \"\$OUT\"."
