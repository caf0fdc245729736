using System.Text.Json;
using System.Text.RegularExpressions;
using Microsoft.ML.Tokenizers;

namespace SparseOnnx.Runtime.Tokenization;

/// <summary>
/// Reads a Hugging Face <c>tokenizer.json</c> whose model is byte-level BPE (GPT-2, Llama 3, Qwen2, Phi-3.5,
/// SmolLM…): vocabulary, merges, added (special) tokens and the pre-tokenizer's split pattern. BOS and EOS
/// come from a <c>tokenizer_config.json</c> beside it when there is one, otherwise from the usual names.
/// The normalizer chain is applied in front of the model (<see cref="HuggingFaceNormalizer"/>). Other models
/// (WordPiece, Unigram, SentencePiece-style BPE with byte fallback), and normalizers or pre-tokenizer steps the
/// Rust library would apply but this reader cannot, are refused with a reason rather than tokenized differently.
/// </summary>
internal static class HuggingFaceTokenizerJson
{
    /// <summary>GPT-2's split pattern, what a ByteLevel pre-tokenizer with use_regex = true applies.</summary>
    internal const string Gpt2Pattern = @"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+";

    private static readonly string[] BosNames = ["<|begin_of_text|>", "<s>", "<bos>", "<|startoftext|>", "<|endoftext|>"];
    private static readonly string[] EosNames = ["<|end_of_text|>", "</s>", "<eos>", "<|endoftext|>", "<|im_end|>"];

    public static TextTokenizer Load(string path)
    {
        using var document = JsonDocument.Parse(File.ReadAllBytes(path));
        var root = document.RootElement;
        if (!root.TryGetProperty("model", out var model) || model.ValueKind != JsonValueKind.Object)
            throw new TokenizerLoadException(path, "no \"model\" object; is this a Hugging Face tokenizer.json?");
        string type = model.TryGetProperty("type", out var t) ? t.GetString() ?? "" : "";
        if (type != "BPE")
            throw new TokenizerLoadException(path, $"model type '{type}' is not supported (only byte-level BPE; for SentencePiece models pass tokenizer.model)");
        if (model.TryGetProperty("byte_fallback", out var fallback) && fallback.ValueKind == JsonValueKind.True)
            throw new TokenizerLoadException(path, "a BPE model with byte_fallback is SentencePiece-style; pass its tokenizer.model instead");

        if (model.TryGetProperty("dropout", out var dropout) && dropout.ValueKind == JsonValueKind.Number && dropout.GetDouble() > 0)
            throw new TokenizerLoadException(path, "BPE dropout makes encoding random; it is not supported");
        var normalizer = HuggingFaceNormalizer.Read(root.TryGetProperty("normalizer", out var norm) ? norm : default, path);
        var (splitPattern, addPrefixSpace) = FindByteLevelSplitPattern(root.TryGetProperty("pre_tokenizer", out var pre) ? pre : default, path);

        var vocabulary = new Dictionary<string, int>();
        foreach (var entry in model.GetProperty("vocab").EnumerateObject()) vocabulary[entry.Name] = entry.Value.GetInt32();
        var merges = new List<string>();
        if (model.TryGetProperty("merges", out var mergeArray))
            foreach (var merge in mergeArray.EnumerateArray())
                merges.Add(merge.ValueKind == JsonValueKind.Array
                    ? $"{merge[0].GetString()} {merge[1].GetString()}"
                    : merge.GetString() ?? throw new TokenizerLoadException(path, "a merge is not a string"));

        var special = new Dictionary<string, int>();
        // Added tokens the library matches in the raw text (normalized = false, the default for special ones) are split
        // out before normalization; the others are matched, by their normalized content, in the normalized text.
        var matchedRaw = new Dictionary<string, int>();
        var matchedNormalized = new Dictionary<string, int>();
        if (root.TryGetProperty("added_tokens", out var added))
            foreach (var token in added.EnumerateArray())
            {
                string content = token.GetProperty("content").GetString()!;
                int id = token.GetProperty("id").GetInt32();
                special[content] = id;
                bool isSpecial = token.TryGetProperty("special", out var sp) && sp.ValueKind == JsonValueKind.True;
                bool normalized = token.TryGetProperty("normalized", out var n) ? n.ValueKind == JsonValueKind.True : !isSpecial;
                if (normalized) matchedNormalized[content] = id;
                else matchedRaw[content] = id;
            }

        var options = new BpeOptions(vocabulary)
        {
            Merges = merges,
            ByteLevel = true,
            // Only the raw-matched tokens: the codec splits every added token out before the text reaches this tokenizer.
            SpecialTokens = matchedRaw.Count > 0 ? matchedRaw : null,
            PreTokenizer = new RegexPreTokenizer(new Regex(splitPattern, RegexOptions.Compiled), matchedRaw.Count > 0 ? matchedRaw : null),
        };
        var tokenizer = BpeTokenizer.Create(options);

        var (bosName, eosName) = HuggingFaceTokenizerConfig.SpecialTokens(path);
        int? Id(string? name) => name is not null && (special.TryGetValue(name, out int id) || vocabulary.TryGetValue(name, out id)) ? id : null;
        int? bos = bosName is not null ? Id(bosName) : BosNames.Select(Id).FirstOrDefault(id => id is not null);
        int? eos = eosName is not null ? Id(eosName) : EosNames.Select(Id).FirstOrDefault(id => id is not null);
        int size = Math.Max(vocabulary.Values.DefaultIfEmpty(-1).Max(), special.Values.DefaultIfEmpty(-1).Max()) + 1;
        bool addsBos = HuggingFaceTokenizerConfig.AddBosToken(path)
                       ?? (bos is int bosId && PostProcessorStartsWith(root, bosId));
        return new TextTokenizer(new NormalizingCodec(normalizer, addPrefixSpace, new MicrosoftTokenizerCodec(tokenizer), matchedRaw, matchedNormalized),
            TokenizerFormat.HuggingFaceJson, path, bos, eos, size)
        {
            AddsBosByDefault = addsBos,
            BosText = bos is int b ? special.Concat(vocabulary).FirstOrDefault(e => e.Value == b).Key : null,
        };
    }

