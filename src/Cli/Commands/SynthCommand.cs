using System.CommandLine;
using System.Diagnostics;
using SparseOnnx.GraphRewriter.IO;
using SparseOnnx.GraphRewriter.Ir;
using SparseOnnx.GraphRewriter.Synthesis;

namespace SparseOnnx.Cli.Commands;

/// <summary>
/// <c>sparseonnx synth -o OUT [--preset llama-3.2-1b] [--layout optimum|genai] [--dtype fp32|fp16|bf16] [--layers N] [--seed S]</c>: writes a runnable
/// Llama-architecture decoder with seeded random weights, for benchmarks at real model sizes without downloading a model:
/// fp32 in the graph Optimum exports, or int4 in the graph the onnxruntime-genai builder writes for CPU.
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
        var layout = new Option<string>("--layout")
        {
            Description = "optimum: fp32, the graph torch.onnx / Optimum export (MatMul projections, decomposed RMSNorm, explicit attention, " +
                "position_ids); genai: int4, the graph the onnxruntime-genai builder writes with -p int4 for CPU (MatMulNBits block 32 " +
                "accuracy_level 4, packed qkv_proj, GroupQueryAttention, SkipSimplifiedLayerNormalization). Both hold the same float weights " +
                "for the same seed.",
            DefaultValueFactory = _ => "optimum",
        };
        layout.AcceptOnlyFromAmong("optimum", "genai");
        var dtype = new Option<string>("--dtype")
        {
            Description = "Element type of the optimum layout: fp32, or fp16 / bf16 as a half-precision export computes (weights, activations, " +
                "cache and logits in that type; norms, rotary tables and softmax in fp32). The genai layout is int4 with fp32 activations.",
            DefaultValueFactory = _ => "fp32",
        };
        dtype.AcceptOnlyFromAmong("fp32", "fp16", "bf16");
        var seed = new Option<ulong>("--seed") { Description = "Seed of the random weights (the same seed writes the same bytes).", DefaultValueFactory = _ => 1 };
        var command = new Command("synth",
            "Write a runnable Llama-architecture decoder (fp32 in Optimum's graph, or int4 in onnxruntime-genai's) with seeded random weights: a stand-in for benchmarks " +
            "at real sizes. Its outputs mean nothing; only its shapes and speed do.")
        {
            output, preset, layout, dtype, layers, seed,
        };
        command.SetAction(parse =>
        {
            var dims = LlamaDimensions.Preset(parse.GetValue(preset)!);
            if (parse.GetValue(layers) is int overrideLayers) dims = dims with { Layers = overrideLayers };
            dims.Validate();
            string target = parse.GetValue(output)!.FullName;
            var clock = Stopwatch.StartNew();
            bool genai = parse.GetValue(layout) == "genai";
            var elementType = parse.GetValue(dtype) switch { "fp16" => DataType.Float16, "bf16" => DataType.BFloat16, _ => DataType.Float };
            if (genai && elementType != DataType.Float)
                throw new ArgumentException("--dtype applies to the optimum layout; the genai layout is int4 with fp32 activations.");
            using var model = genai ? SyntheticGenaiLlama.Build(dims, parse.GetValue(seed)) : SyntheticLlama.Build(dims, parse.GetValue(seed), elementType);
            var saved = ProgressDisplay.Run(parse.InvocationConfiguration.Error, $"Writing {dims.ParameterCount / 1e9:F2} B parameters",
                _ => ModelSaver.Save(model, target));
            clock.Stop();
            parse.InvocationConfiguration.Output.WriteLine(
                $"wrote {saved.ModelPath} ({(genai ? "onnxruntime-genai layout, int4; " : elementType != DataType.Float ? $"{elementType.DisplayName()}; " : "")}{dims.Layers} layers, hidden {dims.Hidden}, {dims.Heads}/{dims.KvHeads} heads, MLP {dims.Intermediate}, " +
                $"vocabulary {dims.Vocab}; {dims.ParameterCount:N0} parameters; {(saved.ModelFileBytes + saved.ExternalBytes) / 1e9:F2} GB) in {clock.Elapsed.TotalSeconds:F1} s");
            return ExitCodes.Success;
        });
        return command;
    }
}
