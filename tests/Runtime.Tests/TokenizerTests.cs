using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using SparseOnnx.Runtime.Tokenization;

namespace SparseOnnx.Runtime.Tests;

public class TokenizerTests
{
    /// <summary>
    /// Our SentencePiece implementation must reproduce the Python sentencepiece library's ids exactly on the reference
    /// model's tokenizer (golden/tokenizer_cases.json, written by the recipe with sentencepiece 0.1.97):
    /// whole documents, document prefixes, punctuation, digits, quotes and non-ASCII text through byte fallback.
    /// </summary>
    [Fact]
    public void SentencePieceMatchesThePythonLibraryOnEveryGoldenCase()
    {
        var golden = JsonNode.Parse(File.ReadAllText(Path.Combine(ReferenceModel.Folder, "golden", "tokenizer_cases.json")))!;
        var tokenizer = TextTokenizer.Load(ReferenceModel.TokenizerPath);
        Assert.Equal(TokenizerFormat.SentencePiece, tokenizer.Format);
        Assert.Equal((int)golden["bos_id"]!, tokenizer.BosId);
        Assert.Equal((int)golden["eos_id"]!, tokenizer.EosId);
        Assert.Equal((int)golden["vocab_size"]!, tokenizer.VocabularySize);
        var cases = golden["cases"]!.AsArray();
        Assert.True(cases.Count >= 30);
        foreach (var c in cases)
        {
            string text = (string)c!["text"]!;
            int[] expected = c["ids"]!.AsArray().Select(i => (int)i!).ToArray();
            int[] actual = tokenizer.Encode(text);
            int firstDifference = Enumerable.Range(0, Math.Min(expected.Length, actual.Length)).FirstOrDefault(i => expected[i] != actual[i], -1);
            Assert.True(expected.SequenceEqual(actual),
                $"{c["name"]}: {actual.Length} ids vs {expected.Length} expected; first difference at {firstDifference}");
            Assert.Equal(text, tokenizer.Decode(actual));
        }
    }

    [Fact]
    public void EncodePutsBosInFrontOnlyWhenAsked()
    {
        var tokenizer = TextTokenizer.Load(ReferenceModel.TokenizerPath);
        int[] plain = tokenizer.Encode("The jury said");
        Assert.Equal([1, .. plain], tokenizer.Encode("The jury said", addBos: true));
        Assert.DoesNotContain(1, plain);
    }

    [Fact]
    public void AFolderLoadsItsTokenizerModel()
    {
        var tokenizer = TextTokenizer.Load(ReferenceModel.Folder);
        Assert.Equal(Path.Combine(ReferenceModel.Folder, "tokenizer.model"), tokenizer.Source);
    }

    /// <summary>GPT-2's mapping of bytes to printable characters, which byte-level BPE vocabularies are written in.</summary>
    private static Dictionary<byte, char> BytesToUnicode()
    {
        var printable = Enumerable.Range('!', '~' - '!' + 1).Concat(Enumerable.Range(0xA1, 0xAC - 0xA1 + 1)).Concat(Enumerable.Range(0xAE, 0xFF - 0xAE + 1)).ToHashSet();
        var map = new Dictionary<byte, char>();
        int extra = 0;
        for (int b = 0; b < 256; b++) map[(byte)b] = printable.Contains(b) ? (char)b : (char)(256 + extra++);
        return map;
    }

    private static string WriteByteLevelTokenizerJson(string folder, JsonObject? preTokenizer = null, JsonNode? normalizer = null)
    {
        var bytes = BytesToUnicode();
        var vocab = new JsonObject();
        for (int b = 0; b < 256; b++) vocab[bytes[(byte)b].ToString()] = b;
        string[] merged = ["Ġc", "Ġca", "Ġcat", "th", "the"];
        for (int i = 0; i < merged.Length; i++) vocab[merged[i]] = 256 + i;
        var json = new JsonObject
        {
            ["version"] = "1.0",
            ["added_tokens"] = new JsonArray(new JsonObject { ["id"] = 261, ["content"] = "<|endoftext|>", ["special"] = true }),
            ["normalizer"] = normalizer,
            ["pre_tokenizer"] = preTokenizer ?? new JsonObject { ["type"] = "ByteLevel", ["add_prefix_space"] = false, ["use_regex"] = true },
            ["model"] = new JsonObject
            {
                ["type"] = "BPE", ["vocab"] = vocab,
                ["merges"] = new JsonArray("Ġ c", "Ġc a", "Ġca t", "t h", "th e"),
            },
        };
        string path = Path.Combine(folder, "tokenizer.json");
        File.WriteAllText(path, json.ToJsonString());
        return path;
    }

