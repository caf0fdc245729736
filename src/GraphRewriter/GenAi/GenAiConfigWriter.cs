using System.Text.Json.Nodes;
using SparseOnnx.GraphRewriter.Ir;

namespace SparseOnnx.GraphRewriter.GenAi;

/// <summary>What <see cref="GenAiConfigWriter.Plan"/> needs besides the model.</summary>
public sealed record GenAiConfigRequest
{
    /// <summary>Where to write the config; <c>genai_config.json</c> in the model's folder when null.</summary>
    public string? ConfigPath { get; init; }

    /// <summary>The context length (genai's <c>context_length</c> and default <c>max_length</c>); read from the graph or config.json when null.</summary>
    public int? ContextLength { get; init; }

    /// <summary>Special ids from the model's tokenizer; generation_config.json and config.json beside the model win where they have them.</summary>
    public GenAiTokenIds? TokenizerIds { get; init; }

    /// <summary>The op library to copy beside the config when the model holds SparseOnnx ops (asked only then).</summary>
    public Func<string>? OpsLibraryPath { get; init; }

    /// <summary>Replace an existing config (by default an existing one is refused: it may hold what the graph cannot say).</summary>
    public bool Overwrite { get; init; }
}

/// <summary>
/// Writes a <c>genai_config.json</c> for a decoder exported without one (Optimum, torch.onnx): the I/O names and
/// sizes from the graph (<see cref="GenAiDecoderSignature"/>), the context length and special ids from the graph,
/// the Hugging Face files beside it or the tokenizer, and, for a model with SparseOnnx ops, the op library copied
/// beside it and named in <c>custom_ops_library</c>. The layout and defaults are those of the genai model builder.
/// </summary>
public static class GenAiConfigWriter
{
    /// <summary>genai's model type for a plain decoder-only model: the <c>llama</c> path runs any graph with this contract.</summary>
    public const string ModelType = "llama";

    /// <summary>
    /// Plans the config for <paramref name="model"/> (loaded from a file). Throws <see cref="GenAiContractException"/>
    /// listing every reason the graph does not fit genai's decoder contract, and <see cref="GenAiConfigException"/>
    /// when the config cannot be placed or a value is missing.
    /// </summary>
    public static GenAiFolderUpdate Plan(Model model, GenAiConfigRequest request)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(request);
        string modelPath = model.SourcePath ?? throw new ArgumentException("The model must be loaded from a file: the config names it.", nameof(model));
        string modelFolder = Path.GetDirectoryName(modelPath)!;
        string configPath = Path.GetFullPath(request.ConfigPath ?? Path.Combine(modelFolder, GenAiFolder.ConfigFileName));
        string configFolder = Path.GetDirectoryName(configPath)!;
        string fileName = GenAiFolder.RelativeInside(configFolder, modelPath)
            ?? throw new GenAiConfigException($"genai reads the model relative to its config's folder and refuses '..': write the config " +
                $"into '{modelFolder}' or a folder above it, not '{configFolder}'.");
        if (Directory.Exists(configPath)) throw new GenAiConfigException($"Cannot write '{configPath}': it is a folder.");
        if (File.Exists(configPath) && !request.Overwrite)
            throw new GenAiConfigException($"'{configPath}' exists (it may hold settings the graph cannot tell); remove it or ask to overwrite it (--force).");

        var read = GenAiDecoderSignature.Read(model);
        var signature = read.Signature ?? throw new GenAiContractException(modelPath, read.Problems);
        var notes = new List<string>(signature.Sources);
        if (!string.Equals(configFolder, modelFolder, StringComparison.Ordinal))
            notes.Add($"genai reads the tokenizer from the config's folder '{configFolder}', not the model's");

        var (contextLength, contextSource) = ContextLength(signature, request.ContextLength, modelFolder);
        notes.Add($"context_length {contextLength} from {contextSource}");

        var ids = HuggingFaceModelFiles.TokenIds(modelFolder) is { } files
            ? Merge(files, request.TokenizerIds)
            : request.TokenizerIds;
        if (ids is null || (ids.Bos is null && ids.Eos.Count == 0))
            notes.Add("no tokenizer or config.json: bos/eos/pad ids are left out, so genai stops only at max_length or at id 0 (its default pad)");
        else
            notes.Add($"special ids from {ids.Source}");

        var copies = new List<GenAiFileCopy>();
        string? library = null;
        if (signature.UsesSparseOnnxOps)
        {
            var source = request.OpsLibraryPath?.Invoke()
                ?? throw new GenAiConfigException("The model holds SparseOnnx ops, so the folder needs the op library, and none was given.");
            library = Path.GetFileName(source);
            copies.Add(new GenAiFileCopy(source, library, "op library"));
        }
        if (signature.Heads is null) notes.Add("num_attention_heads not found in the graph and left out (genai does not need it for this model)");
        if (signature.Hidden is null) notes.Add("hidden_size not found in the graph and left out (genai does not need it for this model)");

