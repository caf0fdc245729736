using System.CommandLine;
using System.Diagnostics;
using SparseOnnx.GraphRewriter.IO;
using SparseOnnx.GraphRewriter.Synthesis;

namespace SparseOnnx.Cli.Commands;

/// <summary>
/// <c>sparseonnx synth -o OUT [--preset llama-3.2-1b] [--layers N] [--seed S]</c>: writes a runnable Llama-architecture
/// decoder with seeded random weights, for benchmarks at real model sizes without downloading a model.
/// </summary>
public static class SynthCommand
{
    public static Command Create()
    {
        var output = new Option<FileInfo>("--output", "-o") { Description = "Where to write the model (weights go to <model>.data beside it when large).", Required = true };
        var preset = new Option<string>("--preset")
        {
            Description = $"Dimensions: {string.Join(", ", LlamaDimensions.PresetNames)}.",
            DefaultValueFactory = _ => "llama-3.2-1b",
        };
        var layers = new Option<int?>("--layers") { Description = "Override the preset's number of layers." };
        var seed = new Option<ulong>("--seed") { Description = "Seed of the random weights (the same seed writes the same bytes).", DefaultValueFactory = _ => 1 };
        var command = new Command("synth",
            "Write a runnable Llama-architecture decoder (Optimum KV-cache I/O, fp32) with seeded random weights: a stand-in for benchmarks " +
            "at real sizes. Its outputs mean nothing; only its shapes and speed do.")
        {
            output, preset, layers, seed,
        };
        command.SetAction(parse =>
        {
            var dims = LlamaDimensions.Preset(parse.GetValue(preset)!);
            if (parse.GetValue(layers) is int overrideLayers) dims = dims with { Layers = overrideLayers };
            dims.Validate();
            string target = parse.GetValue(output)!.FullName;
            var clock = Stopwatch.StartNew();
            using var model = SyntheticLlama.Build(dims, parse.GetValue(seed));
            var saved = ProgressDisplay.Run(parse.InvocationConfiguration.Error, $"Writing {dims.ParameterCount / 1e9:F2} B parameters",
                _ => ModelSaver.Save(model, target));
            clock.Stop();
            parse.InvocationConfiguration.Output.WriteLine(
                $"wrote {saved.ModelPath} ({dims.Layers} layers, hidden {dims.Hidden}, {dims.Heads}/{dims.KvHeads} heads, MLP {dims.Intermediate}, " +
                $"vocabulary {dims.Vocab}; {dims.ParameterCount:N0} parameters; {(saved.ModelFileBytes + saved.ExternalBytes) / 1e9:F2} GB) in {clock.Elapsed.TotalSeconds:F1} s");
            return ExitCodes.Success;
        });
        return command;
    }
}
