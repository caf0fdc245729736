using System.Text.Json;

namespace SparseOnnx.Packaging.Tests;

/// <summary>
/// The GPU flavour of the command line (<c>./build.sh --gpu</c>): built on ONNX Runtime's CUDA 13 package, it carries ORT's CUDA
/// provider, runs on the CPU exactly as the CPU flavour does, and asked for CUDA either runs there (a machine with CUDA 13)
/// or says what is missing (this machine and CI have no GPU).
/// </summary>
[Collection(PackagedBuilds.Name)]
public class GpuFlavourTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("sparseonnx-gpu-cli-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public void TheGpuFlavourCarriesTheCudaProviderAndDecodesAsTheCpuOneDoes()
    {
        // As build.sh's build_gpu_cli publishes it (configuration Gpu, its own restore folder), into a temporary folder.
        string cli = Path.Combine(_dir, "cli");
        PackedFolder.Dotnet(RepositoryPaths.Root, ["publish", Path.Combine("src", "Cli", "SparseOnnx.Cli.csproj"), "-c", "Gpu", "-p:Optimize=true",
            "-p:SparseOnnxGpu=true", "-o", cli], TimeSpan.FromMinutes(8));
        string native = Path.Combine(cli, "runtimes", "linux-x64", "native");
        Assert.True(File.Exists(Path.Combine(native, "libonnxruntime_providers_cuda.so")), "the GPU flavour should carry ORT's CUDA provider");
        Assert.True(File.Exists(Path.Combine(cli, "libsparseonnx_ops.so")), "the op library should be beside the command");

        string model = Path.Combine(RepositoryPaths.Models, "llama-brown", "model.onnx");
        string[] generate = ["generate", model, "--prompt", "The jury said", "--max-tokens", "12", "--json"];
        var gpuFlavour = Ids(PackedFolder.Run("dotnet", _dir, [Path.Combine(cli, "sparseonnx.dll"), .. generate], TimeSpan.FromMinutes(2)));
        var cpuFlavour = Ids(PackedFolder.Run("dotnet", _dir, [Path.Combine(RepositoryPaths.Root, "artifacts", "sparseonnx", "sparseonnx.dll"), .. generate],
            TimeSpan.FromMinutes(2)));
        Assert.Equal(cpuFlavour, gpuFlavour);

        var (exitCode, output) = PackedFolder.Run("dotnet", _dir, [Path.Combine(cli, "sparseonnx.dll"), .. generate, "--device", "cuda"], TimeSpan.FromMinutes(2));
        if (HasNvidiaDriver())
            Assert.True(exitCode == 0, $"a machine with an NVIDIA driver should run --device cuda with the GPU flavour:\n{output}");
        else
        {
            Assert.Equal(1, exitCode);
            Assert.Contains("The CUDA execution provider is not available", output);
            Assert.Contains("CUDA 13, cuDNN 9", output);
        }
    }

    private static List<int> Ids((int ExitCode, string Output) run)
    {
        Assert.True(run.ExitCode == 0, run.Output);
        string json = run.Output[run.Output.IndexOf('{')..];
        using var document = JsonDocument.Parse(json);
        return document.RootElement.GetProperty("ids").EnumerateArray().Select(e => e.GetInt32()).ToList();
    }

    private static bool HasNvidiaDriver() => File.Exists("/proc/driver/nvidia/version");
}
