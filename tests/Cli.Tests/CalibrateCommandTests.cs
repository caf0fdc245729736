using System.CommandLine;
using System.Text.Json.Nodes;
using SparseOnnx.Cli.Commands;

namespace SparseOnnx.Cli.Tests;

/// <summary><c>sparsify --calibration</c> on the reference model.</summary>
public class CalibrateCommandTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("sparseonnx-cli-calibrate-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static (int ExitCode, string Output, string Error) Run(params string[] args)
    {
        var output = new StringWriter();
        var error = new StringWriter();
        int code = CommandRunner.Run(new RootCommand { SparsifyCommand.Create() }, args, output, error);
        return (code, output.ToString(), error.ToString());
    }

    private static string Folder => Path.Combine(RepositoryPaths.Models, "llama-brown");
    private static string Llama => Path.Combine(Folder, "model.onnx");
    private static string Valid => Path.Combine(Folder, "data", "valid.txt");
    private static readonly string[] Small = ["--seq-len", "64", "--samples", "8", "--validation-samples", "4", "--threads", "1"];

    [Fact]
    public void Calibration_WritesTheModelAndAPlanThatRemakesIt()
    {
        string output = Path.Combine(_dir, "sparse.onnx");
        var (code, stdout, error) = Run(["sparsify", Llama, "-o", output, "--mode", "threshold", "--sparsity", "0.5", "--calibration", Valid,
            "--compensation", "on", "--spontaneous", "closed-form", "--calibration-method", "full", "--json", .. Small]);
        Assert.True(code == 0, error);
        var json = JsonNode.Parse(stdout)!;
        Assert.Equal("full", (string)json["calibration"]!["method"]!);
        string plan = Path.Combine(_dir, "sparse.plan.json");
        Assert.Equal(plan, (string)json["calibration"]!["plan"]!);
        Assert.True(File.Exists(output));
        Assert.True(File.Exists(Path.Combine(_dir, "sparse.plan.spontaneous.bin")));
        Assert.Equal(42, json["rewritten"]!.AsArray().Count);
        Assert.All(json["rewritten"]!.AsArray(), r => Assert.True((bool)r!["spontaneous_calibrated"]!));
        Assert.InRange((double)json["calibration"]!["measured_sparsity"]!, 0.45, 0.55);
        // Every stage's wall time is in the report, in order, and they account for the whole run.
        var stages = json["calibration"]!["stages"]!.AsArray();
        Assert.Equal(["opening the probe", "held-out loss, dense", "magnitude histograms", "held-out loss, uniform", "compensation"],
            stages.Select(st => (string)st!["name"]!));
        double total = (double)json["calibration"]!["seconds"]!, sum = stages.Sum(st => (double)st!["seconds"]!);
        Assert.InRange(sum, 0.5 * total, total + 0.01);
        Assert.Empty(Directory.GetDirectories(_dir)); // the probe's work folder is gone

        // The plan re-applied gives the same thresholds.
        string again = Path.Combine(_dir, "again.onnx");
        var (code2, stdout2, error2) = Run("sparsify", Llama, "-o", again, "--mode", "threshold", "--plan", plan, "--json");
        Assert.True(code2 == 0, error2);
        var first = json["rewritten"]!.AsArray().Select(r => (float)r!["threshold"]!);
        var second = JsonNode.Parse(stdout2)!["rewritten"]!.AsArray().Select(r => (float)r!["threshold"]!);
        Assert.Equal(first, second);
    }

    /// <summary>
    /// The default, sequential calibration, as a log reads it: with <c>--progress plain</c> one line per block with the
    /// elapsed time and, from the second block on, an estimate of what is left; every block's and stage's time in the JSON.
    /// </summary>
    [Fact]
    public void SequentialCalibration_LogsEachBlockWithWhatIsLeft_AndReportsItsStages()
    {
        string output = Path.Combine(_dir, "sparse.onnx");
        var (code, stdout, error) = Run(["sparsify", Llama, "-o", output, "--sparsity", "0.5", "--calibration", Valid, "--documents", "lines",
            "--block-train-steps", "4", "--end-to-end-steps", "2", "--progress", "plain", "--json", .. Small]);
        Assert.True(code == 0, error);
        var json = JsonNode.Parse(stdout)!;
        Assert.Equal("sequential", (string)json["calibration"]!["method"]!);
        var lines = error.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Contains(lines, l => System.Text.RegularExpressions.Regex.IsMatch(l, @"^\[\s*\d+ s\]\s+0%  Calibrating: block 1 of 6$"));
        for (int b = 2; b <= 6; b++)
            Assert.Contains(lines, l => System.Text.RegularExpressions.Regex.IsMatch(l, $@"^\[\s*\d+ s\]\s+\d+%  Calibrating: block {b} of 6 \(about [\d.]+ (s|min) left\)$"));
        Assert.Contains(lines, l => l.Contains("Calibrating: block 3 of 6: training spontaneous neurons", StringComparison.Ordinal));
        Assert.DoesNotContain('\r', error);  // no live bar in a log
        var stages = json["calibration"]!["stages"]!.AsArray().Select(st => (string)st!["name"]!).ToArray();
        Assert.Equal("embedding", stages[1]);
        Assert.Contains("block 6 of 6 (layer 5)", stages);
        Assert.Contains("blocks: training", stages);
        Assert.Contains("held-out losses", stages);
        Assert.Equal("end-to-end training", stages[^1]);
        Assert.True(File.Exists(output));
        Assert.Empty(Directory.GetDirectories(_dir));
    }

    /// <summary>--device cuda on an ONNX Runtime without the CUDA provider: a clear error, no model, no work folder.</summary>
    [Fact]
    public void Calibration_OnCudaWithoutTheProviderIsAnInputError()
    {
        string output = Path.Combine(_dir, "sparse.onnx");
        var (code, _, error) = Run(["sparsify", Llama, "-o", output, "--mode", "threshold", "--sparsity", "0.5", "--calibration", Valid,
            "--device", "cuda", .. Small]);
        Assert.Equal(1, code);
        Assert.Contains("CUDA execution provider is not available", error);
        Assert.False(File.Exists(output));
        Assert.Empty(Directory.GetDirectories(_dir));
    }

    /// <summary>A calibration killed with SIGKILL leaves its work folder; the next run for the same output removes it and says so.</summary>
    [Fact]
    public void Calibration_RemovesTheWorkFolderOfAnEarlierKilledRun()
    {
        using var ended = System.Diagnostics.Process.Start(new System.Diagnostics.ProcessStartInfo("true") { UseShellExecute = false })!;
        ended.WaitForExit();
        string leftover = Path.Combine(_dir, $".sparse.onnx.calibration-{ended.Id}");
        Directory.CreateDirectory(leftover);
        File.WriteAllBytes(Path.Combine(leftover, "probe.onnx.data"), new byte[4096]);
        string output = Path.Combine(_dir, "sparse.onnx");
        var (code, _, error) = Run(["sparsify", Llama, "-o", output, "--mode", "threshold", "--sparsity", "0.5", "--calibration", Valid,
            "--compensation", "off", "--spontaneous", "off", .. Small]);
        Assert.True(code == 0, error);
        Assert.Contains($"note: removed {leftover}, the work folder of an earlier run that did not finish", error);
        Assert.Empty(Directory.GetDirectories(_dir));
    }

    [Theory]
    [InlineData("--plan", "x.json", "either --plan or --calibration")]
    [InlineData("--threshold", "0.1", "give --sparsity, not --threshold")]
    public void Calibration_RefusesContradictoryOptions(string option, string value, string message)
    {
        var args = new List<string> { "sparsify", Llama, "-o", Path.Combine(_dir, "o.onnx"), "--mode", "threshold", "--calibration", Valid, option, value };
        if (option != "--threshold") args.AddRange(["--sparsity", "0.5"]);
        var (code, _, error) = Run(args.ToArray());
        Assert.Equal(1, code);
        Assert.Contains(message, error);
        Assert.False(File.Exists(Path.Combine(_dir, "o.onnx")));
    }

    [Fact]
    public void Calibration_WithoutSpontaneousAdds_ComputesNoCompensation_AndRefusesToForceIt()
    {
        string output = Path.Combine(_dir, "plain.onnx");
        var (code, stdout, error) = Run(["sparsify", Llama, "-o", output, "--mode", "threshold", "--sparsity", "0.5", "--calibration", Valid,
            "--no-spontaneous", "--json", .. Small]);
        Assert.True(code == 0, error);
        var calibration = JsonNode.Parse(stdout)!["calibration"]!;
        Assert.All(calibration["groups"]!.AsArray(), g => Assert.False((bool)g!["compensated"]!));
        Assert.False(File.Exists(Path.Combine(_dir, "plain.plan.spontaneous.bin")));

        var (code2, _, error2) = Run(["sparsify", Llama, "-o", Path.Combine(_dir, "x.onnx"), "--mode", "threshold", "--sparsity", "0.5",
            "--calibration", Valid, "--no-spontaneous", "--compensation", "on", .. Small]);
        Assert.Equal(1, code2);
        Assert.Contains("drop --no-spontaneous", error2);

        var (code3, _, error3) = Run(["sparsify", Llama, "-o", Path.Combine(_dir, "x.onnx"), "--mode", "threshold", "--sparsity", "0.5",
            "--calibration", Valid, "--no-spontaneous", "--spontaneous", "trained", .. Small]);
        Assert.Equal(1, code3);
        Assert.Contains("--spontaneous trained needs the spontaneous-neuron Adds", error3);

        var (code4, _, error4) = Run(["sparsify", Llama, "-o", Path.Combine(_dir, "x.onnx"), "--mode", "threshold", "--sparsity", "0.5",
            "--calibration", Valid, "--spontaneous", "off", "--compensation", "on", .. Small]);
        Assert.Equal(1, code4);
        Assert.Contains("drop --compensation on", error4);
        Assert.False(File.Exists(Path.Combine(_dir, "x.onnx")));
    }

    [Fact]
    public void Calibration_TrainsSpontaneousNeurons_AndReportsHowItWent()
    {
        string output = Path.Combine(_dir, "trained.onnx");
        var (code, stdout, error) = Run(["sparsify", Llama, "-o", output, "--mode", "threshold", "--sparsity", "0.6", "--calibration", Valid,
            "--spontaneous", "trained", "--train-space", "input", "--train-init", "zero", "--train-steps", "6", "--train-batch", "2",
            "--train-keep", "always", "--compensation", "off", "--calibration-method", "full", "--json", .. Small]);
        Assert.True(code == 0, error);
        var calibration = JsonNode.Parse(stdout)!["calibration"]!;
        var training = calibration["training"]!;
        Assert.True((bool)training["kept"]!);
        Assert.Equal(6, (int)training["steps"]!);
        Assert.Equal([0, 6], training["history"]!.AsArray().Select(h => (int)h!["step"]!));
        Assert.Equal((double)calibration["validation_nll"]!["trained"]!, (double)calibration["validation_nll"]!["final"]!);
        Assert.All(JsonNode.Parse(stdout)!["rewritten"]!.AsArray(), r => Assert.True((bool)r!["spontaneous_calibrated"]!));
        var plan = JsonNode.Parse(File.ReadAllText(Path.Combine(_dir, "trained.plan.json")))!;
        Assert.Contains("spontaneous neurons trained by KL to the dense model (input space, from zero", (string)plan["calibration"]!["source"]!);
        Assert.Empty(Directory.GetDirectories(_dir));
    }

    [Fact]
    public void Calibration_WithTooLittleText_FailsNamingTheShortfall_AndWritesNothing()
    {
        string text = Path.Combine(_dir, "short.txt");
        File.WriteAllText(text, "A short calibration text.\n");
        var (code, _, error) = Run(["sparsify", Llama, "-o", Path.Combine(_dir, "o.onnx"), "--sparsity", "0.5", "--calibration", text, .. Small]);
        Assert.Equal(1, code);
        Assert.Contains("8 calibration + 4 validation windows were asked for", error);
        Assert.Equal([text], Directory.GetFileSystemEntries(_dir));
    }
}