    /// <summary>True when the post-processor's single-sequence template starts with the special token <paramref name="bosId"/>
    /// (Llama 3's TemplateProcessing puts <c>&lt;|begin_of_text|&gt;</c> there).</summary>
    private static bool PostProcessorStartsWith(JsonElement root, int bosId)
    {
        if (!root.TryGetProperty("post_processor", out var post) || post.ValueKind != JsonValueKind.Object) return false;
        var processors = post.TryGetProperty("processors", out var list) && list.ValueKind == JsonValueKind.Array
            ? list.EnumerateArray().ToArray() : [post];
        foreach (var processor in processors)
        {
            if (!processor.TryGetProperty("single", out var single) || single.ValueKind != JsonValueKind.Array || single.GetArrayLength() == 0) continue;
            var first = single[0];
            if (first.TryGetProperty("SpecialToken", out var special) && special.TryGetProperty("id", out var name)
                && processor.TryGetProperty("special_tokens", out var tokens) && tokens.TryGetProperty(name.GetString() ?? "", out var entry)
                && entry.TryGetProperty("ids", out var ids) && ids.GetArrayLength() > 0 && ids[0].GetInt32() == bosId)
                return true;
        }
        return false;
    }

    /// <summary>The split regex of a byte-level pre-tokenizer: ByteLevel alone (GPT-2's pattern when use_regex),
    /// or a Sequence of Split(Regex) then ByteLevel(use_regex = false) as Llama 3 and Qwen2 write it.</summary>
    private static (string Pattern, bool AddPrefixSpace) FindByteLevelSplitPattern(JsonElement preTokenizer, string path)
    {
        static bool PrefixSpace(JsonElement step) => step.TryGetProperty("add_prefix_space", out var a) && a.ValueKind == JsonValueKind.True;
        if (preTokenizer.ValueKind != JsonValueKind.Object)
            throw new TokenizerLoadException(path, "no pre_tokenizer; only byte-level BPE tokenizers are supported");
        string type = preTokenizer.GetProperty("type").GetString() ?? "";
        switch (type)
        {
            case "ByteLevel":
                if (preTokenizer.TryGetProperty("use_regex", out var ownRegex) && ownRegex.ValueKind == JsonValueKind.False)
                    throw new TokenizerLoadException(path, "a ByteLevel pre-tokenizer without its regex (use_regex false) and no Split is not supported");
                return (Gpt2Pattern, PrefixSpace(preTokenizer));
            case "Sequence":
                string? pattern = null;
                bool byteLevel = false, prefixSpace = false;
                foreach (var step in preTokenizer.GetProperty("pretokenizers").EnumerateArray())
                {
                    string stepType = step.GetProperty("type").GetString() ?? "";
                    if (stepType == "Split" && step.TryGetProperty("pattern", out var p) && p.TryGetProperty("Regex", out var regex))
                        pattern ??= regex.GetString();
                    else if (stepType == "ByteLevel")
                    {
                        byteLevel = true;
                        if (pattern is null && (!step.TryGetProperty("use_regex", out var useRegex) || useRegex.ValueKind == JsonValueKind.True))
                            pattern = Gpt2Pattern;
                        // After a Split the library adds the prefix space to every split piece, not once.
                        if (PrefixSpace(step) && pattern is not null && pattern != Gpt2Pattern)
                            throw new TokenizerLoadException(path, "ByteLevel with add_prefix_space after a Split is not supported");
                        prefixSpace = PrefixSpace(step);
                    }
                    else
                        throw new TokenizerLoadException(path, $"pre-tokenizer step '{stepType}' is not supported (supported: Split with a Regex, then ByteLevel)");
                }
                if (!byteLevel || pattern is null)
                    throw new TokenizerLoadException(path, "the pre-tokenizer is not byte-level BPE (no ByteLevel step with a split pattern)");
                return (DotNetCompatible(pattern), prefixSpace);
            default:
                throw new TokenizerLoadException(path, $"pre-tokenizer '{type}' is not supported (only ByteLevel, or Split + ByteLevel)");
        }
    }

