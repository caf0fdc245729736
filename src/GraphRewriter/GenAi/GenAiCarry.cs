using System.Text.Json.Nodes;
using SparseOnnx.GraphRewriter.IO;

namespace SparseOnnx.GraphRewriter.GenAi;

/// <summary>
/// What a rewrite does with the onnxruntime-genai folder its input sits in: either an update that makes the
/// output's folder a genai folder too (<see cref="Update"/>), or the reason it is left alone (<see cref="SkipReason"/>).
/// </summary>
/// <param name="InputConfig">The input's genai_config.json.</param>
/// <param name="Update">The output folder's config and files, or null when skipped.</param>
/// <param name="SkipReason">Why the config is not carried, or null.</param>
public sealed record GenAiCarryPlan(string InputConfig, GenAiFolderUpdate? Update, string? SkipReason);

/// <summary>
/// Carries a <c>genai_config.json</c> from a rewrite's input folder to its output folder, so that a genai host
/// that knows nothing of SparseOnnx runs the output folder as it ran the input's: the config with
/// <c>model.decoder.filename</c> naming the output model and <c>session_options.custom_ops_library</c> naming
/// the op library, a copy of the op library (genai loads it only from inside the folder), and the tokenizer files.
/// Everything else in the config is kept as it was.
/// </summary>
/// <remarks>
/// The input is never written: when the output goes into the input's own folder, that folder's config (which
/// names the input model) is left as it is and the plan says so. A config that describes more than one model
/// (vision, speech, embedding, pipeline stages) or registers another op library is not carried either: the
/// output folder would lack those files, and genai registers one library per session.
/// </remarks>
public static class GenAiCarry
{
    private static readonly string[] OtherComponents = ["encoder", "embedding", "vision", "speech", "joiner", "vad", "mtp", "draft"];

    /// <summary>
    /// Files a tokenizer may consist of, as onnxruntime-extensions (genai's tokenizer) and Hugging Face read them:
    /// copied beside a carried config when they exist. A <c>tiktoken_file</c> that tokenizer_config.json names is added.
    /// </summary>
    public static IReadOnlyList<string> TokenizerFileNames { get; } =
    [
        "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json", "tokenizer_module.json",
        "chat_template.jinja", "chat_template.json", "tokenizer.model", "spiece.model", "sentencepiece.bpe.model",
        "vocab.json", "vocab.txt", "merges.txt", "generation_config.json",
    ];

