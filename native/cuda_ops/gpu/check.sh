#!/usr/bin/env bash
# Builds the op library with this machine's nvcc and checks the CUDA op on its GPU: the kernel tests, the ORT
# host tests on the CUDA provider, and the benchmark. What it needs arrives in parts made by pack.sh.
#
#   native/cuda_ops/gpu/check.sh receive build/gpu-carry/part-I   # keep one carried part (outside the tree)
#   native/cuda_ops/gpu/check.sh run OUT [bench arguments...]     # assemble, build, test, bench; results in OUT
#
# Part 1 alone is enough for a first run (kernel tests and the kernel-level benchmark against cuBLAS, with a
# sweep of the gather's grid size); with every part, the ORT host tests on CUDA and the ORT-level benchmark
# run too.
set -euo pipefail
cd "$(dirname "$0")/../../.."
ROOT="$(pwd)"
STAGE="${SPARSEONNX_GPU_STAGE:-/tmp/sparseonnx-gpu}"

receive() {
    mkdir -p "$STAGE/parts"
    cp "$1"/* "$STAGE/parts/"
    ls -la "$STAGE/parts"
}

# Checks a compressed tar against its checksum file and unpacks it into $STAGE/deps.
unpack() {
    local archive="$1" checksum="$2"
    [ "$(sha256sum "$archive" | cut -d' ' -f1)" = "$(cat "$checksum")" ] \
        || { echo "error: $(basename "$archive") does not match its checksum: a part is missing or damaged" >&2; exit 1; }
    mkdir -p "$STAGE/deps"
    tar -C "$STAGE/deps" -xJf "$archive"
}

# The directories of the CUDA 13 libraries in this machine's Python environment (nvidia/*/lib).
cuda_library_path() {
    python3 - <<'PY' 2>/dev/null || true
import glob, os, site, sys
roots = set(site.getsitepackages() + [site.getusersitepackages()] + sys.path)
dirs = sorted({d for r in roots if r and os.path.isdir(r) for d in glob.glob(os.path.join(r, "nvidia", "*", "lib"))})
print(":".join(dirs))
PY
}

