using Microsoft.ML.Tokenizers;

namespace SparseOnnx.Runtime.Tokenization;

/// <summary>Which file format a <see cref="TextTokenizer"/> was loaded from.</summary>
public enum TokenizerFormat
{
    /// <summary>A SentencePiece model (<c>tokenizer.model</c>): Llama 1/2, Mistral, Gemma, our reference model.</summary>
    SentencePiece,
    /// <summary>A Hugging Face <c>tokenizer.json</c> with a byte-level BPE model: GPT-2, Llama 3, Qwen2, Phi-3.5.</summary>
    HuggingFaceJson,
    /// <summary>A tiktoken rank file (<c>*.tiktoken</c>: base64 token and rank per line).</summary>
    Tiktoken,
}

/// <summary>What a tokenizer format implements: ids and their pieces for a text, and text for ids.</summary>
internal interface ITokenCodec
{
    /// <summary>The ids of <paramref name="text"/> with the piece (token string) each stands for.</summary>
    IReadOnlyList<(int Id, string Piece)> EncodeToPieces(string text);

    /// <summary>The ids of <paramref name="text"/>.</summary>
    IReadOnlyList<int> Encode(string text);

    /// <summary>The text of <paramref name="ids"/>, special tokens left out.</summary>
    string Decode(IEnumerable<int> ids);
}

/// <summary>A Microsoft.ML.Tokenizers tokenizer (byte-level BPE, tiktoken) as a codec.</summary>
internal sealed class MicrosoftTokenizerCodec(Tokenizer tokenizer) : ITokenCodec
{
    public IReadOnlyList<(int Id, string Piece)> EncodeToPieces(string text) =>
        tokenizer.EncodeToTokens(text, out _).Select(t => (t.Id, t.Value)).ToArray();

    public IReadOnlyList<int> Encode(string text) => tokenizer.EncodeToIds(text);

    public string Decode(IEnumerable<int> ids) => tokenizer.Decode(ids);
}

/// <summary>
/// A tokenizer with what generation and evaluation need besides encode/decode: the begin- and
/// end-of-sequence ids. SentencePiece models are run by our own implementation of the library's algorithms
/// (<see cref="SentencePiece.SentencePieceEncoder"/>: its normalizer, BPE and unigram, byte fallback), so ids
/// equal the Python package's; byte-level BPE and tiktoken files by Microsoft.ML.Tokenizers.
/// Immutable and safe to share between threads.
/// </summary>
public sealed class TextTokenizer
{
    internal TextTokenizer(ITokenCodec codec, TokenizerFormat format, string source, int? bosId, int? eosId, int vocabularySize)
    {
        Codec = codec;
        Format = format;
        Source = source;
        BosId = bosId;
        EosId = eosId;
        VocabularySize = vocabularySize;
    }

    internal ITokenCodec Codec { get; }

    /// <summary>
    /// True when a beginning-of-sequence token goes in front of a whole text by default, as the reference library
    /// of the format does it: a Hugging Face folder's <c>tokenizer_config.json</c> (<c>add_bos_token</c>) or
    /// <c>tokenizer.json</c> post-processor when present; plain SentencePiece and tiktoken add none.
    /// </summary>
    public bool AddsBosByDefault { get; init; }

    /// <summary>The text of the BOS token (<c>&lt;s&gt;</c>, <c>&lt;|begin_of_text|&gt;</c>), when known.</summary>
    public string? BosText { get; init; }

    /// <summary>Normalization notes: what the tokenizer reproduces only approximately, or an empty list.</summary>
    public IReadOnlyList<string> Warnings { get; init; } = [];

    /// <summary>The format the tokenizer was read from.</summary>
    public TokenizerFormat Format { get; }

    /// <summary>The file it was read from.</summary>
    public string Source { get; }

    /// <summary>The begin-of-sequence id, when the tokenizer has one.</summary>
    public int? BosId { get; }

    /// <summary>The end-of-sequence id, when the tokenizer has one; generation stops on it.</summary>
    public int? EosId { get; }

    /// <summary>Number of ids (regular and special) the tokenizer can produce.</summary>
    public int VocabularySize { get; }

    /// <summary>Encodes <paramref name="text"/>, with <see cref="BosId"/> in front when <paramref name="addBos"/> and the tokenizer has one.</summary>
    public int[] Encode(string text, bool addBos = false)
    {
        ArgumentNullException.ThrowIfNull(text);
        IReadOnlyList<int> ids = Codec.Encode(text);
        if (!addBos || BosId is not int bos) return ids.ToArray();
        var withBos = new int[ids.Count + 1];
        withBos[0] = bos;
        for (int i = 0; i < ids.Count; i++) withBos[i + 1] = ids[i];
        return withBos;
    }

    /// <summary>Decodes ids to text, special tokens left out.</summary>
    public string Decode(IEnumerable<int> ids)
    {
        ArgumentNullException.ThrowIfNull(ids);
        return Codec.Decode(ids);
    }

    /// <summary>The ids of <paramref name="text"/> with the piece each stands for (no BOS).</summary>
    public IReadOnlyList<(int Id, string Piece)> EncodeToPieces(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        return Codec.EncodeToPieces(text);
    }

    /// <summary>
    /// Loads a tokenizer by its file: <c>*.model</c> (SentencePiece), <c>*.json</c> (Hugging Face
    /// tokenizer.json), <c>*.tiktoken</c>; or a folder holding <c>tokenizer.model</c> or <c>tokenizer.json</c>.
    /// Throws <see cref="TokenizerLoadException"/> naming the file and the problem.
    /// </summary>
    public static TextTokenizer Load(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        if (Directory.Exists(path))
        {
            foreach (string name in new[] { "tokenizer.model", "tokenizer.json" })
                if (File.Exists(Path.Combine(path, name))) return Load(Path.Combine(path, name));
            throw new TokenizerLoadException(path, "the folder holds neither tokenizer.model nor tokenizer.json");
        }
        if (!File.Exists(path)) throw new TokenizerLoadException(path, "no such file");
        string extension = Path.GetExtension(path).ToLowerInvariant();
        try
        {
            return extension switch
            {
                ".model" => TiktokenLoader.LooksLikeRankFile(path) ? TiktokenLoader.Load(path) : SentencePieceLoader.Load(path),
                ".json" => HuggingFaceTokenizerJson.Load(path),
                ".tiktoken" => TiktokenLoader.Load(path),
                _ => throw new TokenizerLoadException(path, $"unknown tokenizer format '{extension}' (expected a SentencePiece .model, a Hugging Face tokenizer.json or a .tiktoken file)"),
            };
        }
        catch (TokenizerLoadException) { throw; }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or FormatException or ArgumentException
                                      or NotSupportedException or InvalidOperationException or System.Text.Json.JsonException or Google.Protobuf.InvalidProtocolBufferException or KeyNotFoundException)
        {
            throw new TokenizerLoadException(path, e.Message, e);
        }
    }
}

/// <summary>A tokenizer file could not be read; the message names the file and the problem.</summary>
public sealed class TokenizerLoadException : Exception
{
    /// <summary>Creates the exception for <paramref name="path"/>.</summary>
    public TokenizerLoadException(string path, string problem, Exception? inner = null)
        : base($"Cannot load the tokenizer '{path}': {problem}.", inner) => Path = path;

    /// <summary>The file or folder that could not be loaded.</summary>
    public string Path { get; }
}
