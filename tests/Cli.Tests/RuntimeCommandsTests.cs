using System.CommandLine;
using System.Text.Json.Nodes;
using SparseOnnx.Cli.Commands;

namespace SparseOnnx.Cli.Tests;

/// <summary>eval, generate, bench and report on the reference model.</summary>
public class RuntimeCommandsTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("sparseonnx-cli-runtime-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static (int ExitCode, string Output, string Error) Run(params string[] args)
    {
        var output = new StringWriter();
        var error = new StringWriter();
        var root = new RootCommand { SynthCommand.Create(), EvalCommand.Create(), GenerateCommand.Create(), BenchCommand.Create(), ReportCommand.Create(), SparsifyCommand.Create() };
        int code = CommandRunner.Run(root, args, output, error);
        return (code, output.ToString(), error.ToString());
    }

    private static string Folder => Path.Combine(RepositoryPaths.Models, "llama-brown");
    private static string Llama => Path.Combine(Folder, "model.onnx");
    private static string TestText => Path.Combine(Folder, "data", "test.txt");

    [Fact]
    public void EvalPrintsPerplexityAndTokensAsJson()
    {
        var (code, stdout, error) = Run("eval", Llama, "--text", TestText, "--max-tokens", "2000", "--threads", "2", "--json");
        Assert.True(code == 0, error);
        var json = JsonNode.Parse(stdout)!;
        Assert.Equal(2000 - 16, (long)json["tokens"]!); // 16 windows of 128 (the last one 80 tokens), first token of each unscored
        double perplexity = (double)json["perplexity"]!;
        Assert.InRange(perplexity, 20, 1000);
        Assert.Equal(128, (int)json["seq_len"]!);
    }

    [Fact]
    public void EvalStatesItsMethodInTheHelp()
    {
        var (_, stdout, _) = Run("eval", "--help");
        Assert.Contains("every token but the first is scored", stdout);
        Assert.Contains("minus tokens an earlier window already scored", stdout);
    }

    [Fact]
    public void EvalFindsTheTokenizerBesideTheModelAndReadsIds()
    {
        string ids = Path.Combine(_dir, "ids.txt");
        File.WriteAllText(ids, "1 337 502 1198 568\n1 337 502 1198\n");
        var (code, stdout, error) = Run("eval", Llama, "--ids", ids, "--json");
        Assert.True(code == 0, error);
        Assert.Equal(8, (long)JsonNode.Parse(stdout)!["tokens"]!);
        var (textCode, _, textError) = Run("eval", Llama, "--text", TestText, "--max-tokens", "300");
        Assert.True(textCode == 0, textError);
    }

    [Theory]
    [InlineData("--stride", "200", "stride must be between 1 and seq-len")]
    [InlineData("--seq-len", "1", "seq-len must be at least 2")]
    [InlineData("--threads", "0", "--threads must be at least 1")]
    public void EvalRefusesBadOptions(string option, string value, string expected)
    {
        var (code, _, error) = Run("eval", Llama, "--text", TestText, option, value);
        Assert.Equal(ExitCodes.InputError, code);
        Assert.Contains(expected, error);
    }

    [Fact]
    public void EvalNamesAMissingTextAndAWrongTokenizer()
    {
        var (code, _, error) = Run("eval", Llama, "--text", Path.Combine(_dir, "missing.txt"));
        Assert.Equal(ExitCodes.InputError, code);
        Assert.Contains("missing.txt", error);
        string notTokenizer = Path.Combine(_dir, "tokenizer.json");
        File.WriteAllText(notTokenizer, "{}");
        (code, _, error) = Run("eval", Llama, "--text", TestText, "--tokenizer", notTokenizer);
        Assert.Equal(ExitCodes.InputError, code);
        Assert.Contains("Cannot load the tokenizer", error);
    }

    [Fact]
    public void GenerateStreamsTheGreedyContinuation()
    {
        var (code, stdout, error) = Run("generate", Llama, "--prompt", "The jury said", "--max-tokens", "12");
        Assert.True(code == 0, error);
        Assert.StartsWith("The jury said, \"I'm not a little", stdout);
        Assert.Contains("12 tokens in", error);
    }

    [Fact]
    public void GenerateWithTopPIsReproducibleAndReportsJson()
    {
        string[] args = ["generate", Llama, "--prompt", "The jury said", "--max-tokens", "10", "--top-p", "0.9", "--seed", "5", "--json"];
        var first = JsonNode.Parse(Run(args).Output)!;
        var second = JsonNode.Parse(Run(args).Output)!;
        Assert.Equal(10, (int)first["tokens"]!);
        Assert.Equal(first["ids"]!.ToJsonString(), second["ids"]!.ToJsonString());
        Assert.Equal((string)first["text"]!, (string)second["text"]!);
    }

    [Fact]
    public void AskingForCudaWithoutItIsAnInputError()
    {
        var (code, _, error) = Run("generate", Llama, "--prompt", "x", "--device", "cuda");
        Assert.Equal(ExitCodes.InputError, code);
        Assert.Contains("CUDA execution provider is not available", error);
    }

    [Fact]
    public void GenerateRefusesABadTopP()
    {
        var (code, _, error) = Run("generate", Llama, "--prompt", "x", "--top-p", "1.5");
        Assert.Equal(ExitCodes.InputError, code);
        Assert.Contains("top-p must be in (0, 1]", error);
    }

    [Fact]
    public void BenchReportsDecodeSpeedupAgainstTheBaselineAsJson()
    {
        string sparse = Path.Combine(_dir, "sparse", "model.onnx");
        Assert.Equal(0, Run("sparsify", Llama, "-o", sparse, "--sparsity", "0.5").ExitCode);
        var (code, stdout, error) = Run("bench", sparse, "--baseline", Llama, "--prompt-tokens", "16", "--tokens", "8", "--repetitions", "2", "--threads", "2", "--json");
        Assert.True(code == 0, error);
        var json = JsonNode.Parse(stdout)!;
        double decode = (double)json["decode_tokens_per_s"]!, baseline = (double)json["baseline_decode_tokens_per_s"]!;
        Assert.True(decode > 0 && baseline > 0);
        Assert.Equal(decode / baseline, (double)json["decode_speedup"]!, 9);
        Assert.Equal(2, json["samples"]!.AsArray().Count);
        Assert.Equal(2, json["baseline_samples"]!.AsArray().Count);
        Assert.Equal("process", (string)json["isolation"]!); // each repetition in a process of its own by default
    }

    [Fact]
    public void ABenchmarkProcessThatFailsIsReportedWithItsError()
    {
        string broken = Path.Combine(_dir, "broken.onnx");
        File.WriteAllText(broken, "not a model");
        var (code, _, error) = Run("bench", Llama, "--baseline", broken, "--prompt-tokens", "4", "--tokens", "2", "--repetitions", "1");
        Assert.Equal(ExitCodes.InputError, code);
        Assert.Contains($"The benchmark process for '{broken}' failed", error);
        Assert.Contains("ONNX Runtime", error);
    }

    [Fact]
    public void BenchCanKeepBothModelsInOneProcess()
    {
        var (code, stdout, error) = Run("bench", Llama, "--baseline", Llama, "--isolation", "none", "--prompt-tokens", "8", "--tokens", "4",
            "--repetitions", "3", "--threads", "2", "--json");
        Assert.True(code == 0, error);
        var json = JsonNode.Parse(stdout)!;
        Assert.Equal("none", (string)json["isolation"]!);
        Assert.Equal(3, json["samples"]!.AsArray().Count);
    }

    [Fact]
    public void BenchWithoutBaselineHasNoSpeedup()
    {
        var (code, stdout, error) = Run("bench", Llama, "--prompt-tokens", "8", "--tokens", "4", "--repetitions", "1", "--warmup", "0");
        Assert.True(code == 0, error);
        Assert.Contains("decode tokens/s", stdout);
        Assert.DoesNotContain("speedup", stdout);
    }

    [Fact]
    public void ReportWritesATablePlotsAndJsonAndRemovesItsModels()
    {
        string folder = Path.Combine(_dir, "report");
        var (code, stdout, error) = Run("report", Llama, "--text", TestText, "--documents", "lines", "--quick", "--sparsities", "0,0.5", "-o", folder,
            "--max-eval-tokens", "1000", "--prompt-tokens", "8", "--tokens", "4", "--repetitions", "1", "--threads", "2");
        Assert.True(code == 0, error);
        string markdown = File.ReadAllText(Path.Combine(folder, "report.md"));
        Assert.Contains("| dense (input) | – | 0 |", markdown);
        Assert.Contains("| sparsified | 0.5 | 42 |", markdown);
        Assert.Contains("![perplexity vs sparsity](perplexity.png)", markdown);
        foreach (string plot in new[] { "perplexity.png", "throughput.png" })
        {
            byte[] png = File.ReadAllBytes(Path.Combine(folder, plot));
            Assert.True(png.Length > 5000 && png[1] == 'P' && png[2] == 'N' && png[3] == 'G', plot);
        }
        var json = JsonNode.Parse(File.ReadAllText(Path.Combine(folder, "report.json")))!;
        var rows = json["rows"]!.AsArray();
        Assert.Equal(3, rows.Count);
        // Sparsity 0 keeps every entry: the same perplexity as the dense model (float32 sums in another order).
        Assert.Equal((double)rows[0]!["perplexity"]!, (double)rows[1]!["perplexity"]!, 2);
        Assert.True((double)rows[2]!["perplexity"]! > (double)rows[0]!["perplexity"]!);
        Assert.False(Directory.Exists(Path.Combine(folder, "models")));
        Assert.False(File.Exists(Path.Combine(folder, "kernels.png"))); // --quick: no kernel table
        Assert.Contains("wrote", stdout);
    }

    /// <summary>The main job's report: calibrated rows next to top-k at the same level, with what calibration buys.</summary>
    [Fact]
    public void ReportWithCalibrationComparesCalibratedAndTopKAtEachLevel()
    {
        string folder = Path.Combine(_dir, "calibrated");
        var (code, stdout, error) = Run("report", Llama, "--text", TestText, "--documents", "lines", "--calibration", Path.Combine(Folder, "data", "valid.txt"),
            "--sparsities", "0.6", "--allocation", "uniform", "--train-steps", "10", "--no-kernels", "-o", folder,
            "--max-eval-tokens", "2000", "--prompt-tokens", "8", "--tokens", "4", "--repetitions", "1", "--threads", "2");
        Assert.True(code == 0, error);
        string markdown = File.ReadAllText(Path.Combine(folder, "report.md"));
        Assert.Contains("What calibration buys", markdown);
        Assert.Contains("| calibrated | 0.6 | 42 |", markdown);
        Assert.Contains("one document per line with its own BOS", markdown);
        Assert.Contains("about the size of", markdown); // why this small model's decode does not speed up
        // The recipe the rows ran, as the options set it: --train-steps sets the end-to-end phase's steps.
        Assert.Contains("block by block (the sequential method): per-projection thresholds, uniform allocation", markdown);
        Assert.Contains("on the whole model (10 Adam steps)", markdown);
        var rows = JsonNode.Parse(File.ReadAllText(Path.Combine(folder, "report.json")))!["rows"]!.AsArray();
        Assert.Equal(["dense", "topk", "calibrated"], rows.Select(r => (string)r!["variant"]!));
        Assert.InRange((double)rows[2]!["measured_sparsity"]!, 0.55, 0.65);
        // Thresholds with closed-form compensation where it helps are no worse than top-k at 60% on this model (docs/calibration.md).
        Assert.True((double)rows[2]!["perplexity"]! < (double)rows[1]!["perplexity"]!, $"calibrated {rows[2]!["perplexity"]} vs top-k {rows[1]!["perplexity"]}");
        Assert.False(Directory.Exists(Path.Combine(folder, "models")));
        Assert.Empty(Directory.GetDirectories(folder, ".calibration-*"));
    }

    [Theory]
    [InlineData("--quick", "--quick is the uncalibrated sweep")]
    [InlineData("--sparsities", "--sparsities: calibrating at 0")]
    public void ReportRefusesCalibrationItCannotDo(string option, string expected)
    {
        var args = new List<string> { "report", Llama, "--text", TestText, "--calibration", TestText, "-o", Path.Combine(_dir, "r"), option };
        if (option == "--sparsities") args.Add("0,0.5");
        var (code, _, error) = Run(args.ToArray());
        Assert.Equal(ExitCodes.InputError, code);
        Assert.Contains(expected, error);
    }

    /// <summary>The calibrated rows' recipe by default is sparsify's: auto allocation, its greedy step, the end-to-end phase's automatic steps.</summary>
    [Fact]
    public void ReportCalibratesWithSparsifysDefaults()
    {
        string recipe = Reporting.SweepReportWriter.CalibrationRecipe(new Calibration.CalibrationOptions { Training = new Calibration.Training.SpontaneousTrainingOptions() });
        Assert.Contains("block by block (the sequential method)", recipe);
        Assert.Contains("greedy allocation where its search is estimated within 5 minutes (TEAL's block-wise search, logits-KL objective, step 0.05), uniform otherwise", recipe);
        Assert.Contains("on the whole model (60 Adam steps where they fit in memory and are estimated within 10 minutes)", recipe);
        string full = Reporting.SweepReportWriter.CalibrationRecipe(new Calibration.CalibrationOptions
        {
            Method = Calibration.Sequential.CalibrationMethod.FullModel, Allocation = Calibration.AllocationMethod.Greedy, Training = new Calibration.Training.SpontaneousTrainingOptions(),
        });
        Assert.Contains("on the whole model (the full method)", full);
        Assert.Contains("at most 150 Adam steps", full);
    }

    /// <summary>The kernel table's remark on its 0% column follows the measurement, ahead of ORT's MatMul or behind it.</summary>
    [Fact]
    public void TheKernelRemarkSaysWhatTheNothingDroppedColumnMeasured()
    {
        static Reporting.KernelRow Row(params (double Sparsity, double Speedup)[] results) => new(new Reporting.KernelShape("q, o", 4096, 4096),
            new Benchmarks.OpBenchmarkReport(new Benchmarks.OpBenchmarkOptions(), 1, new Benchmarks.MachineInfo("cpu", 2, 32 << 20, 1L << 34, "linux"), "1.32.0", "MatMul", "op",
                results.Select(r => new Benchmarks.OpBenchmarkRow(r.Sparsity, null, null, 1, 1 / r.Speedup, r.Speedup, 1 / (1 - r.Sparsity), 1, 1, 1 - r.Sparsity)).ToList()));
        Assert.Contains("beats ORT's MatMul even with nothing dropped", Reporting.SweepReportWriter.NothingDroppedRemark([Row((0, 1.3), (0.5, 2.3)), Row((0, 1.04), (0.5, 1.6))]));
        string behind = Reporting.SweepReportWriter.NothingDroppedRemark([Row((0, 0.98), (0.5, 1.7)), Row((0, 0.88), (0.5, 1.7))]);
        Assert.Contains("runs at 0.88–0.98× ORT's MatMul", behind);
        Assert.DoesNotContain("beats", behind);
        Assert.Equal("", Reporting.SweepReportWriter.NothingDroppedRemark([Row((0.5, 2.0))]));
    }

    [Theory]
    [InlineData("0.5,1.0", "'1.0' is not a sparsity in [0, 1)")]
    [InlineData("0.5,0.5", "0.5 is given twice")]
    [InlineData("abc", "'abc' is not a sparsity")]
    public void ReportRefusesBadSparsities(string sparsities, string expected)
    {
        var (code, _, error) = Run("report", Llama, "--text", TestText, "--sparsities", sparsities, "-o", Path.Combine(_dir, "r"));
        Assert.Equal(ExitCodes.InputError, code);
        Assert.Contains(expected, error);
    }

    /// <summary>A synthetic model is a real decoder: it sparsifies (every projection but the head), runs and benchmarks.</summary>
    [Fact]
    public void SynthWritesARunnableModelThatSparsifiesAndBenchmarks()
    {
        string dense = Path.Combine(_dir, "synth", "model.onnx");
        var (code, stdout, error) = Run("synth", "-o", dense, "--preset", "tiny", "--layers", "3", "--seed", "9");
        Assert.True(code == 0, error);
        Assert.Contains("3 layers, hidden 64", stdout);
        string sparse = Path.Combine(_dir, "synth-s50", "model.onnx");
        (code, stdout, error) = Run("sparsify", dense, "-o", sparse, "--sparsity", "0.5");
        Assert.True(code == 0, error);
        Assert.Contains("rewrote 21 of 22 projections", stdout);
        (code, stdout, error) = Run("bench", sparse, "--baseline", dense, "--prompt-tokens", "8", "--tokens", "4", "--repetitions", "1", "--threads", "2", "--json");
        Assert.True(code == 0, error);
        Assert.True((double)JsonNode.Parse(stdout)!["decode_speedup"]! > 0);
    }

    /// <summary>
    /// synth --dtype fp16 writes a float16 decoder that calibrates (random ids: the synthetic model has no text) and
    /// sparsifies into float16 ops that run; a bfloat16 one, which ONNX Runtime's CPU provider cannot run, is refused
    /// by calibration with the reason and the way around, leaving nothing behind.
    /// </summary>
    [Fact]
    public void SynthHalfPrecisionModelsCalibrateInTheirType_OrSayWhyNot()
    {
        var random = new Random(4);
        string ids = Path.Combine(_dir, "ids.txt");
        File.WriteAllLines(ids, Enumerable.Range(0, 4).Select(_ => string.Join(' ', Enumerable.Range(0, 1200).Select(_ => random.Next(128)))));
        foreach (string dtype in new[] { "fp16", "bf16" })
        {
            string dense = Path.Combine(_dir, dtype, "model.onnx");
            var (code, stdout, error) = Run("synth", "-o", dense, "--preset", "tiny", "--dtype", dtype);
            Assert.True(code == 0, error);
            Assert.Contains(dtype == "fp16" ? "float16;" : "bfloat16;", stdout);
            string sparse = Path.Combine(_dir, dtype + "-s50", "model.onnx");
            (code, stdout, error) = Run("sparsify", dense, "-o", sparse, "--sparsity", "0.5", "--calibration-ids", ids, "--seq-len", "64",
                "--samples", "16", "--validation-samples", "4", "--threads", "1", "--json");
            if (dtype == "fp16")
            {
                Assert.True(code == 0, error);
                var json = JsonNode.Parse(stdout)!;
                Assert.All(json["rewritten"]!.AsArray(), r => Assert.Equal("float16", (string)r!["dtype"]!));
                Assert.InRange((double)json["calibration"]!["measured_sparsity"]!, 0.45, 0.55);
                (code, _, error) = Run("bench", sparse, "--prompt-tokens", "8", "--tokens", "2", "--repetitions", "1", "--threads", "1");
                Assert.True(code == 0, error);
            }
            else
            {
                Assert.Equal(ExitCodes.InputError, code);
                Assert.Contains("CPU provider cannot run it", error);
                Assert.Contains("--device cuda", error);
                Assert.False(Directory.Exists(Path.GetDirectoryName(sparse)) && Directory.EnumerateFileSystemEntries(Path.GetDirectoryName(sparse)!).Any());
            }
        }
        var (refused, _, message) = Run("synth", "-o", Path.Combine(_dir, "g", "model.onnx"), "--preset", "tiny", "--layout", "genai", "--dtype", "fp16");
        Assert.Equal(ExitCodes.InputError, refused);
        Assert.Contains("--dtype applies to the optimum layout", message);
    }

    [Fact]
    public void SynthNamesTheKnownPresets()
    {
        var (code, _, error) = Run("synth", "-o", Path.Combine(_dir, "x", "model.onnx"), "--preset", "gpt-5");
        Assert.Equal(ExitCodes.InputError, code);
        Assert.Contains("llama-3.2-1b", error);
        Assert.Contains("tiny", error);
        Assert.False(Directory.Exists(Path.Combine(_dir, "x")));
    }
}