    [Fact]
    public void ByteLevelTokenizerJsonAppliesMergesAndSpecialTokens()
    {
        using var dir = new TempFolder();
        var tokenizer = TextTokenizer.Load(WriteByteLevelTokenizerJson(dir.Path));
        Assert.Equal(TokenizerFormat.HuggingFaceJson, tokenizer.Format);
        Assert.Equal([260, 258], tokenizer.Encode("the cat"));
        Assert.Equal([261, 260], tokenizer.Encode("<|endoftext|>the"));
        // Bytes without merges come out one id per byte: 'é' is C3 A9.
        Assert.Equal([0xC3, 0xA9], tokenizer.Encode("é"));
        Assert.Equal("the cat é", tokenizer.Decode(tokenizer.Encode("the cat é")));
        Assert.Equal(261, tokenizer.EosId);
    }

    [Fact]
    public void SplitThenByteLevelPreTokenizerAsLlama3WritesIt()
    {
        using var dir = new TempFolder();
        var pre = new JsonObject
        {
            ["type"] = "Sequence",
            ["pretokenizers"] = new JsonArray(
                new JsonObject { ["type"] = "Split", ["pattern"] = new JsonObject { ["Regex"] = @"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]++[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+" }, ["behavior"] = "Isolated" },
                new JsonObject { ["type"] = "ByteLevel", ["use_regex"] = false }),
        };
        var tokenizer = TextTokenizer.Load(WriteByteLevelTokenizerJson(dir.Path, pre));
        Assert.Equal([260, 258], tokenizer.Encode("the cat"));
        File.WriteAllText(Path.Combine(dir.Path, "tokenizer_config.json"), """{"bos_token": "<|endoftext|>", "eos_token": {"content": "<|endoftext|>"}}""");
        Assert.Equal(261, TextTokenizer.Load(Path.Combine(dir.Path, "tokenizer.json")).BosId);
    }

    [Fact]
    public void TiktokenRankFileEncodesByRank()
    {
        using var dir = new TempFolder();
        var lines = new List<string>();
        for (int b = 0; b < 256; b++) lines.Add($"{Convert.ToBase64String([(byte)b])} {b}");
        string[] merged = ["th", "the", " c", " ca", " cat"];
        for (int i = 0; i < merged.Length; i++) lines.Add($"{Convert.ToBase64String(Encoding.UTF8.GetBytes(merged[i]))} {256 + i}");
        string path = Path.Combine(dir.Path, "tiny.tiktoken");
        File.WriteAllLines(path, lines);
        var tokenizer = TextTokenizer.Load(path);
        Assert.Equal(TokenizerFormat.Tiktoken, tokenizer.Format);
        Assert.Equal([257, 260], tokenizer.Encode("the cat"));
        Assert.Equal("the cat!", tokenizer.Decode(tokenizer.Encode("the cat!")));
        // Llama 3 ships its tiktoken ranks as tokenizer.model: recognised by content, not by extension.
        string asModel = Path.Combine(dir.Path, "tokenizer.model");
        File.Copy(path, asModel);
        Assert.Equal(TokenizerFormat.Tiktoken, TextTokenizer.Load(asModel).Format);
    }

    [Fact]
    public void TheNormalizerChainIsAppliedInFrontOfTheModel()
    {
        using var dir = new TempFolder();
        // NFKC turns the "ﬁ" ligature into "fi"... and Lowercase "THE" into "the" (id 260), as the tokenizers library does.
        var normalizer = new JsonObject
        {
            ["type"] = "Sequence",
            ["normalizers"] = new JsonArray(new JsonObject { ["type"] = "NFKC" }, new JsonObject { ["type"] = "Lowercase" },
                new JsonObject { ["type"] = "Replace", ["pattern"] = new JsonObject { ["String"] = " " }, ["content"] = " " }),
        };
        var tokenizer = TextTokenizer.Load(WriteByteLevelTokenizerJson(dir.Path, normalizer: normalizer));
        Assert.Equal([260, 258], tokenizer.Encode("THE cat"));
        Assert.Equal(tokenizer.Encode("fi"), tokenizer.Encode("ﬁ"));
        Assert.Equal([260, 258], tokenizer.EncodeToPieces("the cat").Select(p => p.Id));
        Assert.Equal(["the", "Ġcat"], tokenizer.EncodeToPieces("the cat").Select(p => p.Piece));
    }

