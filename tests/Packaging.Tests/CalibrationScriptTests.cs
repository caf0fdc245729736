using System.Globalization;
using System.Text.RegularExpressions;
using SparseOnnx.GraphRewriter.IO;
using SparseOnnx.GraphRewriter.Sparsify;
using SparseOnnx.Runtime.Evaluation;
using SparseOnnx.Runtime.Inference;
using SparseOnnx.Runtime.Tokenization;

namespace SparseOnnx.Packaging.Tests;

/// <summary>
/// examples/calibrate.cs, the file-based app, run in place as its header says (<c>dotnet run calibrate.cs</c> in
/// examples/), restoring the packed folder into a package cache of its own and building into a temporary artifacts
/// folder: it calibrates, sparsifies and evaluates llama-brown, and what it writes runs in the in-repo runtime.
/// </summary>
[Collection(PackagedBuilds.Name)]
public class CalibrationScriptTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("sparseonnx-calibrate-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static string Examples => Path.Combine(RepositoryPaths.Root, "examples");

    private static string ModelFolder => Path.Combine(RepositoryPaths.Models, "llama-brown");

    // Scored tokens of data/test.txt: a quarter of the script's default keeps the test's two evaluations to seconds.
    private const int EvalTokens = 4096;

    [Fact]
    public void TheScriptCalibratesSparsifiesAndEvaluatesLlamaBrownFromThePackages()
    {
        PackedFolder.Package("SparseOnnx.Calibration");
        var examplesBefore = PackedFolder.Snapshot(Examples);
        var modelBefore = PackedFolder.Snapshot(ModelFolder);
        string output = Path.Combine(_dir, "out");

        var (exitCode, log) = RunScript(noCache: true, ModelFolder, output, "--sparsity", "0.5", "--eval-tokens", EvalTokens.ToString(CultureInfo.InvariantCulture));
        Assert.True(exitCode == 0, log);
        PackedFolder.AssertRestoredFromPackedFolder(PackedFolder.PackageCache(_dir),
            "SparseOnnx.Calibration", "SparseOnnx.GraphRewriter", "SparseOnnx.Runtime", "SparseOnnx.CustomOps");

        // The summary: perplexities of the same slice, the sparse one above dense but not by much at 50%
        // (about 3% on llama-brown, docs/calibration.md; 1.5× would mean a broken plan or op).
        double dense = Number(log, "dense perplexity"), sparse = Number(log, "sparse perplexity");
        Assert.True(double.IsFinite(dense) && dense > 1, $"dense perplexity {dense}:\n{log}");
        Assert.True(double.IsFinite(sparse) && sparse > dense && sparse < 1.5 * dense, $"sparse perplexity {sparse} against dense {dense}:\n{log}");
        Assert.Contains("evaluated tokens:  4,064 of data/test.txt", log);  // 32 windows of 128, each scoring all but its first token
        Assert.Contains("rewritten:         42 projections", log);
        // Progress went out as plain lines, one per stage at least.
        Assert.Matches(@"(?m)^\[\s*[0-9.]+ s\]\s+[0-9]+% block 1 of 6", log);

        // What it wrote: the plan (with its vectors file) and the model, which the in-repo libraries read.
        string modelPath = Path.Combine(output, "model.onnx"), planPath = Path.Combine(output, "model.plan.json");
        Assert.True(File.Exists(modelPath), $"no model at {modelPath}:\n{log}");
        Assert.True(File.Exists(planPath), $"no plan at {planPath}:\n{log}");
        Assert.Equal(42, SparsityPlan.Load(planPath).Projections.Count);
        using (var written = ModelLoader.Load(modelPath))
            Assert.Equal(42, written.Graph.AllNodes().Count(n => n.OpType == "TopKSparseMatMul"));
        Assert.False(Directory.Exists(Path.Combine(output, "calibration.work")), "the calibration's work folder should be gone");

        // The in-repo runtime runs the written model and measures what the script printed (rounded to 3 decimals).
        var tokenizer = TextTokenizer.Load(Path.Combine(ModelFolder, "tokenizer.model"));
        var test = TokenStream.Read(Path.Combine(ModelFolder, "data", "test.txt"), tokenizer, TextReading.PerLine);
        using (var model = CausalLm.Open(modelPath))
        {
            double measured = PerplexityEvaluator.Evaluate(model, test.Ids, new PerplexityOptions { MaxTokens = EvalTokens }).Perplexity;
            Assert.True(Math.Abs(measured - sparse) <= 5e-4 + 1e-6 * sparse, $"the in-repo runtime measures {measured}, the script printed {sparse}");
            Assert.Equal(8, TextGenerator.Generate(model, tokenizer, "The jury said", new GenerationOptions { MaxTokens = 8, StopAtEos = false }).Ids.Count);
        }

        // Bad arguments: the usage and exit code 2, before anything is loaded (the build is cached from the run above).
        foreach (string[] bad in new[] { Array.Empty<string>(), [ModelFolder, output, "--sparsity", "1.5"], [ModelFolder, output, "--frobnicate"],
                                         [Path.Combine(_dir, "no-such-model"), output] })
        {
            var (code, text) = RunScript(noCache: false, bad);
            Assert.True(code == 2, $"calibrate.cs {string.Join(' ', bad)} exited with {code}:\n{text}");
            Assert.Contains("usage: dotnet run", text);
            Assert.Contains("error: ", text);
        }

        // Everything went to the temporary folders: the examples and the model folder are as they were (bin/obj aside).
        Assert.Equal(examplesBefore, PackedFolder.Snapshot(Examples));
        Assert.Equal(modelBefore, PackedFolder.Snapshot(ModelFolder));
    }

    // dotnet run calibrate.cs in examples/, as a user runs it, with the package cache and the build output in the
    // test's folder (the properties make every run of a test a distinct build; --no-cache forces the first one).
    private (int ExitCode, string Output) RunScript(bool noCache, params string[] arguments) =>
        PackedFolder.Run("dotnet", Examples,
            ["run", "-c", "Release", .. noCache ? new[] { "--no-cache" } : [], "--artifacts-path", Path.Combine(_dir, "artifacts"),
             .. PackedFolder.IsolatedRestoreProperties(_dir), "calibrate.cs", "--", .. arguments],
            TimeSpan.FromMinutes(5));

    private static double Number(string log, string label)
    {
        var match = Regex.Match(log, $@"(?m)^{Regex.Escape(label)}:\s+([0-9.]+)");
        Assert.True(match.Success, $"no '{label}:' line in:\n{log}");
        return double.Parse(match.Groups[1].Value, CultureInfo.InvariantCulture);
    }
}