/// <summary>Long work shows progress when stderr is a log file or a pipe, not only on a terminal: the published command, run as a process.</summary>
public class PlainProgressTests
{
    [Fact]
    public async Task ReportWritesOneLinePerStageToARedirectedStderr()
    {
        string cli = Path.Combine(RepositoryPaths.Root, "artifacts", "sparseonnx", "sparseonnx.dll");
        Assert.True(File.Exists(cli), $"{cli} is missing: build.sh publishes it before the tests run");
        string folder = Directory.CreateTempSubdirectory("sparseonnx-cli-progress-").FullName;
        try
        {
            string model = Path.Combine(RepositoryPaths.Models, "llama-brown", "model.onnx");
            var start = new System.Diagnostics.ProcessStartInfo("dotnet")
            {
                RedirectStandardError = true, RedirectStandardOutput = true, UseShellExecute = false,
            };
            foreach (string a in new[] { cli, "report", model, "--text", Path.Combine(RepositoryPaths.Models, "llama-brown", "data", "test.txt"), "--documents", "lines",
                         "--quick", "--sparsities", "0.5", "--max-eval-tokens", "500", "--prompt-tokens", "4", "--tokens", "2", "--repetitions", "1", "--threads", "2",
                         "-o", Path.Combine(folder, "r") })
                start.ArgumentList.Add(a);
            using var process = System.Diagnostics.Process.Start(start)!;
            var stdout = process.StandardOutput.ReadToEndAsync();
            string stderr = await process.StandardError.ReadToEndAsync();
            using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(5));
            await process.WaitForExitAsync(timeout.Token);
            Assert.True(process.ExitCode == 0, stderr);
            var lines = stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
            string[] stages = ["0%  Report", "Report: Sparsifying at 50% (top-k)", "Report: Perplexity: dense", "Report: Perplexity: topk-0.50", "Report: Decode benchmark", "100%  Report: done"];
            int at = 0;
            foreach (string stage in stages)
            {
                int found = Array.FindIndex(lines, at, l => l.Contains(stage, StringComparison.Ordinal));
                Assert.True(found >= 0, $"no line with '{stage}' after line {at} in:\n{stderr}");
                at = found;
            }
            Assert.All(lines, l => Assert.Matches(@"^\[\s*\d+ s\]\s+\d+%  ", l));
            Assert.Contains("wrote", await stdout);
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
        }
    }
}
