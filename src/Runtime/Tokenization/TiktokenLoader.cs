using System.Text;
using System.Text.RegularExpressions;
using Microsoft.ML.Tokenizers;

namespace SparseOnnx.Runtime.Tokenization;

/// <summary>
/// Reads tiktoken rank files (<c>base64-token rank</c> per line): OpenAI's r50k/p50k/cl100k/o200k encodings
/// and Llama 3's <c>tokenizer.model</c>, which is such a file too. The split pattern and special tokens are
/// not stored in the file, so they are chosen by the encoding the file is (its name, else its size).
/// </summary>
internal static class TiktokenLoader
{
    private const string Gpt2Pattern = @"'(?:[sdmt]|ll|ve|re)| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+";
    private const string Cl100kPattern = @"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
    private const string O200kPattern =
        @"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?" +
        @"|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?" +
        @"|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+";

    /// <summary>True when the file's first line looks like a tiktoken rank line.</summary>
    public static bool LooksLikeRankFile(string path)
    {
        using var reader = new StreamReader(path, System.Text.Encoding.ASCII);
        var buffer = new char[256];
        int read = reader.ReadBlock(buffer, 0, buffer.Length);
        string head = new(buffer, 0, read);
        int newline = head.IndexOf('\n');
        if (newline <= 0) return false;
        string[] parts = head[..newline].TrimEnd('\r').Split(' ');
        return parts.Length == 2 && int.TryParse(parts[1], out _) && parts[0].Length > 0
               && parts[0].All(c => char.IsAsciiLetterOrDigit(c) || c is '+' or '/' or '=');
    }

    public static TextTokenizer Load(string path)
    {
        int ranks = 0;
        foreach (string line in File.ReadLines(path))
        {
            if (line.Length == 0) continue;
            string[] parts = line.Split(' ');
            if (parts.Length != 2 || !int.TryParse(parts[1], out _))
                throw new TokenizerLoadException(path, $"line {ranks + 1} is not 'base64-token rank'");
            ranks++;
        }
        var (pattern, special, bos, eos) = EncodingOf(Path.GetFileNameWithoutExtension(path).ToLowerInvariant(), ranks);
        var specialTokens = special.Count > 0 ? special : null;
        var tokenizer = TiktokenTokenizer.Create(path, new RegexPreTokenizer(new Regex(pattern, RegexOptions.Compiled), specialTokens), null, specialTokens);
        int size = Math.Max(ranks, special.Values.DefaultIfEmpty(-1).Max() + 1);
        return new TextTokenizer(new MicrosoftTokenizerCodec(tokenizer), TokenizerFormat.Tiktoken, path,
            bos is null ? null : special[bos], eos is null ? null : special[eos], size);
    }

    private static (string Pattern, Dictionary<string, int> Special, string? Bos, string? Eos) EncodingOf(string name, int ranks)
    {
        if (name.Contains("o200k") || ranks is > 199_000 and < 201_000)
            return (O200kPattern, new() { ["<|endoftext|>"] = 199999, ["<|endofprompt|>"] = 200018 }, null, "<|endoftext|>");
        if (name.Contains("cl100k") || ranks == 100_256)
            return (Cl100kPattern, new()
            {
                ["<|endoftext|>"] = 100257, ["<|fim_prefix|>"] = 100258, ["<|fim_middle|>"] = 100259,
                ["<|fim_suffix|>"] = 100260, ["<|endofprompt|>"] = 100276,
            }, null, "<|endoftext|>");
        if (ranks == 128_000 || name.Contains("llama"))
        {
            // Llama 3: 256 special tokens after the 128,000 ranks; the named ones, the rest reserved.
            var special = new Dictionary<string, int>
            {
                ["<|begin_of_text|>"] = 128000, ["<|end_of_text|>"] = 128001, ["<|start_header_id|>"] = 128006,
                ["<|end_header_id|>"] = 128007, ["<|eot_id|>"] = 128009,
            };
            int reserved = 0;
            for (int id = 128002; id < 128256; id++)
                if (!special.ContainsValue(id)) special[$"<|reserved_special_token_{reserved++}|>"] = id;
            return (Cl100kPattern, special, "<|begin_of_text|>", "<|end_of_text|>");
        }
        if (name.Contains("p50k") || name.Contains("r50k") || name.Contains("gpt2") || ranks is 50_256 or 50_280)
            return (Gpt2Pattern, new() { ["<|endoftext|>"] = 50256 }, null, "<|endoftext|>");
        // An unknown rank file: cl100k's split pattern is the modern default; no special tokens.
        return (Cl100kPattern, new(), null, null);
    }
}