    /// <summary>Hugging Face patterns use possessive quantifiers (<c>?+</c>, <c>++</c>) that .NET regexes lack; for
    /// these patterns the greedy form splits identically because each alternative is tried left to right.</summary>
    private static string DotNetCompatible(string pattern) => pattern.Replace("?+", "?").Replace("++", "+").Replace("*+", "*");
}

/// <summary>
/// A codec with the tokenizer.json normalizer (and ByteLevel's add_prefix_space) applied in front of it, in the Rust
/// library's order: added tokens with normalized = false (special tokens) are split out of the raw text; each text
/// segment between them is normalized; added tokens with normalized = true are split out of that by their own
/// normalized content; and each remaining piece is pre-tokenized (add_prefix_space) and encoded on its own.
/// </summary>
internal sealed class NormalizingCodec(HuggingFaceNormalizer normalizer, bool addPrefixSpace, ITokenCodec inner,
    IReadOnlyDictionary<string, int> rawTokens, IReadOnlyDictionary<string, int> normalizedTokens) : ITokenCodec
{
    private readonly string[] _raw = Longest(rawTokens);
    // A normalized added token is looked for by its content put through the same normalizer (Prepend included).
    private readonly Dictionary<string, int> _byNormalizedContent = normalizedTokens.ToDictionary(t => normalizer.Apply(t.Key), t => t.Value);
    private readonly Dictionary<int, string> _normalizedContent = normalizedTokens.ToDictionary(t => t.Value, t => t.Key);
    private string[] NormalizedKeys => _normalizedKeys ??= Longest(_byNormalizedContent);
    private string[]? _normalizedKeys;

    private static string[] Longest(IReadOnlyDictionary<string, int> tokens) => tokens.Keys.Where(k => k.Length > 0).OrderByDescending(k => k.Length).ToArray();

    /// <summary>The text cut at <paramref name="tokens"/> (the longest one at the leftmost position), in order.</summary>
    private static IEnumerable<(string Text, int? TokenId)> Split(string text, string[] tokens, IReadOnlyDictionary<string, int> ids)
    {
        int start = 0, position = 0;
        while (position < text.Length && tokens.Length > 0)
        {
            string? match = null;
            foreach (string token in tokens)
                if (string.CompareOrdinal(text, position, token, 0, token.Length) == 0) { match = token; break; }
            if (match is null) { position++; continue; }
            if (position > start) yield return (text[start..position], null);
            yield return (match, ids[match]);
            position += match.Length;
            start = position;
        }
        if (start < text.Length) yield return (text[start..], null);
    }

    /// <summary>The pieces to encode (text) or emit (an added token's id), in order.</summary>
    private IEnumerable<(string Text, int? TokenId)> Pieces(string text)
    {
        foreach (var (segment, raw) in Split(text, _raw, rawTokens))
        {
            if (raw is not null) { yield return (segment, raw); continue; }
            foreach (var (piece, normalized) in Split(normalizer.Apply(segment), NormalizedKeys, _byNormalizedContent))
            {
                if (normalized is not null) yield return (piece, normalized);
                else if (piece.Length > 0) yield return (addPrefixSpace && piece[0] != ' ' ? " " + piece : piece, null);
            }
        }
    }

    public IReadOnlyList<(int Id, string Piece)> EncodeToPieces(string text)
    {
        var output = new List<(int, string)>();
        foreach (var (piece, id) in Pieces(text))
        {
            if (id is int added) output.Add((added, piece));
            else output.AddRange(inner.EncodeToPieces(piece));
        }
        return output;
    }

    public IReadOnlyList<int> Encode(string text)
    {
        var output = new List<int>();
        foreach (var (piece, id) in Pieces(text))
        {
            if (id is int added) output.Add(added);
            else output.AddRange(inner.Encode(piece));
        }
        return output;
    }

    /// <summary>Decodes runs of model ids with the inner tokenizer; a normalized added token gives its content.</summary>
    public string Decode(IEnumerable<int> ids)
    {
        if (_normalizedContent.Count == 0) return inner.Decode(ids);
        var text = new System.Text.StringBuilder();
        var run = new List<int>();
        foreach (int id in ids)
        {
            if (!_normalizedContent.TryGetValue(id, out string? content)) { run.Add(id); continue; }
            text.Append(inner.Decode(run));
            run.Clear();
            text.Append(content);
        }
        return text.Append(inner.Decode(run)).ToString();
    }
}
