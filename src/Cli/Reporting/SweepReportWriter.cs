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
        SweepPlots.Perplexity(result, perplexityPlot);
        SweepPlots.Throughput(result, throughputPlot);
        File.WriteAllText(markdown, Markdown(result, machine, textDescription, commandLine));
        File.WriteAllText(json, Json(result, machine, textDescription).ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
        return [markdown, json, perplexityPlot, throughputPlot];
    }

    internal static string Label(SweepRow row) => row.Sparsity is double s ? $"{s.ToString("0.##", Invariant)}" : "dense";

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
        md.AppendLine($"- Sparsification: `TopKSparseMatMul` in top-k mode, the same sparsity on every projection of the kinds " +
                      $"{string.Join(", ", (r.Options.Kinds ?? GraphRewriter.Sparsify.SparsifyOptions.DefaultKinds).Select(k => k.ToString()).Order())}" +
                      $"{(r.Options.SpontaneousNeurons ? ", spontaneous-neuron Adds present (zeros: no calibration)" : ", no spontaneous-neuron Adds")}.");
        md.AppendLine($"- Perplexity: {text}; {r.StreamTokens.ToString("N0", Invariant)} tokens, windows of {p.SequenceLength} every {p.Stride} tokens " +
                      $"(`sparseonnx eval` states the method), {dense.Perplexity.Tokens.ToString("N0", Invariant)} tokens scored per model.");
        md.AppendLine($"- Throughput: `sparseonnx bench` method, prompt {b.PromptTokens} tokens (one prefill call), {b.DecodeTokens} tokens decoded " +
                      $"one at a time; all models interleaved in one run, medians of {b.Repetitions} repetitions after {b.WarmupRepetitions} warm-up.");
        md.AppendLine();
        md.AppendLine("| model | sparsity | projections rewritten | perplexity | vs dense | prefill tokens/s | decode tokens/s | decode speedup | prefill speedup |");
        md.AppendLine("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
        foreach (var row in r.Rows)
        {
            string name = row.Sparsity is null ? "dense (input)" : $"sparsified";
            string sparsity = row.Sparsity is double s ? s.ToString("0.##", Invariant) : "–";
            double change = row.Perplexity.Perplexity / dense.Perplexity.Perplexity - 1;
            md.AppendLine($"| {name} | {sparsity} | {row.RewrittenProjections} | {row.Perplexity.Perplexity.ToString("F2", Invariant)} | " +
                          $"{(row.Sparsity is null ? "–" : change.ToString("+0.0%;-0.0%", Invariant))} | " +
                          $"{row.Throughput.PrefillTokensPerSecond.ToString("F1", Invariant)} | {row.Throughput.DecodeTokensPerSecond.ToString("F2", Invariant)} | " +
                          $"{(row.Throughput.DecodeTokensPerSecond / dense.Throughput.DecodeTokensPerSecond).ToString("F2", Invariant)}× | " +
                          $"{(row.Throughput.PrefillTokensPerSecond / dense.Throughput.PrefillTokensPerSecond).ToString("F2", Invariant)}× |");
        }
        md.AppendLine();
        md.AppendLine("![perplexity vs sparsity](perplexity.png)");
        md.AppendLine();
        md.AppendLine("![decode and prefill throughput vs sparsity](throughput.png)");
        return md.ToString();
    }

    private static JsonObject Json(SweepResult r, MachineInfo machine, string text) => new()
    {
        ["model"] = r.ModelPath,
        ["text"] = text,
        ["machine"] = machine.ToString(),
        ["onnxruntime"] = OrtEnv.Instance().GetVersionString(),
        ["threads"] = r.Options.Runtime.Threads,
        ["seq_len"] = r.Options.Perplexity.SequenceLength,
        ["stride"] = r.Options.Perplexity.Stride,
        ["prompt_tokens"] = r.Options.Benchmark.PromptTokens,
        ["decode_tokens"] = r.Options.Benchmark.DecodeTokens,
        ["repetitions"] = r.Options.Benchmark.Repetitions,
        ["rows"] = new JsonArray(r.Rows.Select(row => (JsonNode)new JsonObject
        {
            ["sparsity"] = row.Sparsity,
            ["model"] = row.ModelPath,
            ["projections_rewritten"] = row.RewrittenProjections,
            ["perplexity"] = row.Perplexity.Perplexity,
            ["tokens"] = row.Perplexity.Tokens,
            ["prefill_tokens_per_s"] = row.Throughput.PrefillTokensPerSecond,
            ["decode_tokens_per_s"] = row.Throughput.DecodeTokensPerSecond,
            ["decode_speedup"] = row.Throughput.DecodeTokensPerSecond / r.Rows[0].Throughput.DecodeTokensPerSecond,
            ["prefill_speedup"] = row.Throughput.PrefillTokensPerSecond / r.Rows[0].Throughput.PrefillTokensPerSecond,
        }).ToArray()),
    };
}
