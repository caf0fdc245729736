using System.CommandLine;
using System.Text.Json.Nodes;
using SparseOnnx.Cli.Commands;
using SparseOnnx.GraphRewriter.IO;

namespace SparseOnnx.Cli.Tests;

/// <summary>quantize, and sparsify of its output or with --quantize, on the reference model.</summary>
public class QuantizeCommandTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "sparseonnx-cli-tests", Guid.NewGuid().ToString("N"));

    public QuantizeCommandTests() => Directory.CreateDirectory(_dir);

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static string Folder => Path.Combine(RepositoryPaths.Models, "llama-brown");

    private static (int ExitCode, string Output, string Error) Run(params string[] args)
    {
        var output = new StringWriter();
        var error = new StringWriter();
        var root = new RootCommand { QuantizeCommand.Create(), SparsifyCommand.Create(), EvalCommand.Create(), InspectCommand.Create() };
        int code = CommandRunner.Run(root, args, output, error);
        return (code, output.ToString(), error.ToString());
    }

    private double Perplexity(string model)
    {
        var (code, stdout, error) = Run("eval", model, "--text", Path.Combine(Folder, "data", "test.txt"), "--documents", "lines",
            "--tokenizer", Folder, "--max-tokens", "6000", "--json");
        Assert.True(code == 0, error);
        return (double)JsonNode.Parse(stdout)!["perplexity"]!;
    }

    [Fact]
    public void Int4ModelsKeepTheFloatModelsQualityAndTheSparseGapStaysTheSame()
    {
        string int4 = Path.Combine(_dir, "int4.onnx"), int4Sparse = Path.Combine(_dir, "int4-s50.onnx");
        string floatSparse = Path.Combine(_dir, "fp32-s50.onnx"), direct = Path.Combine(_dir, "direct-s50.onnx");
        var (code, stdout, error) = Run("quantize", Path.Combine(Folder, "model.onnx"), "-o", int4);
        Assert.True(code == 0, error);
        Assert.Contains("quantized 43 of 43 projections to MatMulNBits int4, block 32, accuracy_level 4", stdout);
        using (var model = ModelLoader.Load(int4))
            Assert.Equal(43, model.Graph.Nodes.Count(n => n.OpType == "MatMulNBits" && n.Domain == "com.microsoft"));
        Assert.True(new FileInfo(int4).Length < new FileInfo(Path.Combine(Folder, "model.onnx")).Length / 2);
        var inspected = JsonNode.Parse(Run("inspect", int4, "--json").Output)!["projections"]!.AsArray();
        Assert.Equal(43, inspected.Count);
        Assert.All(inspected, p => Assert.Equal("int4 b32 level 4", (string?)p!["quantization"]));
        Assert.Equal("MatMulNBits", (string?)inspected[0]!["op"]);

        Assert.Equal(0, Run("sparsify", int4, "--sparsity", "0.5", "-o", int4Sparse).ExitCode);
        Assert.Equal(0, Run("sparsify", Path.Combine(Folder, "model.onnx"), "--sparsity", "0.5", "-o", floatSparse).ExitCode);
        Assert.Equal(0, Run("sparsify", Path.Combine(Folder, "model.onnx"), "--sparsity", "0.5", "--quantize", "int4", "-o", direct).ExitCode);
        using (var model = ModelLoader.Load(int4Sparse))
            Assert.Equal(42, model.Graph.Nodes.Count(n => n.OpType == "TopKSparseMatMulNBits"));

        double fp32 = Perplexity(Path.Combine(Folder, "model.onnx")), dense4 = Perplexity(int4);
        double sparse4 = Perplexity(int4Sparse), sparse32 = Perplexity(floatSparse), directSparse = Perplexity(direct);
        Assert.InRange(dense4 / fp32, 1.0, 1.02);                      // int4 RTN costs under 2% on this model
        Assert.InRange(sparse4 - dense4, 0.5 * (sparse32 - fp32), 1.2 * (sparse32 - fp32));  // the 1.2x gap target
        Assert.InRange(directSparse / sparse4, 0.98, 1.02);            // (the int4 model also quantizes lm_head)
    }

    // Calibration of a quantized model runs on the float model it computes (its dequantized weights), and
    // the plan applies to the quantized model; trained spontaneous neurons included.
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void CalibratesQuantizedModelsAndLeavesNoWorkFolder(bool quantizeOnTheWay)
    {
        string source = Path.Combine(Folder, "model.onnx");
        if (!quantizeOnTheWay)
        {
            source = Path.Combine(_dir, "int4.onnx");
            Assert.Equal(0, Run("quantize", Path.Combine(Folder, "model.onnx"), "-o", source).ExitCode);
        }
        string output = Path.Combine(_dir, "calibrated.onnx");
        var args = new List<string> { "sparsify", source, "-o", output, "--sparsity", "0.6", "--calibration", Path.Combine(Folder, "data", "valid.txt"),
            "--documents", "lines", "--tokenizer", Folder, "--spontaneous", "trained", "--train-steps", "4", "--train-batch", "2",
            "--train-keep", "always", "--seq-len", "64", "--samples", "8", "--validation-samples", "4", "--json" };
        if (quantizeOnTheWay) args.AddRange(["--quantize", "int4"]);
        var (code, stdout, error) = Run([.. args]);
        Assert.True(code == 0, error);
        using (var model = ModelLoader.Load(output))
        {
            Assert.Equal(42, model.Graph.Nodes.Count(n => n.OpType == "TopKSparseMatMulNBits"));
            Assert.Contains(model.Graph.Nodes, n => n.MetadataProps.Any(p => p.Key == "sparseonnx.calibrated" || p.Value.Contains("calibrated on")));
        }
        Assert.Empty(Directory.GetFileSystemEntries(_dir, ".*calibration*"));
        Assert.True(Perplexity(output) < 1.1 * Perplexity(Path.Combine(Folder, "model.onnx")) + 20);
    }
}