        var config = Build(signature, new GenAiConfigSettings
        {
            ModelFileName = fileName,
            ContextLength = contextLength,
            TokenIds = ids,
            CustomOpsLibrary = library,
        });
        return new GenAiFolderUpdate(configPath, config, copies, notes);
    }

    /// <summary>
    /// The config for <paramref name="signature"/>, in the layout the genai builder writes: <c>model</c> (ids, context
    /// length, <c>decoder</c> with session options, file name, sizes, I/O names; <c>type</c>, <c>vocab_size</c>) and
    /// <c>search</c> (greedy by default). The past buffer is shared with the present only for GroupQueryAttention graphs.
    /// </summary>
    public static JsonObject Build(GenAiDecoderSignature signature, GenAiConfigSettings settings)
    {
        ArgumentNullException.ThrowIfNull(signature);
        ArgumentNullException.ThrowIfNull(settings);
        if (settings.ContextLength <= 0) throw new ArgumentException($"The context length must be positive, not {settings.ContextLength}.", nameof(settings));

        var sessionOptions = new JsonObject { ["log_id"] = "onnxruntime-genai", ["provider_options"] = new JsonArray() };
        if (settings.CustomOpsLibrary is { } library) sessionOptions["custom_ops_library"] = library;
        var inputs = new JsonObject { ["input_ids"] = signature.InputIds };
        if (signature.AttentionMask is { } mask) inputs["attention_mask"] = mask;
        if (signature.PositionIds is { } positions) inputs["position_ids"] = positions;
        inputs["past_key_names"] = GenAiDecoderSignature.PastKeyNames;
        inputs["past_value_names"] = GenAiDecoderSignature.PastValueNames;
        var decoder = new JsonObject
        {
            ["session_options"] = sessionOptions,
            ["filename"] = settings.ModelFileName,
            ["head_size"] = signature.HeadSize,
        };
        if (signature.Hidden is { } hidden) decoder["hidden_size"] = hidden;
        decoder["inputs"] = inputs;
        decoder["outputs"] = new JsonObject
        {
            ["logits"] = signature.Logits,
            ["present_key_names"] = GenAiDecoderSignature.PresentKeyNames,
            ["present_value_names"] = GenAiDecoderSignature.PresentValueNames,
        };
        if (signature.Heads is { } heads) decoder["num_attention_heads"] = heads;
        decoder["num_hidden_layers"] = signature.Layers;
        decoder["num_key_value_heads"] = signature.KvHeads;

        var model = new JsonObject();
        var ids = settings.TokenIds;
        if (ids?.Bos is { } bos) model["bos_token_id"] = bos;
        model["context_length"] = settings.ContextLength;
        model["decoder"] = decoder;
        if (ids is { Eos.Count: > 0 }) model["eos_token_id"] = ids.Eos.Count == 1 ? JsonValue.Create(ids.Eos[0]) : new JsonArray(ids.Eos.Select(e => (JsonNode)e).ToArray());
        // As the builder: without a pad id, pad with the (first) end-of-sequence id.
        if ((ids?.Pad ?? (ids is { Eos.Count: > 0 } ? ids.Eos[0] : null)) is { } pad) model["pad_token_id"] = pad;
        model["type"] = ModelType;
        if (signature.Vocabulary is { } vocabulary) model["vocab_size"] = vocabulary;

        return new JsonObject
        {
            ["model"] = model,
            ["search"] = new JsonObject
            {
                ["diversity_penalty"] = 0.0,
                ["do_sample"] = false,
                ["early_stopping"] = true,
                ["length_penalty"] = 1.0,
                ["max_length"] = settings.ContextLength,
                ["min_length"] = 0,
                ["no_repeat_ngram_size"] = 0,
                ["num_beams"] = 1,
                ["num_return_sequences"] = 1,
                ["past_present_share_buffer"] = signature.GroupQueryAttention,
                ["repetition_penalty"] = 1.0,
                ["temperature"] = 1.0,
                ["top_k"] = 50,
                ["top_p"] = 1.0,
            },
        };
    }

    private static (int Length, string Source) ContextLength(GenAiDecoderSignature signature, int? requested, string modelFolder)
    {
        if (requested is { } given)
        {
            if (given <= 0) throw new GenAiConfigException($"The context length must be positive, not {given}.");
            if (signature.RotaryPositions is { } rows && given > rows)
                throw new GenAiConfigException($"The context length {given} is longer than the {rows} positions the graph's rotary caches cover.");
            return (given, "the request");
        }
        if (signature.RotaryPositions is { } positions) return (positions, "the rows of GroupQueryAttention's rotary caches");
        if (HuggingFaceModelFiles.ContextLength(modelFolder) is { } stated) return stated;
        throw new GenAiConfigException("The graph does not say how long a context it takes and there is no config.json beside it; " +
            "give the context length (--context-length N, the model's max_position_embeddings).");
    }

    private static GenAiTokenIds Merge(GenAiTokenIds files, GenAiTokenIds? tokenizer) =>
        tokenizer is null ? files : new GenAiTokenIds(
            files.Bos ?? tokenizer.Bos,
            files.Eos.Count > 0 ? files.Eos : tokenizer.Eos,
            files.Pad ?? tokenizer.Pad,
            files.Bos is not null && files.Eos.Count > 0 ? files.Source : $"{files.Source} and {tokenizer.Source}");
}

/// <summary>The values of a genai config that the graph does not hold.</summary>
public sealed record GenAiConfigSettings
{
    /// <summary>The model file, relative to the config's folder, with forward slashes.</summary>
    public required string ModelFileName { get; init; }

    /// <summary>genai's <c>context_length</c> and the default <c>search.max_length</c>.</summary>
    public required int ContextLength { get; init; }

    /// <summary>Special ids; left out of the config when null or unknown.</summary>
    public GenAiTokenIds? TokenIds { get; init; }

    /// <summary>The op library's file name in the folder, for <c>session_options.custom_ops_library</c>, or null.</summary>
    public string? CustomOpsLibrary { get; init; }
}
