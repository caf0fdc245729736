using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.ML.OnnxRuntime;
using SparseOnnx.Cli.Benchmarks;

namespace SparseOnnx.Cli.Reporting;

/// <summary>Writes a sweep as report.md (table and method), report.json, perplexity.png and throughput.png.</summary>
internal static class SweepReportWriter
{
    private static readonly CultureInfo Invariant = CultureInfo.InvariantCulture;

    public static IReadOnlyList<string> Write(SweepResult result, string folder, string textDescription, string commandLine)
    {
        Directory.CreateDirectory(folder);
        var machine = MachineInfo.Read();
        string markdown = Path.Combine(folder, "report.md"), json = Path.Combine(folder, "report.json");
        string perplexityPlot = Path.Combine(folder, "perplexity.png"), throughputPlot = Path.Combine(folder, "throughput.png");
        var written = new List<string> { markdown, json, perplexityPlot, throughputPlot };
        SweepPlots.Perplexity(result, perplexityPlot);
        SweepPlots.Throughput(result, throughputPlot);
        if (result.Kernels.Count > 0)
        {
            string kernelPlot = Path.Combine(folder, "kernels.png");
            SweepPlots.Kernels(result, kernelPlot);
            written.Add(kernelPlot);
        }
        File.WriteAllText(markdown, Markdown(result, machine, textDescription, commandLine));
        File.WriteAllText(json, Json(result, machine, textDescription).ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
        return written;
    }

    internal static string Label(SweepRow row) => row.Variant switch
    {
        SweepVariant.Dense => "dense",
        SweepVariant.TopK => $"{row.Sparsity!.Value.ToString("0.##", Invariant)} top-k",
        _ => $"{row.Sparsity!.Value.ToString("0.##", Invariant)} calibrated",
    };

    private static string F(double value, string format) => value.ToString(format, Invariant);

    /// <summary>Share of the top-k model's perplexity gap to dense that the calibrated model closes.</summary>
    private static double GapRecovered(double dense, double topK, double calibrated) => (topK - calibrated) / (topK - dense);

    private static string Markdown(SweepResult r, MachineInfo machine, string text, string commandLine)
    {
        var dense = r.Rows[0];
        var p = r.Options.Perplexity;
        var b = r.Options.Benchmark;
        var md = new StringBuilder();
        md.AppendLine($"# Sparsity report: {Path.GetFileName(Path.GetDirectoryName(Path.GetFullPath(r.ModelPath)))}/{Path.GetFileName(r.ModelPath)}");
        md.AppendLine();
        md.AppendLine($"Made by `{commandLine}` in {r.Elapsed.TotalMinutes.ToString("F1", Invariant)} minutes.");
        md.AppendLine();
        md.AppendLine($"- Machine: {machine}; ONNX Runtime {OrtEnv.Instance().GetVersionString()}, {r.Options.Runtime.Device.ToString().ToLowerInvariant()}, {r.Options.Runtime.Threads} threads.");
        md.AppendLine($"- Sparsification: `TopKSparseMatMul` on every projection of the kinds " +
                      $"{string.Join(", ", (r.Options.Kinds ?? GraphRewriter.Sparsify.SparsifyOptions.DefaultKinds).Select(k => k.ToString()).Order())}. " +
                      $"Top-k rows: k = (1 − s)·K on every projection, no calibration{(r.Options.SpontaneousNeurons ? " (spontaneous-neuron Adds present, zeros)" : "")}.");
        if (r.Options.Calibration is { } c)
        {
            var t = c.Template;
            md.AppendLine($"- Calibrated rows: `sparsify --calibration` at the same levels on {c.Data.Source}: {CalibrationRecipe(t)}.");
        }
        md.AppendLine($"- Perplexity: {text}, read as {r.Options.TextReading}; {r.StreamTokens.ToString("N0", Invariant)} tokens, windows of {p.SequenceLength} every {p.Stride} tokens " +
                      $"(`sparseonnx eval` states the method), {dense.Perplexity.Tokens.ToString("N0", Invariant)} tokens scored per model.");
        md.AppendLine($"- Throughput: `sparseonnx bench` method, prompt {b.PromptTokens} tokens (one prefill call), {b.DecodeTokens} tokens decoded " +
                      $"one at a time; all models interleaved in one run, medians of {b.Repetitions} repetitions after {b.WarmupRepetitions} warm-up.");
        md.AppendLine();

        var calibrated = r.Rows.Where(x => x.Variant == SweepVariant.Calibrated).ToDictionary(x => x.Sparsity!.Value);
        md.AppendLine("## Quality");
        md.AppendLine();
        if (calibrated.Count > 0)
        {
            md.AppendLine($"What calibration buys: perplexity at the same sparsity (dense {F(dense.Perplexity.Perplexity, "F2")}).");
            md.AppendLine();
            md.AppendLine("| sparsity | top-k, uncalibrated | calibrated | gap to dense recovered | measured sparsity | allocation | trained vectors kept | calibration s |");
            md.AppendLine("| ---: | ---: | ---: | ---: | ---: | --- | --- | ---: |");
            foreach (var topK in r.Rows.Where(x => x.Variant == SweepVariant.TopK))
            {
                if (!calibrated.TryGetValue(topK.Sparsity!.Value, out var cal)) continue;
                var result = cal.Calibration!;
                md.AppendLine($"| {F(topK.Sparsity.Value, "0.##")} | {F(topK.Perplexity.Perplexity, "F2")} | {F(cal.Perplexity.Perplexity, "F2")} | " +
                              $"{F(GapRecovered(dense.Perplexity.Perplexity, topK.Perplexity.Perplexity, cal.Perplexity.Perplexity), "0%")} | " +
                              $"{F(result.MeasuredSparsity, "0.0%")} | {result.Allocation.ToString().ToLowerInvariant()} | " +
                              $"{(result.Training is { } t ? t.Kept ? $"yes (step {t.BestStep})" : "no (no held-out gain)" : "–")} | {F(result.Elapsed.TotalSeconds, "0")} |");
            }
            md.AppendLine();
            md.AppendLine("Measured sparsity: the share of projection inputs the calibrated thresholds drop on the held-out calibration windows, " +
                          "weighted by parameters; top-k drops exactly the level.");
            md.AppendLine();
        }
        md.AppendLine("![perplexity vs sparsity](perplexity.png)");
        md.AppendLine();

        md.AppendLine("## Speed");
        md.AppendLine();
        if (r.Kernels.Count > 0)
        {
            var levels = r.Kernels[0].Report.Results.Select(x => x.Sparsity).ToList();
            md.AppendLine("### The kernel at Llama-size projections");
            md.AppendLine();
            md.AppendLine($"One decode token's product [1, K] × [K, N] in fp32, `TopKSparseMatMul` against ONNX Runtime's own MatMul on the same weights, " +
                          $"in this run, {r.Options.Runtime.Threads} threads, weights cycled through copies that exceed twice the L3 cache so they stream from DRAM as a " +
                          "real model's do (`sparseonnx bench-op` method; medians). Speedup over dense, with the bound 1/(1 − s) of reading only the kept rows at dense's " +
                          $"own speed{NothingDroppedRemark(r.Kernels)}:");
            md.AppendLine();
            md.AppendLine("| projection | [K, N] | dense ms | " + string.Join(" | ", levels.Select(l => $"{F(l, "0%")}")) + " |");
            md.AppendLine("| --- | --- | ---: | " + string.Join(" | ", levels.Select(_ => "---:")) + " |");
            foreach (var k in r.Kernels)
                md.AppendLine($"| {k.Shape.Projection} | [{k.Shape.K}, {k.Shape.N}] | {F(k.Report.Results[0].DenseMs, "F2")} | " +
                              string.Join(" | ", k.Report.Results.Select(x => $"{F(x.Speedup, "F2")}× (bound {F(x.Bound, "F1")}×)")) + " |");
            md.AppendLine();
            md.AppendLine("![kernel speedup vs sparsity](kernels.png)");
            md.AppendLine();
        }
        md.AppendLine("### This model end to end");
        md.AppendLine();
        double megabytes = r.ModelBytes / 1e6;
        string cache = machine.L3CacheBytes > 0 ? $"the {machine.L3CacheBytes >> 20} MiB L3 cache" : "the CPU caches";
        md.AppendLine($"This model is {F(megabytes, "F0")} MB: {(r.ModelBytes <= 2 * machine.L3CacheBytes ? "about the size of" : "larger than")} {cache}, " +
                      "so a dense decode step reads its weights mostly from cache and its time goes to the hundred-odd small operator calls of a token " +
                      "(norms, attention, RoPE, the top-k selection itself), not to weight reads; input sparsity saves weight reads, which is what a decode step " +
                      "of a real-size model, gigabytes streamed from DRAM, is made of (the kernel table above). End-to-end speedups on a model this small say little about that.");
        md.AppendLine();
        md.AppendLine("| model | sparsity | projections rewritten | perplexity | vs dense | prefill tokens/s | decode tokens/s | decode speedup | prefill speedup |");
        md.AppendLine("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
        foreach (var row in r.Rows)
        {
            string name = row.Variant switch { SweepVariant.Dense => "dense (input)", SweepVariant.TopK => "sparsified", _ => "calibrated" };
            string sparsity = row.Sparsity is double s ? s.ToString("0.##", Invariant) : "–";
            double change = row.Perplexity.Perplexity / dense.Perplexity.Perplexity - 1;
            md.AppendLine($"| {name} | {sparsity} | {row.RewrittenProjections} | {row.Perplexity.Perplexity.ToString("F2", Invariant)} | " +
                          $"{(row.Sparsity is null ? "–" : change.ToString("+0.0%;-0.0%", Invariant))} | " +
                          $"{row.Throughput.PrefillTokensPerSecond.ToString("F1", Invariant)} | {row.Throughput.DecodeTokensPerSecond.ToString("F2", Invariant)} | " +
                          $"{(row.Throughput.DecodeTokensPerSecond / dense.Throughput.DecodeTokensPerSecond).ToString("F2", Invariant)}× | " +
                          $"{(row.Throughput.PrefillTokensPerSecond / dense.Throughput.PrefillTokensPerSecond).ToString("F2", Invariant)}× |");
        }
        md.AppendLine();
        md.AppendLine("![decode and prefill throughput vs sparsity](throughput.png)");
        return md.ToString();
    }

    private static JsonObject Json(SweepResult r, MachineInfo machine, string text) => new()
    {
        ["model"] = r.ModelPath,
        ["text"] = text,
        ["text_reading"] = r.Options.TextReading,
        ["model_bytes"] = r.ModelBytes,
        ["machine"] = machine.ToString(),
        ["onnxruntime"] = OrtEnv.Instance().GetVersionString(),
        ["threads"] = r.Options.Runtime.Threads,
        ["seq_len"] = r.Options.Perplexity.SequenceLength,
        ["stride"] = r.Options.Perplexity.Stride,
        ["prompt_tokens"] = r.Options.Benchmark.PromptTokens,
        ["decode_tokens"] = r.Options.Benchmark.DecodeTokens,
        ["repetitions"] = r.Options.Benchmark.Repetitions,
        ["calibration_data"] = r.Options.Calibration?.Data.Source,
        ["rows"] = new JsonArray(r.Rows.Select(row => (JsonNode)new JsonObject
        {
            ["variant"] = row.Variant.ToString().ToLowerInvariant(),
            ["sparsity"] = row.Sparsity,
            ["measured_sparsity"] = row.Calibration?.MeasuredSparsity,
            ["allocation"] = row.Calibration?.Allocation.ToString().ToLowerInvariant(),
            ["trained_vectors_kept"] = row.Calibration?.Training?.Kept,
            ["calibration_seconds"] = row.Calibration?.Elapsed.TotalSeconds,
            ["model"] = row.ModelPath,
            ["projections_rewritten"] = row.RewrittenProjections,
            ["perplexity"] = row.Perplexity.Perplexity,
            ["tokens"] = row.Perplexity.Tokens,
            ["prefill_tokens_per_s"] = row.Throughput.PrefillTokensPerSecond,
            ["decode_tokens_per_s"] = row.Throughput.DecodeTokensPerSecond,
            ["decode_speedup"] = row.Throughput.DecodeTokensPerSecond / r.Rows[0].Throughput.DecodeTokensPerSecond,
            ["prefill_speedup"] = row.Throughput.PrefillTokensPerSecond / r.Rows[0].Throughput.PrefillTokensPerSecond,
        }).ToArray()),
        ["kernels"] = new JsonArray(r.Kernels.Select(k => (JsonNode)new JsonObject
        {
            ["projection"] = k.Shape.Projection,
            ["k"] = k.Shape.K,
            ["n"] = k.Shape.N,
            ["benchmark"] = Commands.BenchOpCommand.ToJson(k.Report),
        }).ToArray()),
    };
    /// <summary>What the calibrated rows ran, in words: the method and its stages as <paramref name="t"/> sets them.</summary>
    internal static string CalibrationRecipe(Calibration.CalibrationOptions t)
    {
        bool sequential = t.Method == Calibration.Sequential.CalibrationMethod.Sequential;
        string greedy = $"TEAL's block-wise search, {(t.GreedyObjective == Calibration.GreedyObjective.Logits ? "logits-KL" : "block-output")} objective, step {F(t.GreedyStep, "0.##")}";
        string allocation = t.Allocation switch
        {
            Calibration.AllocationMethod.Auto when sequential =>
                $"greedy allocation where its search is estimated within {F(t.GreedyBudget.TotalMinutes, "0.#")} minutes ({greedy}), uniform otherwise",
            Calibration.AllocationMethod.Greedy => $"greedy allocation ({greedy})",
            _ => "uniform allocation",
        };
        string training = t.Training switch
        {
            null => "no training",
            { } tr when sequential => $"then spontaneous neurons trained by KL to the dense model on the whole model ({(t.Sequential.EndToEndSteps is { } steps ? $"{steps} Adam steps" : $"{Calibration.Sequential.SequentialOptions.AutoEndToEndSteps} Adam steps where they fit in memory and are estimated within {F(t.Sequential.EndToEndBudget.TotalMinutes, "0.#")} minutes")}), kept only when they lower the held-out loss",
            { } tr => $"spontaneous neurons trained by KL to the dense model (at most {tr.Steps} Adam steps), kept only when they lower the held-out loss",
        };
        return (sequential ? "block by block (the sequential method): " : "on the whole model (the full method): ") +
            $"per-projection thresholds, {allocation}, closed-form compensation {t.Compensation.ToString().ToLowerInvariant()}, {training}";
    }
    /// <summary>
    /// What the 0% column says, as measured: the kernel ahead of ONNX Runtime's MatMul with nothing dropped (so it can
    /// pass the bound), or behind it by the cost of selecting rows. Empty when 0% was not measured.
    /// </summary>
    internal static string NothingDroppedRemark(IReadOnlyList<KernelRow> kernels)
    {
        var dense = kernels.SelectMany(k => k.Report.Results.Where(x => x.Sparsity == 0).Select(x => x.Speedup)).ToList();
        if (dense.Count == 0) return "";
        return dense.Min() >= 1
            ? " (the kernel beats ORT's MatMul even with nothing dropped, so it can pass that bound)"
            : $" (with nothing dropped the kernel runs at {F(dense.Min(), "F2")}–{F(dense.Max(), "F2")}× ORT's MatMul: what selecting the rows costs where none are skipped)";
    }
}
