using System.CommandLine;
using System.Text.Json;
using System.Text.Json.Nodes;
using SparseOnnx.CustomOps;
using SparseOnnx.GraphRewriter.GenAi;
using SparseOnnx.GraphRewriter.IO;
using SparseOnnx.Runtime.Tokenization;

namespace SparseOnnx.Cli.Commands;

/// <summary>
/// <c>sparseonnx genai-config MODEL [-o genai_config.json] [--tokenizer TOK] [--context-length N] [--force] [--json]</c>:
/// writes the onnxruntime-genai config of a decoder exported without one (Optimum, torch.onnx), from its graph,
/// and copies the op library beside it when the model holds SparseOnnx ops; or lists why the model does not fit.
/// </summary>
public static class GenAiConfigCommand
{
    public static Command Create()
    {
        var input = new Argument<FileInfo>("model") { Description = "The ONNX decoder (never modified)." };
        var output = new Option<FileInfo?>("--output", "-o")
        {
            Description = "Where to write the config (default: genai_config.json beside the model; genai reads only that name, from the model's folder or one above it).",
        };
        var tokenizer = RuntimeOptions.TokenizerOption();
        tokenizer.Description = "Tokenizer for the special ids (default: tokenizer.model or tokenizer.json beside the model, if any); " +
            "generation_config.json and config.json beside the model win where they have the ids.";
        var contextLength = new Option<int?>("--context-length")
        {
            Description = "genai's context_length (and default max_length): needed when neither the graph (rotary caches) nor a config.json beside it says.",
        };
        var force = new Option<bool>("--force") { Description = "Replace an existing genai_config.json." };
        var json = new Option<bool>("--json") { Description = "Print a JSON report (the config written, the files copied, the notes)." };
        var command = new Command("genai-config", "Write the onnxruntime-genai config (genai_config.json) of a decoder exported without one, from its graph; " +
            "copies the op library beside it when the model holds SparseOnnx ops. Lists every reason when the model does not fit genai's decoder.")
        {
            input, output, tokenizer, contextLength, force, json,
        };
        command.SetAction(parse =>
        {
            string modelPath = parse.GetValue(input)!.FullName;
            using var model = ModelLoader.Load(modelPath);
            var plan = GenAiConfigWriter.Plan(model, new GenAiConfigRequest
            {
                ConfigPath = parse.GetValue(output)?.FullName,
                ContextLength = parse.GetValue(contextLength),
                TokenizerIds = TokenizerIds(parse, tokenizer, modelPath),
                OpsLibraryPath = () => SparseOnnxOps.LibraryPath,
                Overwrite = parse.GetValue(force),
            });
            var written = plan.Write();
            var writer = parse.InvocationConfiguration.Output;
            if (parse.GetValue(json))
            {
                var document = ToJson(written, plan.Notes);
                document["config"] = plan.Config.DeepClone();
                writer.WriteLine(document.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
            }
            else
            {
                if (!Path.GetFileName(written.ConfigPath).Equals(GenAiFolder.ConfigFileName, StringComparison.Ordinal))
                    parse.InvocationConfiguration.Error.WriteLine($"note: genai reads only {GenAiFolder.ConfigFileName}; rename the file for genai to find it");
                Render(written, plan.Notes, writer, "");
            }
            return ExitCodes.Success;
        });
        return command;
    }

    /// <summary>The tokenizer's special ids, or null when no tokenizer is named and none sits beside the model.</summary>
    private static GenAiTokenIds? TokenizerIds(ParseResult parse, Option<FileSystemInfo?> option, string modelPath)
    {
        string folder = Path.GetDirectoryName(modelPath)!;
        if (parse.GetValue(option) is null && !File.Exists(Path.Combine(folder, "tokenizer.model")) && !File.Exists(Path.Combine(folder, "tokenizer.json")))
            return null;
        var loaded = RuntimeOptions.LoadTokenizer(parse, option, modelPath);
        return new GenAiTokenIds(loaded.BosId, loaded.EosId is { } eos ? [eos] : [], null, $"the tokenizer '{Path.GetFileName(loaded.Source)}'");
    }

    /// <summary>Prints what was written: the config, each copied file with its role, and the notes.</summary>
    internal static void Render(GenAiFolderWriteResult written, IReadOnlyList<string> notes, TextWriter writer, string prefix)
    {
        writer.WriteLine($"{prefix}wrote {written.ConfigPath}");
        foreach (var copy in written.Copied) writer.WriteLine($"{prefix}copied {copy.FileName} ({copy.Role}) from {Path.GetDirectoryName(copy.Source)}");
        foreach (string note in notes) writer.WriteLine($"{prefix}note: {note}");
    }

    internal static JsonObject ToJson(GenAiFolderWriteResult written, IReadOnlyList<string> notes) => new()
    {
        ["path"] = written.ConfigPath,
        ["copied"] = new JsonArray(written.Copied.Select(c => (JsonNode)new JsonObject { ["file"] = c.FileName, ["role"] = c.Role, ["source"] = c.Source }).ToArray()),
        ["notes"] = new JsonArray(notes.Select(n => (JsonNode)n).ToArray()),
    };
}
