# Builds SparseOnnx on Windows and leaves a runnable bin\sparseonnx.cmd.
#
#   .\build.ps1          restore, build, publish bin\sparseonnx.cmd
#   .\build.ps1 test     the above, then every test
#   .\build.ps1 clean    remove build outputs
param([ValidateSet("build", "test", "clean")][string]$Target = "build")
$ErrorActionPreference = "Stop"
Set-Location $PSScriptRoot
$Configuration = if ($env:CONFIGURATION) { $env:CONFIGURATION } else { "Release" }
$env:DOTNET_CLI_TELEMETRY_OPTOUT = "1"
$env:DOTNET_NOLOGO = "1"

function Invoke-Checked([string]$Command, [string[]]$Arguments) {
    & $Command @Arguments
    if ($LASTEXITCODE -ne 0) { throw "$Command $($Arguments -join ' ') failed with exit code $LASTEXITCODE" }
}

function Build {
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

switch ($Target) {
    "build" { Build }
    "test" { Build; Invoke-Checked dotnet @("test", "SparseOnnx.sln", "-c", $Configuration, "--no-build") }
    "clean" {
        Remove-Item -Recurse -Force -ErrorAction SilentlyContinue artifacts, bin
        Get-ChildItem -Path src, tests -Recurse -Directory -Include bin, obj | Remove-Item -Recurse -Force
    }
}
