using System.CommandLine;
using System.Text.Json.Nodes;
using SparseOnnx.Cli.Commands;

namespace SparseOnnx.Cli.Tests;

/// <summary><c>sparseonnx prune</c> on the reference model, and pruning composed with sparsify.</summary>
public class PruneCommandTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("sparseonnx-cli-prune-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static (int ExitCode, string Output, string Error) Run(params string[] args)
    {
        var output = new StringWriter();
        var error = new StringWriter();
        int code = CommandRunner.Run(new RootCommand { PruneCommand.Create(), SparsifyCommand.Create(), EvalCommand.Create() }, args, output, error);
        return (code, output.ToString(), error.ToString());
    }

    private static string Folder => Path.Combine(RepositoryPaths.Models, "llama-brown");
    private static string Llama => Path.Combine(Folder, "model.onnx");
    private static string Valid => Path.Combine(Folder, "data", "valid.txt");
    private static string Test => Path.Combine(Folder, "data", "test.txt");
    private static readonly string[] Small = ["--seq-len", "64", "--samples", "8", "--validation-samples", "2", "--threads", "1", "--tokenizer", Path.Combine(Folder, "tokenizer.model")];

    private static double Perplexity(string model)
    {
        var (code, stdout, error) = Run("eval", model, "--text", Test, "--tokenizer", Path.Combine(Folder, "tokenizer.model"), "--max-tokens", "5120", "--json");
        Assert.True(code == 0, error);
        return (double)JsonNode.Parse(stdout)!["perplexity"]!;
    }

    [Fact]
    public void Ica_RemovesTheRatio_KeepsNamedLayersWhole_AndTheModelStillPredicts()
    {
        string output = Path.Combine(_dir, "pruned.onnx");
        var (code, stdout, error) = Run(["prune", Llama, "-o", output, "--ratio", "0.2", "--calibration", Valid, "--keep-layers", "first,last",
            "--components", "16", "--restarts", "2", "--json", .. Small]);
        Assert.True(code == 0, error);
        var json = JsonNode.Parse(stdout)!;
        Assert.Equal(4128, (long)json["neurons_before"]!);
        Assert.Equal(4128 - (long)Math.Round(0.2 * 4128), (long)json["neurons_after"]!);
        var layers = json["layers"]!.AsArray();
        Assert.True((bool)layers[0]!["kept_whole"]! && (bool)layers[5]!["kept_whole"]!);
        Assert.Equal(688, (int)layers[0]!["kept"]!);
        Assert.All(layers.Skip(1).Take(4), l => Assert.True((bool)l!["compensated"]! && (int)l["kept"]! < 688 && l["ica"] is not null));
        Assert.Equal(64 * 8, (long)json["calibration_tokens"]!);
        // Each removed neuron takes 3 × 256 weights; each compensated layer adds 256.
        long removed = 4128 - (long)json["neurons_after"]!;
        Assert.Equal((long)json["parameters_before"]! - removed * 768 + 4 * 256, (long)json["parameters_after"]!);
        Assert.Empty(Directory.GetDirectories(_dir)); // the work folder is gone

        double dense = Perplexity(Llama), pruned = Perplexity(output);
        Assert.InRange(pruned / dense, 1.0, 1.25);
    }

    [Fact]
    public void PrunedModelsCanBeSparsified()
    {
        string pruned = Path.Combine(_dir, "pruned.onnx"), sparse = Path.Combine(_dir, "sparse.onnx");
        var (code, _, error) = Run(["prune", Llama, "-o", pruned, "--ratio", "0.3", "--method", "activation", "--calibration", Valid, .. Small]);
        Assert.True(code == 0, error);
        (code, var stdout, error) = Run(["sparsify", pruned, "-o", sparse, "--mode", "threshold", "--sparsity", "0.5", "--calibration", Valid,
            "--spontaneous", "closed-form", "--json", .. Small]);
        Assert.True(code == 0, error);
        var rewritten = JsonNode.Parse(stdout)!["rewritten"]!.AsArray();
        Assert.Equal(42, rewritten.Count);
        Assert.Contains(rewritten, r => (string)r!["kind"]! == "down" && (long)r["in_features"]! < 688);
        Assert.InRange(Perplexity(sparse) / Perplexity(Llama), 1.0, 1.5);
    }

    [Theory]
    [InlineData(new[] { "--ratio", "1.5" }, "ratio must be in (0, 1)")]
    [InlineData(new[] { "--keep-layers", "middle" }, "--keep-layers takes")]
    [InlineData(new[] { "--keep-layers", "9" }, "names layer 9")]
    [InlineData(new[] { "--keep-layers", "0,1,2,3,4,5" }, "nothing would be pruned")]
    [InlineData(new[] { "--ratio", "0.9", "--keep-layers", "first,last" }, "can give up only")]
    public void BadRequestsAreRefusedWithTheReason(string[] extra, string message)
    {
        string output = Path.Combine(_dir, "o.onnx");
        var (code, _, error) = Run(["prune", Llama, "-o", output, "--method", "magnitude", "--calibration", Valid, .. Small, .. extra]);
        Assert.Equal(1, code);
        Assert.Contains(message, error);
        Assert.False(File.Exists(output));
    }

    [Fact]
    public void ASparsifiedModelIsRefused_AndTheInputIsNeverOverwritten()
    {
        string sparse = Path.Combine(_dir, "sparse.onnx");
        Assert.Equal(0, Run("sparsify", Llama, "-o", sparse, "--sparsity", "0.5").ExitCode);
        var (code, _, error) = Run(["prune", sparse, "-o", Path.Combine(_dir, "p.onnx"), "--calibration", Valid, .. Small]);
        Assert.Equal(1, code);
        Assert.Contains("already sparsified", error);

        string copy = Path.Combine(_dir, "copy.onnx");
        File.Copy(Llama, copy);
        var before = File.ReadAllBytes(copy);
        (code, _, error) = Run(["prune", copy, "-o", copy, "--calibration", Valid, .. Small]);
        Assert.Equal(1, code);
        Assert.Contains("input model", error);
        Assert.Equal(before, File.ReadAllBytes(copy));
    }
}
