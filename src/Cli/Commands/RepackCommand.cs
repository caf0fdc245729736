using System.CommandLine;
using SparseOnnx.GraphRewriter.IO;

namespace SparseOnnx.Cli.Commands;

/// <summary>
/// <c>sparseonnx repack IN -o OUT [--external auto|always|never] [--inline-threshold BYTES] [--data-file NAME]</c>:
/// re-saves a model unchanged, with its tensors in one new external data file at aligned offsets (or inline).
/// </summary>
public static class RepackCommand
{
    public static Command Create()
    {
        var input = new Argument<FileInfo>("model") { Description = "The ONNX model to re-save (never modified)." };
        var output = new Option<FileInfo>("--output", "-o") { Description = "Where to write the model.", Required = true };
        var external = new Option<ExternalDataMode>("--external")
        {
            Description = "auto: external data when the input had it or its tensors exceed 1 GiB; always; never (fails beyond 2 GiB).",
            DefaultValueFactory = _ => ExternalDataMode.Auto,
        };
        var threshold = new Option<long>("--inline-threshold")
        {
            Description = "Tensors smaller than this many bytes stay inside the model file.",
            DefaultValueFactory = _ => new SaveOptions().InlineThresholdBytes,
        };
        var dataFile = new Option<string?>("--data-file") { Description = "External data file name, next to the output (default: <output name>.data)." };
        var command = new Command("repack", "Re-save a model unchanged: one new external data file with 64 KiB-aligned tensors, small tensors inline.")
        {
            input, output, external, threshold, dataFile,
        };
        command.SetAction(parse =>
        {
            using var model = ModelLoader.Load(parse.GetValue(input)!.FullName);
            var result = ModelSaver.Save(model, parse.GetValue(output)!.FullName, new SaveOptions
            {
                ExternalData = parse.GetValue(external),
                InlineThresholdBytes = parse.GetValue(threshold),
                DataFileName = parse.GetValue(dataFile),
            });
            var writer = parse.InvocationConfiguration.Output;
            writer.WriteLine($"wrote {result.ModelPath} ({result.ModelFileBytes} bytes)");
            if (result.DataPath is not null)
                writer.WriteLine($"wrote {result.DataPath} ({result.ExternalTensors} tensors, {result.ExternalBytes} bytes)");
            return ExitCodes.Success;
        });
        return command;
    }
}
