using System.Text.Json;

namespace SparseOnnx.Packaging.Tests;

/// <summary>The command line installs as a .NET tool from the packed folder and runs.</summary>
[Collection(PackagedBuilds.Name)]
public class ToolInstallTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("sparseonnx-tool-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public void TheToolInstallsIntoAToolPathAndInspectsAModel()
    {
        PackedFolder.Package("sparseonnx");
        PackedFolder.WriteNuGetConfig(_dir, withPackedSource: false); // the folder comes in with --add-source, as the README says
        string tools = Path.Combine(_dir, "tools");
        PackedFolder.Dotnet(_dir, ["tool", "install", "sparseonnx", "--tool-path", tools, "--version", PackedFolder.Version,
            "--add-source", PackedFolder.Path], TimeSpan.FromMinutes(5));
        string command = Path.Combine(tools, "sparseonnx");
        Assert.True(File.Exists(command), $"{command} was not installed");

        var (exitCode, output) = PackedFolder.Run(command, _dir, ["inspect", Path.Combine(RepositoryPaths.Models, "llama-brown", "model.onnx"), "--json"],
            TimeSpan.FromMinutes(2));
        Assert.True(exitCode == 0, output);
        using var report = JsonDocument.Parse(output);
        // llama-brown's 6 layers × 7 projections, and its head.
        var kinds = report.RootElement.GetProperty("projections").EnumerateArray().Select(p => p.GetProperty("kind").GetString()).ToList();
        Assert.Equal(42, kinds.Count(k => k != "lm_head"));
        Assert.Equal(1, kinds.Count(k => k == "lm_head"));

        // The tool's own copy of the op library is found: a sparsify and a generate with the rewritten model work.
        string sparse = Path.Combine(_dir, "sparse", "model.onnx");
        (exitCode, output) = PackedFolder.Run(command, _dir, ["sparsify", Path.Combine(RepositoryPaths.Models, "llama-brown", "model.onnx"), "-o", sparse,
            "--sparsity", "0.5"], TimeSpan.FromMinutes(2));
        Assert.True(exitCode == 0, output);
        (exitCode, output) = PackedFolder.Run(command, _dir, ["generate", sparse, "--tokenizer", Path.Combine(RepositoryPaths.Models, "llama-brown", "tokenizer.model"),
            "--prompt", "The jury said", "--max-tokens", "8"], TimeSpan.FromMinutes(2));
        Assert.True(exitCode == 0, output);
        Assert.Contains("The jury said", output);
    }
}