    /// <summary>
    /// Plans the carry for <paramref name="inputModelPath"/> rewritten into <paramref name="outputModelPath"/>, before
    /// the rewrite runs. Null when the input has no genai_config.json beside it. <paramref name="opsLibraryPath"/> is
    /// asked only when there is a config to carry (the output of a rewrite holds SparseOnnx ops).
    /// </summary>
    public static GenAiCarryPlan? Prepare(string inputModelPath, string outputModelPath, Func<string> opsLibraryPath)
    {
        ArgumentNullException.ThrowIfNull(opsLibraryPath);
        string input = Path.GetFullPath(inputModelPath), output = Path.GetFullPath(outputModelPath);
        if (GenAiFolder.ConfigBeside(input) is not { } inputConfig) return null;
        GenAiCarryPlan Skip(string reason) => new(inputConfig, null, reason);

        string inputFolder = Path.GetDirectoryName(input)!, outputFolder = Path.GetDirectoryName(output)!;
        if (SafePaths.SameFile(inputFolder, outputFolder))
            return Skip($"the output is written into the input's folder, whose {GenAiFolder.ConfigFileName} names the input model and is left as it is; " +
                "write the output into another folder to get a genai folder for it");

        JsonObject config;
        try
        {
            config = GenAiFolder.ReadConfig(inputConfig);
        }
        catch (GenAiConfigException e)
        {
            return Skip(e.Message);
        }
        if (config["model"] is not JsonObject model || model["decoder"] is not JsonObject decoder)
            return Skip("it has no model.decoder section");
        if (decoder["filename"] is not JsonValue named || !named.TryGetValue<string>(out string? decoderFile) || decoderFile.Length == 0)
            return Skip("its model.decoder.filename is missing");
        if (!SafePaths.SameFile(Path.Combine(inputFolder, decoderFile), input))
            return Skip($"its model.decoder.filename is '{decoderFile}', not the input model '{Path.GetFileName(input)}'");
        var others = OtherComponents
            .Where(c => model[c] is JsonObject component && component["filename"] is JsonValue f && f.TryGetValue<string>(out string? n) && n.Length > 0)
            .Select(c => $"model.{c}")
            .ToList();
        if (decoder["pipeline"] is JsonArray { Count: > 0 }) others.Add("model.decoder.pipeline");
        if (others.Count > 0)
            return Skip($"it describes more than the decoder ({string.Join(", ", others)}), whose files the output folder would lack; copy them and edit the config yourself");

        var sessionOptions = decoder["session_options"] as JsonObject;
        if (decoder["session_options"] is not null && sessionOptions is null) return Skip("its model.decoder.session_options is not an object");
        string library = opsLibraryPath();
        string libraryName = Path.GetFileName(library);
        if (sessionOptions?["custom_ops_library"] is JsonValue existing && existing.TryGetValue<string>(out string? registered)
            && registered.Length > 0 && Path.GetFileName(registered) != libraryName)
            return Skip($"it already registers the op library '{registered}', and genai registers one library per model");

        var carried = (JsonObject)config.DeepClone();
        var carriedModel = (JsonObject)carried["model"]!;
        var carriedDecoder = (JsonObject)carriedModel["decoder"]!;
        carriedDecoder["filename"] = Path.GetFileName(output);
        if (carriedDecoder["session_options"] is not JsonObject carriedOptions) carriedDecoder["session_options"] = carriedOptions = new JsonObject();
        carriedOptions["custom_ops_library"] = libraryName;

        var notes = new List<string>
        {
            $"model.decoder.filename: '{decoderFile}' -> '{Path.GetFileName(output)}'",
            $"model.decoder.session_options.custom_ops_library: '{libraryName}', copied into the folder (genai loads an op library only from inside it)",
        };
        string tokenizerFolder = inputFolder;
        if (model["tokenizer_dir"] is JsonValue dirValue && dirValue.TryGetValue<string>(out string? tokenizerDir) && tokenizerDir.Length > 0)
        {
            string resolved = Path.GetFullPath(Path.Combine(inputFolder, tokenizerDir));
            if (!Path.IsPathRooted(tokenizerDir) && Directory.Exists(resolved))
            {
                // The tokenizer moves in beside the config, the place genai reads it from without tokenizer_dir.
                tokenizerFolder = resolved;
                carriedModel.Remove("tokenizer_dir");
                notes.Add($"model.tokenizer_dir '{tokenizerDir}' removed: its files are copied beside the config");
            }
            else tokenizerFolder = "";
        }

        var copies = new List<GenAiFileCopy> { new(library, libraryName, "op library") };
        if (tokenizerFolder.Length > 0)
            foreach (string name in TokenizerFiles(tokenizerFolder))
                copies.Add(new GenAiFileCopy(Path.Combine(tokenizerFolder, name), name, "tokenizer"));
        return new GenAiCarryPlan(inputConfig, new GenAiFolderUpdate(Path.Combine(outputFolder, GenAiFolder.ConfigFileName), carried, copies, notes), null);
    }

    /// <summary>The tokenizer files present in <paramref name="folder"/>, with the tiktoken file its tokenizer_config.json names.</summary>
    private static IEnumerable<string> TokenizerFiles(string folder)
    {
        var names = TokenizerFileNames.Where(n => File.Exists(Path.Combine(folder, n))).ToList();
        string tokenizerConfig = Path.Combine(folder, "tokenizer_config.json");
        if (File.Exists(tokenizerConfig))
        {
            try
            {
                if (GenAiFolder.ReadConfig(tokenizerConfig)["tiktoken_file"] is JsonValue value && value.TryGetValue<string>(out string? tiktoken)
                    && tiktoken.Length > 0 && Path.GetFileName(tiktoken) == tiktoken && File.Exists(Path.Combine(folder, tiktoken)) && !names.Contains(tiktoken))
                    names.Add(tiktoken);
            }
            catch (GenAiConfigException)
            {
                // A tokenizer_config.json genai could not read either: it is copied as it is.
            }
        }
        return names;
    }
}
