using System.CommandLine;
using SparseOnnx.GraphRewriter;
using SparseOnnx.GraphRewriter.IO;
using SparseOnnx.GraphRewriter.Ir;
using SparseOnnx.GraphRewriter.Quantization;
using SparseOnnx.GraphRewriter.Sparsify;

namespace SparseOnnx.Cli.Commands;

/// <summary>
/// <c>sparseonnx quantize MODEL -o OUT [--bits 4|8] [--block-size 32] [--accuracy-level 4] [--kinds ...]</c>:
/// the dense MatMulNBits model (RTN symmetric, blocks along K) that a CPU deployment would use, so the
/// sparse models are compared against the baseline a user would pick, from the same tool.
/// </summary>
public static class QuantizeCommand
{
    public static Command Create()
    {
        var input = new Argument<FileInfo>("model") { Description = "The float32 ONNX model to quantize (never modified)." };
        var output = new Option<FileInfo>("--output", "-o") { Description = "Where to write the quantized model.", Required = true };
        var bits = new Option<int>("--bits") { Description = "4 or 8.", DefaultValueFactory = _ => 4 };
        bits.AcceptOnlyFromAmong("4", "8");
        var blockSize = new Option<int>("--block-size") { Description = "Input channels per scale (power of two, at least 16).", DefaultValueFactory = _ => 32 };
        var accuracyLevel = new Option<int>("--accuracy-level")
        {
            Description = "MatMulNBits accuracy_level: 4 = int8 activations (the CPU default of onnxruntime-genai's int4 models), 0 = float32.",
            DefaultValueFactory = _ => 4,
        };
        var kinds = new Option<string[]>("--kinds")
        {
            Description = "Projection kinds to quantize, comma-separated (default: every classified projection, lm_head included).",
            AllowMultipleArgumentsPerToken = true,
        };
        var external = RewriteOutputOptions.External();
        var command = new Command("quantize", "Quantize the model's float projections to MatMulNBits (ONNX Runtime's int4/int8 weights, RTN symmetric).")
        {
            input, output, bits, blockSize, accuracyLevel, kinds, external,
        };
        command.SetAction(parse =>
        {
            var selected = parse.GetValue(kinds) is { Length: > 0 } given ? SparsifyCommand.ParseKinds(given) : QuantizeOptions.DefaultKinds;
            var options = new QuantizeOptions
            {
                Quantization = new WeightQuantization(parse.GetValue(bits), parse.GetValue(blockSize), parse.GetValue(accuracyLevel)),
                Kinds = selected,
            };
            options.Quantization.Validate();
            var saveOptions = new SaveOptions { ExternalData = parse.GetValue(external) };
            string outputPath = parse.GetValue(output)!.FullName;
            using var model = ModelLoader.Load(parse.GetValue(input)!.FullName);
            ModelSaver.CheckTarget(model, outputPath, saveOptions);
            var pass = new QuantizePass(options);
            var result = pass.Run(model);
            int quantized = pass.Projections.Count(p => p.SkipReason is null);
            if (quantized == 0)
                throw new NothingToRewriteException("Nothing to quantize, so no output was written: " +
                    (pass.Projections.Count == 0 ? "the model has no projections."
                        : string.Join("; ", pass.Projections.GroupBy(p => p.SkipReason).Select(g => $"{g.Count()} × {g.Key}")) + "."));
            var saved = ModelSaver.Save(model, outputPath, saveOptions);
            var writer = parse.InvocationConfiguration.Output;
            var q = options.Quantization;
            writer.WriteLine($"quantized {quantized} of {pass.Projections.Count} projections to MatMulNBits int{q.Bits}, block {q.BlockSize}, accuracy_level {q.AccuracyLevel}");
            foreach (var skipped in pass.Projections.Where(p => p.SkipReason is not null)) writer.WriteLine($"  kept {skipped.Node}: {skipped.SkipReason}");
            writer.WriteLine($"wrote {saved.ModelPath} ({saved.ModelFileBytes} bytes)" + (saved.DataPath is null ? "" : $" and {saved.DataPath} ({saved.ExternalBytes} bytes)"));
            return ExitCodes.Success;
        });
        return command;
    }
}
