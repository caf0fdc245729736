#!/usr/bin/env bash
# Builds SparseOnnx on Debian/Ubuntu and leaves a runnable bin/sparseonnx.
#
#   ./build.sh          install what is missing, restore, build, publish bin/sparseonnx
#   ./build.sh pack     the above, then the NuGet packages and the .NET tool into artifacts/packages
#   ./build.sh test     the above, then every test: native (GoogleTest, also under sanitizers) and .NET (xunit)
#   ./build.sh clean    remove build outputs
#   ./build.sh --gpu [build|pack|test]
#                       also publish the GPU flavour of the command line, bin/sparseonnx-gpu: ONNX Runtime's CUDA 13
#                       build (NuGet Microsoft.ML.OnnxRuntime.Gpu.Linux), so --device cuda runs out of the box on a
#                       machine with CUDA 13 and cuDNN 9
set -euo pipefail
cd "$(dirname "$0")"
ROOT="$(pwd)"
CONFIGURATION="${CONFIGURATION:-Release}"
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1 DOTNET_SKIP_FIRST_TIME_EXPERIENCE=1

log() { printf '\033[1m==> %s\033[0m\n' "$*"; }

# Installs the Debian packages among "$@" that are not installed yet.
ensure_debian_packages() {
    local missing=()
    for package in "$@"; do
        dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    if ! command -v apt-get >/dev/null; then
        echo "error: missing packages ${missing[*]} and no apt-get to install them" >&2
        exit 1
    fi
    local sudo=""
    [ "$(id -u)" -ne 0 ] && sudo="sudo"
    log "Installing Debian packages: ${missing[*]}"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

ensure_dotnet() {
    if ! command -v dotnet >/dev/null; then
        echo "error: the .NET SDK 10 is required (dotnet not found on PATH)." >&2
        echo "       Install it from https://learn.microsoft.com/dotnet/core/install/linux-debian" >&2
        exit 1
    fi
    local major
    major="$(dotnet --version | cut -d. -f1)"
    if [ "$major" -lt 10 ]; then
        echo "error: the .NET SDK 10 or newer is required; found $(dotnet --version)." >&2
        exit 1
    fi
}

# ONNX Runtime 1.29.0, the oldest version the op library supports: its C/C++ headers (the library is built
# against them, so it loads in 1.29 and every later runtime) and its Linux x64 runtime (the native host test
# runs the op in it). The npm package com.github.asus4.onnxruntime carries both.
ORT_NPM_PACKAGE="com.github.asus4.onnxruntime@0.4.9"
ORT_NPM_TARBALL="com.github.asus4.onnxruntime-0.4.9.tgz"
ORT_NPM_SHA256="e59788788818fdde1b2e522e766a21ba0f7d8391de55737abf81e32cc801785d"
ORT_SDK="$ROOT/build/deps/onnxruntime-1.29.0"

fetch_onnxruntime_sdk() {
    if [ -f "$ORT_SDK/include/onnxruntime_c_api.h" ] && [ -f "$ORT_SDK/lib/libonnxruntime.so" ]; then return 0; fi
    command -v npm >/dev/null || ensure_debian_packages npm
    log "Fetching ONNX Runtime 1.29.0 headers and runtime ($ORT_NPM_PACKAGE, ~150 MB, cached in build/deps)"
    local tmp
    tmp="$(mktemp -d)"
    (cd "$tmp" && npm pack --silent "$ORT_NPM_PACKAGE" >/dev/null)
    echo "$ORT_NPM_SHA256  $tmp/$ORT_NPM_TARBALL" | sha256sum -c --quiet -
    local headers="package/Plugins/iOS~/onnxruntime.xcframework/ios-arm64_x86_64-simulator/onnxruntime.framework/Headers"
    tar -xzf "$tmp/$ORT_NPM_TARBALL" -C "$tmp" "$headers" package/Plugins/Linux/x64/libonnxruntime.so
    rm -rf "$ORT_SDK" && mkdir -p "$ORT_SDK/lib"
    cp -r "$tmp/$headers" "$ORT_SDK/include"
    cp "$tmp/package/Plugins/Linux/x64/libonnxruntime.so" "$ORT_SDK/lib/"
    ln -sf libonnxruntime.so "$ORT_SDK/lib/libonnxruntime.so.1"
    rm -rf "$tmp"
    grep -q "define ORT_API_VERSION 29" "$ORT_SDK/include/onnxruntime_c_api.h"
}

# Debian's contrib and non-free components, where nvidia-cuda-toolkit lives, next to the configured main.
enable_debian_nonfree() {
    local sudo=""
    [ "$(id -u)" -ne 0 ] && sudo="sudo"
    if [ -f /etc/apt/sources.list.d/debian.sources ]; then
        [ -f /etc/apt/sources.list.d/sparseonnx-nonfree.sources ] && return 0
        sed -e 's/^Components: .*/Components: contrib non-free/' /etc/apt/sources.list.d/debian.sources \
            | $sudo tee /etc/apt/sources.list.d/sparseonnx-nonfree.sources >/dev/null
    elif [ -f /etc/apt/sources.list ]; then
        [ -f /etc/apt/sources.list.d/sparseonnx-nonfree.list ] && return 0
        sed -n 's/^\(deb[^#]*\) main.*/\1 contrib non-free/p' /etc/apt/sources.list \
            | $sudo tee /etc/apt/sources.list.d/sparseonnx-nonfree.list >/dev/null
    fi
}

# The CUDA compiler for native/cuda_ops: Debian 12's nvidia-cuda-toolkit (CUDA 11.8) with g++-11, its newest
# supported host compiler (~1.6 GB). Installed in CI (CI=true) or with SPARSEONNX_CUDA=1, so that a CUDA
# compile error fails CI; elsewhere the CUDA kernels are built only when nvcc is already installed.
ensure_cuda_toolkit() {
    if [ "${CI:-}" != "true" ] && [ "${SPARSEONNX_CUDA:-0}" != "1" ]; then return 0; fi
    if command -v nvcc >/dev/null && command -v g++-11 >/dev/null; then return 0; fi
    enable_debian_nonfree
    ensure_debian_packages nvidia-cuda-toolkit g++-11
}

# CMake arguments for the CUDA kernels: CUDA 11.x and 12.x reject g++ 12 as host compiler, so use g++-11.
cuda_cmake_args() {
    command -v nvcc >/dev/null || return 0
    if nvcc --version | grep -q "release 1[12]\." && command -v g++-11 >/dev/null; then
        echo "-DCMAKE_CUDA_HOST_COMPILER=$(command -v g++-11)"
    fi
}

build_native() {
    ensure_debian_packages cmake g++ make libgtest-dev
    ensure_cuda_toolkit
    fetch_onnxruntime_sdk
    log "Building the native op library (CMake, $CONFIGURATION)"
    # shellcheck disable=SC2046
    cmake -S src/CustomOps -B build/native -DCMAKE_BUILD_TYPE="$CONFIGURATION" $(cuda_cmake_args) \
        -DORT_INCLUDE_DIR="$ORT_SDK/include" -DORT_LIBRARY="$ORT_SDK/lib/libonnxruntime.so" >/dev/null
    cmake --build build/native -j"$(nproc)"
    mkdir -p artifacts/native
    cp build/native/libsparseonnx_ops.so artifacts/native/
}

run_native_tests() {
    log "Native tests"
    ctest --test-dir build/native --output-on-failure -j"$(nproc)"
    log "Native kernel tests under AddressSanitizer and UndefinedBehaviorSanitizer"
    cmake -S src/CustomOps -B build/native-sanitize -DCMAKE_BUILD_TYPE=Debug -DSPARSEONNX_SANITIZE=ON -DSPARSEONNX_CUDA=OFF \
        -DORT_INCLUDE_DIR="$ORT_SDK/include" >/dev/null
    cmake --build build/native-sanitize -j"$(nproc)" --target sparseonnx_kernel_tests
    build/native-sanitize/sparseonnx_kernel_tests --gtest_brief=1
}

build() {
    # fonts-dejavu-core: the report command's plots (ScottPlot on SkiaSharp) need a system font for their text.
    ensure_debian_packages ca-certificates fonts-dejavu-core
    # ICU: .NET's Unicode normalization (NFC/NFKC normalizers of tokenizer.json files). libicu-dev pulls the runtime
    # library of whichever ICU version the Debian release ships.
    ldconfig -p 2>/dev/null | grep -q 'libicuuc\.so' || ensure_debian_packages libicu-dev
    build_native
    ensure_dotnet
    log "Restoring NuGet packages"
    dotnet restore SparseOnnx.sln
    log "Building ($CONFIGURATION)"
    dotnet build SparseOnnx.sln -c "$CONFIGURATION" --no-restore -warnaserror
    log "Publishing bin/sparseonnx"
    dotnet publish src/Cli/SparseOnnx.Cli.csproj -c "$CONFIGURATION" --no-build -o "$ROOT/artifacts/sparseonnx"
    mkdir -p bin
    cat > bin/sparseonnx <<'WRAPPER'
#!/bin/sh
# Generated by build.sh: runs the published SparseOnnx command line.
here="$(dirname "$(readlink -f "$0")")"
exec dotnet "$here/../artifacts/sparseonnx/sparseonnx.dll" "$@"
WRAPPER
    chmod +x bin/sparseonnx
}

# The NuGet packages, one per library and the command line as a .NET tool, at the version of Version.props.
PACKAGED_PROJECTS=(src/CustomOps/SparseOnnx.CustomOps.csproj src/GraphRewriter/SparseOnnx.GraphRewriter.csproj
    src/Runtime/SparseOnnx.Runtime.csproj src/Calibration/SparseOnnx.Calibration.csproj
    src/Pruning/SparseOnnx.Pruning.csproj src/Cli/SparseOnnx.Cli.csproj)

pack() {
    log "Packing NuGet packages into artifacts/packages"
    rm -rf artifacts/packages
    local metadata=()
    if git rev-parse --git-dir >/dev/null 2>&1; then
        metadata+=("-p:RepositoryCommit=$(git rev-parse HEAD)")
        local remote
        remote="$(git remote get-url origin 2>/dev/null || true)"
        [ -n "$remote" ] && metadata+=("-p:RepositoryUrl=$remote")
    fi
    for project in "${PACKAGED_PROJECTS[@]}"; do
        # The tool is packed per platform (ToolPackageRuntimeIdentifiers), which builds it for that RID: no --no-build.
        local build_flag=(--no-build)
        [[ "$project" == src/Cli/* ]] && build_flag=()
        dotnet pack "$project" -c "$CONFIGURATION" "${build_flag[@]}" "${metadata[@]}" -o artifacts/packages
    done
    # A consumer that restored an earlier build of this same version has it in the NuGet cache, which NuGet would
    # keep using instead of the new package: drop those cached copies.
    local cache version
    cache="$(dotnet nuget locals global-packages --list | sed -n 's/^global-packages: //p')"
    version="$(sed -n 's:.*<SparseOnnxVersion>\(.*\)</SparseOnnxVersion>.*:\1:p' Version.props)"
    if [ -n "$cache" ] && [ -n "$version" ]; then
        for package in artifacts/packages/*.nupkg; do
            local id
            id="$(basename "$package" ".$version.nupkg" | tr '[:upper:]' '[:lower:]')"
            rm -rf "${cache%/}/$id/$version"
        done
    fi
    ls -1 artifacts/packages
}

# The GPU flavour of the command line: the same projects in configuration Gpu with ONNX Runtime's CUDA 13 package
# (restored into build/gpu, beside the CPU build's assets: Directory.Build.props). Packaging.Tests' GpuFlavourTests
# publishes it the same way.
build_gpu_cli() {
    log "Publishing the GPU flavour of the command line (ONNX Runtime CUDA 13 build) to artifacts/sparseonnx-gpu"
    dotnet publish src/Cli/SparseOnnx.Cli.csproj -c Gpu -p:Optimize=true -p:SparseOnnxGpu=true -o "$ROOT/artifacts/sparseonnx-gpu"
    cat > bin/sparseonnx-gpu <<'WRAPPER'
#!/bin/sh
# Generated by build.sh --gpu: runs the GPU flavour of the SparseOnnx command line.
here="$(dirname "$(readlink -f "$0")")"
exec dotnet "$here/../artifacts/sparseonnx-gpu/sparseonnx.dll" "$@"
WRAPPER
    chmod +x bin/sparseonnx-gpu
}

run_tests() {
    run_native_tests
    log "Running .NET tests"
    dotnet test SparseOnnx.sln -c "$CONFIGURATION" --no-build
}

GPU=0
if [ "${1:-}" = "--gpu" ]; then GPU=1; shift; fi
build_all() {
    build
    if [ "$GPU" = 1 ]; then build_gpu_cli; fi
}

case "${1:-build}" in
    build) build_all ;;
    pack) build_all; pack ;;
    test) build_all; pack; run_tests ;;
    clean) rm -rf artifacts bin build/native build/native-sanitize build/gpu; find src tests examples -type d \( -name bin -o -name obj \) -prune -exec rm -rf {} + ;;
    *) echo "usage: $0 [--gpu] [build|pack|test|clean]" >&2; exit 2 ;;
esac
