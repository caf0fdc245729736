using SparseOnnx.Runtime.Inference;
using SparseOnnx.Runtime.Tokenization;

namespace SparseOnnx.Packaging.Tests;

/// <summary>
/// A user's own console app, made with <c>dotnet new console</c> outside the repository and given the packages with
/// <c>dotnet add package</c> from the packed folder only, runs a sparsified llama-brown: its greedy tokens equal the
/// in-repo runtime's on the same model.
/// </summary>
[Collection(PackagedBuilds.Name)]
public class OutsideTreeAppTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("sparseonnx-app-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public void AFreshConsoleAppRunsASparsifiedModelFromThePackages()
    {
        string modelFolder = SparseReference.Folder;
        string sparse = SparseReference.WriteHalfSparse(Path.Combine(_dir, "model", "model.onnx"));
        const string prompt = "The jury said";
        const int tokens = 24;

        string app = Path.Combine(_dir, "app");
        Directory.CreateDirectory(app);
        PackedFolder.WriteNuGetConfig(app);
        var minutes = TimeSpan.FromMinutes(5);
        PackedFolder.Dotnet(app, ["new", "console", "--name", "GreedyApp", "--output", ".", "--no-restore"], minutes);
        PackedFolder.Dotnet(app, ["add", "package", "SparseOnnx.Runtime", "--version", PackedFolder.Version], minutes);
        PackedFolder.Dotnet(app, ["add", "package", "Microsoft.ML.OnnxRuntime", "--version", PackedFolder.OnnxRuntimeVersion], minutes);
        File.WriteAllText(Path.Combine(app, "Program.cs"), """
            using SparseOnnx.Runtime.Inference;
            using SparseOnnx.Runtime.Tokenization;

            using var model = CausalLm.Open(args[0]);
            var tokenizer = TextTokenizer.Load(args[1]);
            var result = TextGenerator.Generate(model, tokenizer, args[2], new GenerationOptions { MaxTokens = int.Parse(args[3]) });
            Console.WriteLine("ids: " + string.Join(' ', result.Ids));
            """);
        string output = PackedFolder.Dotnet(app, ["run", "-c", "Release", "--", sparse, Path.Combine(modelFolder, "tokenizer.model"), prompt, tokens.ToString()], minutes);

        // The app's project has no reference into this repository: everything came from the packages.
        Assert.DoesNotContain("ProjectReference", File.ReadAllText(Path.Combine(app, "GreedyApp.csproj")));
        Assert.True(File.Exists(Path.Combine(app, "bin", "Release", "net10.0", "runtimes", "linux-x64", "native", "libsparseonnx_ops.so")),
            "the op library from SparseOnnx.CustomOps should be in the app's output");
        string line = output.Split('\n').Select(l => l.Trim()).Single(l => l.StartsWith("ids: ", StringComparison.Ordinal));
        var packaged = line["ids: ".Length..].Split(' ').Select(int.Parse).ToList();

        using var reference = CausalLm.Open(sparse);
        var expected = TextGenerator.Generate(reference, TextTokenizer.Load(Path.Combine(modelFolder, "tokenizer.model")), prompt,
            new GenerationOptions { MaxTokens = tokens });
        Assert.Equal(tokens, packaged.Count);
        Assert.Equal(expected.Ids, packaged);
    }
}

/// <summary>Tests that build and run projects from the packages, one at a time (each build takes both cores of a small machine).</summary>
[CollectionDefinition(Name)]
public sealed class PackagedBuilds
{
    public const string Name = "builds from the packed folder";
}
