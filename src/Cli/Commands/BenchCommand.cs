using System.CommandLine;
using System.Text.Json;
using System.Text.Json.Nodes;
using Spectre.Console;
using SparseOnnx.Cli.Benchmarks;
using SparseOnnx.Runtime.Benchmarking;
using SparseOnnx.Runtime.Inference;

namespace SparseOnnx.Cli.Commands;

/// <summary>
/// <c>sparseonnx bench MODEL [--baseline DENSE] [--prompt-tokens 128] [--tokens 128] [--threads N] [--json]</c>:
/// prefill and decode tokens/s of a model and of its baseline, interleaved in the same run, medians.
/// </summary>
public static class BenchCommand
{
    public static Command Create()
    {
        var model = new Argument<FileInfo>("model") { Description = "The ONNX causal LM to measure (typically the sparsified one)." };
        var baseline = new Option<FileInfo?>("--baseline") { Description = "The dense model to compare with, measured in the same run." };
        var promptTokens = new Option<int>("--prompt-tokens") { Description = "Prompt length (one prefill call).", DefaultValueFactory = _ => 128 };
        var tokens = new Option<int>("--tokens") { Description = "Tokens decoded one at a time after the prefill.", DefaultValueFactory = _ => 128 };
        var repetitions = new Option<int>("--repetitions") { Description = "Measured repetitions per model (medians are reported).", DefaultValueFactory = _ => 3 };
        var warmup = new Option<int>("--warmup") { Description = "Unmeasured repetitions per model first.", DefaultValueFactory = _ => 1 };
        var json = new Option<bool>("--json") { Description = "Print JSON (decode_tokens_per_s, baseline_decode_tokens_per_s, decode_speedup, …)." };
        var isolation = new Option<string>("--isolation")
        {
            Description = "process: each repetition of each model in a process of its own, so each measurement sees only its model in memory, " +
                          "as a host serving it does (default); none: both models loaded in this process, on one shared thread pool.",
            DefaultValueFactory = _ => "process",
        };
        isolation.AcceptOnlyFromAmong("process", "none");
        var profile = new Option<string?>("--profile") { Description = "Write ONNX Runtime's per-node profiles (chrome://tracing JSON) to files starting with this prefix." };
        var runtime = new RuntimeOptions();
        var command = new Command("bench",
            "Prefill and decode throughput of a model, and of its baseline in the same run: each repetition prefills a seeded random " +
            "prompt in one call, then decodes greedily one token at a time through the KV cache; the models alternate per repetition " +
            "(A B, B A, …) so drift on the machine falls on both, and the medians over the repetitions are reported with the speedup " +
            "over the baseline. By default every repetition runs in a process of its own (--isolation).")
        {
            model, baseline, promptTokens, tokens, repetitions, warmup, isolation, json, profile,
        };
        runtime.AddTo(command);
        command.SetAction(parse =>
        {
            var options = new DecodeBenchmarkOptions
            {
                PromptTokens = parse.GetValue(promptTokens), DecodeTokens = parse.GetValue(tokens),
                Repetitions = parse.GetValue(repetitions), WarmupRepetitions = parse.GetValue(warmup),
            };
            options.Validate();
            var lmOptions = runtime.Read(parse) with { ProfilePrefix = parse.GetValue(profile) };
            string modelPath = parse.GetValue(model)!.FullName;
            string? baselinePath = parse.GetValue(baseline)?.FullName;
            bool isolated = parse.GetValue(isolation) == "process" && lmOptions.ProfilePrefix is null;
            if (!isolated) lmOptions = RuntimeOptions.WithSharedPool(lmOptions);
            var (result, device) = isolated
                ? RunIsolated(parse, modelPath, baselinePath, options, lmOptions)
                : RunInProcess(parse, modelPath, baselinePath, options, lmOptions);
            var writer = parse.InvocationConfiguration.Output;
            var machine = MachineInfo.Read();
            if (parse.GetValue(json))
                writer.WriteLine(ToJson(result, lmOptions, device, machine, isolated ? "process" : "none").ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
            else
                Render(result, lmOptions, device, machine, InspectCommand.ConsoleFor(writer));
            return ExitCodes.Success;
        });
        return command;
    }

    private static (DecodeBenchmarkResult, ExecutionDevice) RunIsolated(ParseResult parse, string modelPath, string? baselinePath,
        DecodeBenchmarkOptions options, CausalLmOptions lmOptions)
    {
        if (!File.Exists(modelPath)) throw new FileNotFoundException($"The model '{modelPath}' does not exist.", modelPath);
        if (baselinePath is not null && !File.Exists(baselinePath)) throw new FileNotFoundException($"The baseline '{baselinePath}' does not exist.", baselinePath);
        var result = ProgressDisplay.Run(parse.InvocationConfiguration.Error, "Benchmark", bar =>
            IsolatedDecodeBenchmark.Run(modelPath, baselinePath, options, lmOptions, bar));
        return (result, lmOptions.Device);
    }

    private static (DecodeBenchmarkResult, ExecutionDevice) RunInProcess(ParseResult parse, string modelPath, string? baselinePath,
        DecodeBenchmarkOptions options, CausalLmOptions lmOptions)
    {
        using var lm = CausalLm.Open(modelPath, lmOptions);
        using var dense = baselinePath is null ? null : CausalLm.Open(baselinePath, lmOptions);
        var result = ProgressDisplay.Run(parse.InvocationConfiguration.Error, "Benchmark", bar =>
            DecodeBenchmark.Run(lm, dense, options, new ProgressDisplay.Immediate<BenchmarkProgress>(p =>
                bar.Update(p.Done, p.Total, p.Running.Length > 0 ? $"Benchmark: {Path.GetFileName(Path.GetDirectoryName(p.Running))}/{Path.GetFileName(p.Running)}" : null))));
        if (lmOptions.ProfilePrefix is not null)
            foreach (var profiled in new[] { lm, dense })
                if (profiled is not null) parse.InvocationConfiguration.Error.WriteLine($"profile of {profiled.ModelPath}: {profiled.EndProfiling()}");
        return (result, lm.Device);
    }

    internal static JsonObject ToJson(DecodeBenchmarkResult result, CausalLmOptions lmOptions, ExecutionDevice device, MachineInfo machine, string isolation)
    {
        static JsonArray Samples(ModelThroughput t) => new(t.Samples.Select(s => (JsonNode)new JsonObject
        {
            ["prefill_tokens_per_s"] = s.PrefillTokensPerSecond,
            ["decode_tokens_per_s"] = s.DecodeTokensPerSecond,
        }).ToArray());
        var json = new JsonObject
        {
            ["model"] = result.Model.ModelPath,
            ["prompt_tokens"] = result.Options.PromptTokens,
            ["decode_tokens"] = result.Options.DecodeTokens,
            ["repetitions"] = result.Options.Repetitions,
            ["threads"] = lmOptions.Threads,
            ["device"] = device.ToString().ToLowerInvariant(),
            ["isolation"] = isolation,
            ["machine"] = machine.ToString(),
            ["prefill_tokens_per_s"] = result.Model.PrefillTokensPerSecond,
            ["decode_tokens_per_s"] = result.Model.DecodeTokensPerSecond,
            ["samples"] = Samples(result.Model),
        };
        if (result.Baseline is { } b)
        {
            json["baseline"] = b.ModelPath;
            json["baseline_prefill_tokens_per_s"] = b.PrefillTokensPerSecond;
            json["baseline_decode_tokens_per_s"] = b.DecodeTokensPerSecond;
            json["baseline_samples"] = Samples(b);
            json["decode_speedup"] = result.DecodeSpeedup;
            json["prefill_speedup"] = result.PrefillSpeedup;
        }
        return json;
    }

    private static void Render(DecodeBenchmarkResult result, CausalLmOptions lmOptions, ExecutionDevice device, MachineInfo machine, IAnsiConsole console)
    {
        console.WriteLine($"{machine}; {lmOptions.Threads} threads, {device.ToString().ToLowerInvariant()}; prompt {result.Options.PromptTokens} tokens, " +
                          $"{result.Options.DecodeTokens} decoded; medians of {result.Options.Repetitions} (after {result.Options.WarmupRepetitions} warm-up)");
        var table = new Table().AddColumns("", "model", "prefill tokens/s", "decode tokens/s");
        table.AddRow("model", Markup.Escape(result.Model.ModelPath), $"{result.Model.PrefillTokensPerSecond:F1}", $"{result.Model.DecodeTokensPerSecond:F2}");
        if (result.Baseline is { } b)
        {
            table.AddRow("baseline", Markup.Escape(b.ModelPath), $"{b.PrefillTokensPerSecond:F1}", $"{b.DecodeTokensPerSecond:F2}");
            table.AddRow("speedup", "", $"{result.PrefillSpeedup:F2}×", $"{result.DecodeSpeedup:F2}×");
        }
        console.Write(table);
    }
}
