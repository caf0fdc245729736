using System.Diagnostics;
using System.Globalization;
using System.Text.Json.Nodes;
using SparseOnnx.Runtime.Benchmarking;
using SparseOnnx.Runtime.Inference;

namespace SparseOnnx.Cli.Benchmarks;

/// <summary>
/// The decode benchmark with every repetition of every model in a process of its own: the parent runs
/// <c>sparseonnx bench MODEL --repetitions 1 --isolation none --json</c> for the model and its baseline in
/// turn (A B, B A, …), so drift on the machine still falls on both, while each measurement sees only its
/// own model in memory, as a host serving it does. Loaded side by side, a Llama-3.2-1B-sized pair (10.8 GB)
/// made both models' rates wander by up to 40% between repetitions; each alone was steady.
/// Model loading is not timed (each child warms up before it measures).
/// </summary>
internal static class IsolatedDecodeBenchmark
{
    public static DecodeBenchmarkResult Run(string modelPath, string? baselinePath, DecodeBenchmarkOptions options, CausalLmOptions runtime,
        ProgressDisplay.IBar bar)
    {
        var paths = baselinePath is null ? new[] { modelPath } : new[] { modelPath, baselinePath };
        var samples = paths.Select(_ => new List<BenchmarkSample>()).ToArray();
        int done = 0, total = options.Repetitions * paths.Length;
        for (int round = 0; round < options.Repetitions; round++)
        {
            var order = Enumerable.Range(0, paths.Length);
            if (round % 2 == 1) order = order.Reverse();
            foreach (int m in order)
            {
                bar.Update(done, total, $"Benchmark: {Path.GetFileName(Path.GetDirectoryName(paths[m]))}/{Path.GetFileName(paths[m])} (process {done + 1} of {total})");
                samples[m].Add(RunChild(paths[m], options, runtime));
                done++;
            }
        }
        bar.Update(done, total);
        ModelThroughput Summarize(int m) => new(paths[m], DecodeBenchmark.Median(samples[m].Select(s => s.PrefillTokensPerSecond)),
            DecodeBenchmark.Median(samples[m].Select(s => s.DecodeTokensPerSecond)), samples[m]);
        return new DecodeBenchmarkResult(options, Summarize(0), baselinePath is null ? null : Summarize(1));
    }

    private static BenchmarkSample RunChild(string modelPath, DecodeBenchmarkOptions options, CausalLmOptions runtime)
    {
        var (program, prefix) = SelfLauncher();
        var start = new ProcessStartInfo(program) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (string argument in prefix.Concat(
        [
            "bench", modelPath, "--isolation", "none", "--json", "--repetitions", "1",
            "--warmup", Math.Max(1, options.WarmupRepetitions).ToString(CultureInfo.InvariantCulture),
            "--prompt-tokens", options.PromptTokens.ToString(CultureInfo.InvariantCulture),
            "--tokens", options.DecodeTokens.ToString(CultureInfo.InvariantCulture),
            "--threads", runtime.Threads.ToString(CultureInfo.InvariantCulture),
            "--device", runtime.Device.ToString().ToLowerInvariant(),
        ])) start.ArgumentList.Add(argument);
        using var child = Process.Start(start) ?? throw new InvalidOperationException($"Could not start '{program}'.");
        var error = child.StandardError.ReadToEndAsync();
        string output = child.StandardOutput.ReadToEnd();
        child.WaitForExit();
        if (child.ExitCode != 0)
            throw new BenchmarkChildException($"The benchmark process for '{modelPath}' failed (exit code {child.ExitCode}): {error.Result.Trim()}");
        var json = JsonNode.Parse(output)!;
        return new BenchmarkSample((double)json["prefill_tokens_per_s"]!, (double)json["decode_tokens_per_s"]!);
    }

    /// <summary>How to start this command line again: its apphost, or the dotnet host with this assembly.</summary>
    private static (string Program, string[] Prefix) SelfLauncher()
    {
        string assembly = typeof(IsolatedDecodeBenchmark).Assembly.Location;
        string? process = Environment.ProcessPath;
        if (process is not null && Path.GetFileNameWithoutExtension(process) == "sparseonnx") return (process, []);
        if (process is not null && Path.GetFileNameWithoutExtension(process) == "dotnet") return (process, [assembly]);
        // Hosted elsewhere (a test host): run the assembly with the dotnet host next to the runtime in use.
        string runtimeDirectory = System.Runtime.InteropServices.RuntimeEnvironment.GetRuntimeDirectory();
        string dotnet = Path.GetFullPath(Path.Combine(runtimeDirectory, "..", "..", "..", OperatingSystem.IsWindows() ? "dotnet.exe" : "dotnet"));
        return (File.Exists(dotnet) ? dotnet : "dotnet", [assembly]);
    }
}

/// <summary>A benchmark child process failed; the message carries its error output.</summary>
internal sealed class BenchmarkChildException(string message) : IOException(message);