    [Fact]
    public void ByteLevelAddPrefixSpacePutsASpaceInFront()
    {
        using var dir = new TempFolder();
        var pre = new JsonObject { ["type"] = "ByteLevel", ["add_prefix_space"] = true, ["use_regex"] = true };
        var tokenizer = TextTokenizer.Load(WriteByteLevelTokenizerJson(dir.Path, pre));
        Assert.Equal([258], tokenizer.Encode("cat"));
        Assert.Equal([258], tokenizer.Encode(" cat"));
    }

    [Fact]
    public void BosByDefaultFollowsTheConfigOrThePostProcessor()
    {
        using var dir = new TempFolder();
        string path = WriteByteLevelTokenizerJson(dir.Path);
        Assert.False(TextTokenizer.Load(path).AddsBosByDefault);
        var json = JsonNode.Parse(File.ReadAllText(path))!.AsObject();
        json["post_processor"] = JsonNode.Parse("""
            {"type": "TemplateProcessing", "single": [{"SpecialToken": {"id": "<|endoftext|>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
             "special_tokens": {"<|endoftext|>": {"id": "<|endoftext|>", "ids": [261], "tokens": ["<|endoftext|>"]}}}
            """);
        File.WriteAllText(path, json.ToJsonString());
        File.WriteAllText(Path.Combine(dir.Path, "tokenizer_config.json"), """{"bos_token": "<|endoftext|>"}""");
        Assert.True(TextTokenizer.Load(path).AddsBosByDefault);
        File.WriteAllText(Path.Combine(dir.Path, "tokenizer_config.json"), """{"bos_token": "<|endoftext|>", "add_bos_token": false}""");
        Assert.False(TextTokenizer.Load(path).AddsBosByDefault);
        // A bare SentencePiece model adds none, as the sentencepiece library's encode does not.
        Assert.False(TextTokenizer.Load(ReferenceModel.TokenizerPath).AddsBosByDefault);
    }

    [Theory]
    [InlineData("""{"type": "BertNormalizer", "lowercase": true}""", null, "normalizer 'BertNormalizer' is not supported")]
    [InlineData("""{"type": "Sequence", "normalizers": [{"type": "NFC"}, {"type": "Precompiled", "precompiled_charsmap": ""}]}""", null, "normalizer 'Precompiled' is not supported")]
    [InlineData(null, """{"type": "Sequence", "pretokenizers": [{"type": "Digits", "individual_digits": true}, {"type": "ByteLevel"}]}""", "pre-tokenizer step 'Digits' is not supported")]
    [InlineData(null, """{"type": "Sequence", "pretokenizers": [{"type": "Split", "pattern": {"Regex": "\\s+"}}, {"type": "ByteLevel", "add_prefix_space": true, "use_regex": false}]}""", "add_prefix_space after a Split is not supported")]
    public void WhatTheReaderCannotReproduceIsRefusedByName(string? normalizer, string? preTokenizer, string expected)
    {
        using var dir = new TempFolder();
        string path = WriteByteLevelTokenizerJson(dir.Path, preTokenizer is null ? null : JsonNode.Parse(preTokenizer)!.AsObject(),
            normalizer is null ? null : JsonNode.Parse(normalizer));
        var error = Assert.Throws<TokenizerLoadException>(() => TextTokenizer.Load(path));
        Assert.Contains(expected, error.Message);
    }

    [Theory]
    [InlineData("missing.model", null, "no such file")]
    [InlineData("vocab.txt", "hello", "unknown tokenizer format '.txt'")]
    [InlineData("tokenizer.json", """{"model": {"type": "WordPiece", "vocab": {}}}""", "model type 'WordPiece' is not supported")]
    [InlineData("tokenizer.json", """{"model": {"type": "BPE", "byte_fallback": true, "vocab": {}, "merges": []}}""", "pass its tokenizer.model")]
    [InlineData("tokenizer.json", "{ not json", "Cannot load the tokenizer")]
    [InlineData("bad.tiktoken", "YQ== 0\nnot-a-rank-line\n", "line 2 is not 'base64-token rank'")]
    [InlineData("broken.model", "\u0001\u0002garbage", "Cannot load the tokenizer")]
    public void BadTokenizerFilesAreRefusedWithTheirName(string name, string? content, string expected)
    {
        using var dir = new TempFolder();
        string path = Path.Combine(dir.Path, name);
        if (content is not null) File.WriteAllText(path, content);
        var error = Assert.Throws<TokenizerLoadException>(() => TextTokenizer.Load(path));
        Assert.Contains(expected, error.Message);
        Assert.Contains(path, error.Message);
    }
}
