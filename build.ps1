# Builds SparseOnnx on Windows and leaves a runnable bin\sparseonnx.cmd.
#
#   .\build.ps1          restore, build, publish bin\sparseonnx.cmd
#   .\build.ps1 pack     the above, then the NuGet packages and the .NET tool into artifacts\packages
#   .\build.ps1 test     the above, then the packages, then every test
#   .\build.ps1 clean    remove build outputs
param([ValidateSet("build", "pack", "test", "clean")][string]$Target = "build")
$ErrorActionPreference = "Stop"
Set-Location $PSScriptRoot
$Configuration = if ($env:CONFIGURATION) { $env:CONFIGURATION } else { "Release" }
$env:DOTNET_CLI_TELEMETRY_OPTOUT = "1"
$env:DOTNET_NOLOGO = "1"

function Invoke-Checked([string]$Command, [string[]]$Arguments) {
    & $Command @Arguments
    if ($LASTEXITCODE -ne 0) { throw "$Command $($Arguments -join ' ') failed with exit code $LASTEXITCODE" }
}

# ONNX Runtime 1.29.0 headers (the op library is built against the oldest runtime it supports), from the
# npm package that carries them; checksum pinned as in build.sh.
$OrtNpmPackage = "com.github.asus4.onnxruntime@0.4.9"
$OrtNpmTarball = "com.github.asus4.onnxruntime-0.4.9.tgz"
$OrtNpmSha256 = "e59788788818fdde1b2e522e766a21ba0f7d8391de55737abf81e32cc801785d"
$OrtSdk = Join-Path $PSScriptRoot "build/deps/onnxruntime-1.29.0"

function Get-OnnxRuntimeHeaders {
    if (Test-Path (Join-Path $OrtSdk "include/onnxruntime_c_api.h")) { return }
    if (-not (Get-Command npm -ErrorAction SilentlyContinue)) { throw "npm is required to fetch the ONNX Runtime headers (https://nodejs.org)." }
    $tmp = Join-Path ([System.IO.Path]::GetTempPath()) ([System.Guid]::NewGuid().ToString("N"))
    New-Item -ItemType Directory -Path $tmp | Out-Null
    Push-Location $tmp
    try { Invoke-Checked npm @("pack", "--silent", $OrtNpmPackage) } finally { Pop-Location }
    $hash = (Get-FileHash -Algorithm SHA256 (Join-Path $tmp $OrtNpmTarball)).Hash.ToLowerInvariant()
    if ($hash -ne $OrtNpmSha256) { throw "Checksum mismatch for $OrtNpmTarball ($hash)." }
    $headers = "package/Plugins/iOS~/onnxruntime.xcframework/ios-arm64_x86_64-simulator/onnxruntime.framework/Headers"
    Invoke-Checked tar @("-xzf", (Join-Path $tmp $OrtNpmTarball), "-C", $tmp, $headers)
    New-Item -ItemType Directory -Force -Path $OrtSdk | Out-Null
    Copy-Item -Recurse (Join-Path $tmp $headers) (Join-Path $OrtSdk "include")
    Remove-Item -Recurse -Force $tmp
}

function Build-Native {
    if (-not (Get-Command cmake -ErrorAction SilentlyContinue)) { throw "CMake is required to build the op library (https://cmake.org)." }
    Get-OnnxRuntimeHeaders
    Invoke-Checked cmake @("-S", "src/CustomOps", "-B", "build/native", "-DBUILD_TESTING=OFF", "-DORT_INCLUDE_DIR=$OrtSdk/include")
    Invoke-Checked cmake @("--build", "build/native", "--config", $Configuration)
    New-Item -ItemType Directory -Force -Path artifacts/native | Out-Null
    Get-ChildItem -Recurse -Path build/native -Include sparseonnx_ops.dll | Select-Object -First 1 | Copy-Item -Destination artifacts/native/
}

function Build {
    Build-Native
    if (-not (Get-Command dotnet -ErrorAction SilentlyContinue)) {
        throw "The .NET SDK 10 is required (dotnet not found on PATH): https://learn.microsoft.com/dotnet/core/install/windows"
    }
    $major = [int]((dotnet --version).Split(".")[0])
    if ($major -lt 10) { throw "The .NET SDK 10 or newer is required; found $(dotnet --version)." }
    Invoke-Checked dotnet @("restore", "SparseOnnx.sln")
    Invoke-Checked dotnet @("build", "SparseOnnx.sln", "-c", $Configuration, "--no-restore", "-warnaserror")
    Invoke-Checked dotnet @("publish", "src/Cli/SparseOnnx.Cli.csproj", "-c", $Configuration, "--no-build", "-o", "$PSScriptRoot/artifacts/sparseonnx")
    New-Item -ItemType Directory -Force -Path bin | Out-Null
    Set-Content -Path bin/sparseonnx.cmd -Encoding ascii -Value "@echo off`r`ndotnet `"%~dp0..\artifacts\sparseonnx\sparseonnx.dll`" %*"
}

# The NuGet packages at the version of Version.props (see build.sh's pack for what each holds).
function Pack {
    Remove-Item -Recurse -Force -ErrorAction SilentlyContinue artifacts/packages
    $commit = (git rev-parse HEAD 2>$null)
    $metadata = @(); if ($commit) { $metadata += "-p:RepositoryCommit=$commit" }
    foreach ($project in @("src/CustomOps/SparseOnnx.CustomOps.csproj", "src/GraphRewriter/SparseOnnx.GraphRewriter.csproj",
            "src/Runtime/SparseOnnx.Runtime.csproj", "src/Calibration/SparseOnnx.Calibration.csproj",
            "src/Pruning/SparseOnnx.Pruning.csproj")) {
        Invoke-Checked dotnet (@("pack", $project, "-c", $Configuration, "--no-build", "-o", "artifacts/packages") + $metadata)
    }
    # The tool is packed per platform, which builds it for that RID: no --no-build.
    Invoke-Checked dotnet (@("pack", "src/Cli/SparseOnnx.Cli.csproj", "-c", $Configuration, "-o", "artifacts/packages") + $metadata)
}

switch ($Target) {
    "build" { Build }
    "pack" { Build; Pack }
    "test" { Build; Pack; Invoke-Checked dotnet @("test", "SparseOnnx.sln", "-c", $Configuration, "--no-build") }
    "clean" {
        Remove-Item -Recurse -Force -ErrorAction SilentlyContinue artifacts, bin, build/native, build/gpu
        Get-ChildItem -Path src, tests -Recurse -Directory -Include bin, obj | Remove-Item -Recurse -Force
    }
}
