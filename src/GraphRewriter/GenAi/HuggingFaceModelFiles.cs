using System.Text.Json;
using System.Text.Json.Nodes;

namespace SparseOnnx.GraphRewriter.GenAi;

/// <summary>Special token ids for a genai config and where they came from.</summary>
/// <param name="Bos">Begin-of-sequence id, or null when unknown.</param>
/// <param name="Eos">End-of-sequence ids (genai stops at any), empty when unknown.</param>
/// <param name="Pad">Padding id, or null when unknown.</param>
/// <param name="Source">Where they were read, for the user.</param>
public sealed record GenAiTokenIds(int? Bos, IReadOnlyList<int> Eos, int? Pad, string Source);

/// <summary>
/// What the Hugging Face files an export keeps beside the model say that the graph does not: <c>config.json</c>
/// (the model's context length, special ids) and <c>generation_config.json</c> (the ids generation uses, which win
/// over config.json's, as in the genai builder).
/// </summary>
public static class HuggingFaceModelFiles
{
    /// <summary>The context length config.json states (max_position_embeddings, n_positions, ...), or null.</summary>
    public static (int Length, string Source)? ContextLength(string folder)
    {
        if (Read(folder, "config.json") is not { } config) return null;
        foreach (string key in new[] { "max_position_embeddings", "n_positions", "max_sequence_length", "seq_length", "n_ctx" })
            if (Int(config[key]) is > 0 and var length) return (length, $"config.json {key}");
        return null;
    }

    /// <summary>Special ids from generation_config.json, then config.json, key by key; null when neither has any.</summary>
    public static GenAiTokenIds? TokenIds(string folder)
    {
        int? bos = null, pad = null;
        IReadOnlyList<int>? eos = null;
        var sources = new List<string>();
        foreach (string file in new[] { "generation_config.json", "config.json" })
        {
            if (Read(folder, file) is not { } json) continue;
            int before = (bos is null ? 0 : 1) + (eos is null ? 0 : 1) + (pad is null ? 0 : 1);
            bos ??= Int(json["bos_token_id"]);
            eos ??= Ints(json["eos_token_id"]);
            pad ??= Int(json["pad_token_id"]);
            if ((bos is null ? 0 : 1) + (eos is null ? 0 : 1) + (pad is null ? 0 : 1) > before) sources.Add(file);
        }
        return sources.Count == 0 ? null : new GenAiTokenIds(bos, eos ?? [], pad, string.Join(" and ", sources));
    }

    private static JsonObject? Read(string folder, string name)
    {
        string path = Path.Combine(folder, name);
        if (!File.Exists(path)) return null;
        try
        {
            return JsonNode.Parse(File.ReadAllText(path), documentOptions: new JsonDocumentOptions { CommentHandling = JsonCommentHandling.Skip, AllowTrailingCommas = true }) as JsonObject
                ?? throw new GenAiConfigException($"'{path}' is not a JSON object.");
        }
        catch (JsonException e)
        {
            throw new GenAiConfigException($"'{path}' is not valid JSON: {e.Message}", e);
        }
    }

    private static int? Int(JsonNode? node) =>
        node is JsonValue value && value.TryGetValue<long>(out long number) && number is >= 0 and <= int.MaxValue ? (int)number : null;

    private static IReadOnlyList<int>? Ints(JsonNode? node) => node switch
    {
        JsonArray array when array.Select(Int).ToList() is var ids && ids.Count > 0 && ids.All(i => i is not null) => ids.Select(i => i!.Value).ToList(),
        JsonValue when Int(node) is { } id => [id],
        _ => null,
    };
}