run() {
    local out="$1"; shift
    mkdir -p "$out"
    local ort="$STAGE/deps/onnxruntime-1.29.0"
    if [ ! -f "$ort/lib/libonnxruntime.so" ]; then
        [ -f "$STAGE/parts/base.tar.xz" ] || { echo "error: part 1 (base.tar.xz) has not been received" >&2; exit 1; }
        unpack "$STAGE/parts/base.tar.xz" "$STAGE/parts/base.sha256"
        ln -sf libonnxruntime.so "$ort/lib/libonnxruntime.so.1"
    fi
    if [ ! -f "$ort/lib/libonnxruntime_providers_cuda.so" ] && ls "$STAGE"/parts/provider.tar.xz.* >/dev/null 2>&1; then
        cat "$STAGE"/parts/provider.tar.xz.* > "$STAGE/provider.tar.xz"
        unpack "$STAGE/provider.tar.xz" "$STAGE/parts/provider.sha256" && mv "$STAGE"/deps/libonnxruntime_providers_*.so "$ort/lib/"
        rm -f "$STAGE/provider.tar.xz"
    fi
    [ -f "$ort/lib/libonnxruntime_providers_cuda.so" ] \
        || echo "note: ORT's CUDA provider was not received: the ORT-level tests and benchmark will be skipped"
    if [ ! -f "$STAGE/deps/model/model.onnx" ] && [ -f "$STAGE/parts/model.tar.xz" ]; then
        unpack "$STAGE/parts/model.tar.xz" "$STAGE/parts/model.sha256"
    fi
    if [ ! -f "$STAGE/gtest/lib/libgtest.a" ] && [ ! -f "$STAGE/gtest/lib64/libgtest.a" ]; then
        echo "==> Building GoogleTest"
        cmake -S "$STAGE/deps/googletest" -B "$STAGE/gtest-build" -DCMAKE_BUILD_TYPE=Release -DCMAKE_INSTALL_PREFIX="$STAGE/gtest" >/dev/null
        cmake --build "$STAGE/gtest-build" -j"$(nproc)" --target install >/dev/null
    fi
    local cuda_libs
    cuda_libs="$(cuda_library_path)"
    export LD_LIBRARY_PATH="$ort/lib${cuda_libs:+:$cuda_libs}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    export SPARSEONNX_ORT_CUDA_PROVIDER="$ort/lib/libonnxruntime_providers_cuda.so"
    if [ -f "$SPARSEONNX_ORT_CUDA_PROVIDER" ]; then  # what the provider cannot find, to fix in one round
        { echo "LD_LIBRARY_PATH=$LD_LIBRARY_PATH"; ldd "$SPARSEONNX_ORT_CUDA_PROVIDER"; } > "$out/provider_ldd.txt" 2>&1 || true
        grep "not found" "$out/provider_ldd.txt" && echo "warning: the CUDA provider misses the libraries above" || true
    fi

    # nvcc: on the PATH, in the usual toolkit folder, or from the Python environment's nvidia-cuda-nvcc wheel.
    if ! command -v nvcc >/dev/null; then
        local candidate
        for candidate in /usr/local/cuda/bin/nvcc $(python3 -c "import glob,site; print(' '.join(glob.glob(site.getsitepackages()[0] + '/nvidia/cu*/bin/nvcc')))" 2>/dev/null); do
            [ -x "$candidate" ] && { export PATH="$(dirname "$candidate"):$PATH"; break; }
        done
    fi
    echo "==> Building with $(nvcc --version | tail -1)"
    local build="$STAGE/build"
    cmake -S "$ROOT/src/CustomOps" -B "$build" -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$STAGE/gtest" \
        -DSPARSEONNX_CUDA_WARNINGS_AS_ERRORS=OFF \
        -DORT_INCLUDE_DIR="$ort/include" -DORT_LIBRARY="$ort/lib/libonnxruntime.so" >"$out/cmake.txt" 2>&1 \
        || { tail -30 "$out/cmake.txt"; exit 1; }
    cmake --build "$build" -j"$(nproc)" > "$out/build.txt" 2>&1 || { tail -40 "$out/build.txt"; exit 1; }
    grep -i "warning" "$out/build.txt" | head -20 || true
    cp "$build/libsparseonnx_ops.so" "$out/" || true

    { nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm,clocks.max.mem --format=csv || true; } > "$out/gpu.txt"
    local status=0
    echo "==> CUDA kernel tests"
    SPARSEONNX_REQUIRE_GPU=1 "$build/sparseonnx_cuda_kernel_tests" 2>&1 | tee "$out/cuda_kernel_tests.txt" | tail -15 || status=1
    echo "==> ORT host tests (CPU and CUDA providers)"
    local require=""
    [ -f "$ort/lib/libonnxruntime_providers_cuda.so" ] && require=1  # with the provider here, a skip is a failure
    SPARSEONNX_REQUIRE_GPU="$require" "$build/sparseonnx_ort_host_tests" 2>&1 | tee "$out/ort_host_tests.txt" | tail -15 || status=1
    if [ -f "$ort/lib/libonnxruntime_providers_cuda.so" ] && [ -f "$STAGE/deps/model/model.onnx" ]; then
        echo "==> The reference model, dense and rewritten, on CUDA against the CPU"
        (cd "$out" && "$build/sparseonnx_cuda_model_check" "$ROOT/models/llama-brown/model.onnx" "$STAGE/deps/model/model.onnx") 2>&1 \
            | tee "$out/model_check.txt" || status=1
    fi
    echo "==> Benchmark"
    "$build/sparseonnx_cuda_bench" --json "$out/bench.json" --blocks-per-sm 2,4,8 "$@" 2>&1 | tee "$out/bench.txt" || status=1
    return $status
}

case "${1:-}" in
    receive) receive "$2" ;;
    run) shift; run "$@" ;;
    *) echo "usage: $0 receive PART_DIR | run OUT [bench arguments...]" >&2; exit 2 ;;
esac
