using System.Text.Json;

namespace SparseOnnx.Runtime.Tokenization;

/// <summary>What a Hugging Face <c>tokenizer_config.json</c> beside a tokenizer file says about special tokens.</summary>
internal static class HuggingFaceTokenizerConfig
{
    private static JsonDocument? Read(string tokenizerPath)
    {
        string configPath = Path.Combine(Path.GetDirectoryName(Path.GetFullPath(tokenizerPath))!, "tokenizer_config.json");
        return File.Exists(configPath) ? JsonDocument.Parse(File.ReadAllBytes(configPath)) : null;
    }

    /// <summary><c>add_bos_token</c>, when the config states it.</summary>
    public static bool? AddBosToken(string tokenizerPath)
    {
        using var config = Read(tokenizerPath);
        return config is not null && config.RootElement.TryGetProperty("add_bos_token", out var value)
               && value.ValueKind is JsonValueKind.True or JsonValueKind.False
            ? value.GetBoolean() : null;
    }

    /// <summary>The <c>bos_token</c> and <c>eos_token</c> strings (plain or as <c>{"content": ...}</c>).</summary>
    public static (string? Bos, string? Eos) SpecialTokens(string tokenizerPath)
    {
        using var config = Read(tokenizerPath);
        if (config is null) return (null, null);
        static string? Token(JsonElement root, string name) =>
            !root.TryGetProperty(name, out var value) ? null
            : value.ValueKind == JsonValueKind.String ? value.GetString()
            : value.ValueKind == JsonValueKind.Object && value.TryGetProperty("content", out var content) ? content.GetString()
            : null;
        return (Token(config.RootElement, "bos_token"), Token(config.RootElement, "eos_token"));
    }
}
