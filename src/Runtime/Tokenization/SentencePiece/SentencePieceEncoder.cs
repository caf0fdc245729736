using System.Text;

namespace SparseOnnx.Runtime.Tokenization.SentencePiece;

/// <summary>
/// Encodes and decodes text exactly as the SentencePiece library (C++, and so the Python package) does for a
/// BPE or unigram model: normalization by the model's own compiled rules (<see cref="SentencePieceNormalizer"/>),
/// segmentation (<see cref="BpeSegmenter"/>, <see cref="UnigramSegmenter"/>), then each unknown piece becomes
/// its UTF-8 bytes' <c>&lt;0xXX&gt;</c> pieces when the model has byte fallback, or, without it, a run of
/// unknown pieces becomes one unknown id. Immutable and thread-safe.
/// </summary>
internal sealed class SentencePieceEncoder
{
    private const char SpaceSymbol = '\u2581';
    private readonly SentencePieceModelFile _model;
    private readonly PieceVocabulary _vocabulary;
    private readonly SentencePieceNormalizer _normalizer;
    private readonly PrefixMatcherChars _userDefined;
    private readonly int[] _byteIds = new int[256];
    private readonly int _longestPiece;

    public SentencePieceEncoder(SentencePieceModelFile model)
    {
        _model = model;
        if (model.Algorithm is not (SentencePieceAlgorithm.Bpe or SentencePieceAlgorithm.Unigram))
            throw new NotSupportedException($"SentencePiece model type {model.Algorithm.ToString().ToUpperInvariant()} is not supported (only BPE and UNIGRAM)");
        _vocabulary = new PieceVocabulary(model.Pieces, model.UnknownId);
        _userDefined = new PrefixMatcherChars(_vocabulary.UserDefined);
        _normalizer = new SentencePieceNormalizer(model.Normalizer, model.TreatWhitespaceAsSuffix, new PrefixMatcher(_vocabulary.UserDefined));
        _longestPiece = model.Pieces.Max(p => p.Text.Length);
        Array.Fill(_byteIds, -1);
        for (int id = 0; id < model.Pieces.Count; id++)
            if (model.Pieces[id].Type == PieceType.Byte)
                _byteIds[ParseBytePiece(model.Pieces[id].Text)] = id;
        if (model.ByteFallback && _byteIds.Any(id => id < 0))
            throw new FormatException($"the model has byte_fallback but lacks byte piece <0x{Array.IndexOf(_byteIds, -1):X2}>");
    }

    private static int ParseBytePiece(string text) =>
        text.Length == 6 && text.StartsWith("<0x", StringComparison.Ordinal) && text[5] == '>'
        && int.TryParse(text.AsSpan(3, 2), System.Globalization.NumberStyles.AllowHexSpecifier, null, out int b)
            ? b : throw new FormatException($"byte piece '{text}' is not of the form <0xXX>");

    /// <summary>The normalized text the segmenter sees ("▁" for spaces), for diagnostics.</summary>
    public string Normalize(string text) => Encoding.UTF8.GetString(_normalizer.Normalize(text));

    public List<(string Piece, int Id)> EncodePieces(string text)
    {
        string normalized = Normalize(text);
        var segments = _model.Algorithm == SentencePieceAlgorithm.Bpe
            ? BpeSegmenter.Segment(normalized, _vocabulary, _userDefined)
            : UnigramSegmenter.Segment(normalized, _vocabulary, _longestPiece);
        var output = new List<(string Piece, int Id)>(segments.Count);
        bool previousUnknown = false;
        foreach (var segment in segments)
        {
            string surface = normalized.Substring(segment.Start, segment.Length);
            bool unknown = _vocabulary.TypeOf(segment.Id) == PieceType.Unknown;
            if (unknown && _model.ByteFallback)
            {
                foreach (byte b in Encoding.UTF8.GetBytes(surface)) output.Add(($"<0x{b:X2}>", _byteIds[b]));
            }
            else if (unknown && previousUnknown)
            {
                // A run of unknown pieces is one unknown piece (the library merges their surfaces).
                output[^1] = (output[^1].Piece + surface, segment.Id);
            }
            else output.Add((surface, segment.Id));
            previousUnknown = unknown;
        }
        return output;
    }

    public int[] Encode(string text) => EncodePieces(text).Select(p => p.Id).ToArray();

    /// <summary>
    /// Decodes as the library does: control pieces give nothing, unknown pieces give " ⁇ ", runs of byte pieces
    /// are decoded as UTF-8 (each invalid byte is U+FFFD), "▁" becomes a space, and the space the normalizer put
    /// in front of the first piece is dropped.
    /// </summary>
    public string Decode(IEnumerable<int> ids)
    {
        var text = new StringBuilder();
        var bytes = new List<byte>();
        bool first = true;
        void Append(string piece)
        {
            if (first && (_model.Normalizer.AddDummyPrefix || _model.Normalizer.RemoveExtraWhitespaces) && piece.Length > 0 && piece[0] == SpaceSymbol)
                piece = piece[1..];
            text.Append(piece.Replace(SpaceSymbol, ' '));
            first = false;
        }
        void FlushBytes()
        {
            if (bytes.Count == 0) return;
            Append(DecodeBytes(bytes));
            bytes.Clear();
        }
        foreach (int id in ids)
        {
            var piece = _model.Pieces[(uint)id < (uint)_model.Pieces.Count ? id : throw new ArgumentOutOfRangeException(nameof(ids), $"id {id} is outside the vocabulary of {_model.Pieces.Count}")];
            switch (piece.Type)
            {
                case PieceType.Control: continue;
                case PieceType.Byte: bytes.Add((byte)ParseBytePiece(piece.Text)); continue;
                case PieceType.Unknown: FlushBytes(); Append(" \u2047 "); continue;
                default: FlushBytes(); Append(piece.Text); continue;
            }
        }
        FlushBytes();
        return text.ToString();
    }

    /// <summary>UTF-8 bytes to text, each byte of an invalid sequence becoming U+FFFD (the library's rule).</summary>
    private static string DecodeBytes(List<byte> bytes)
    {
        var span = System.Runtime.InteropServices.CollectionsMarshal.AsSpan(bytes);
        var text = new StringBuilder();
        while (span.Length > 0)
        {
            int length = Utf8.ValidCharacterLength(span);
            if (length == 0)
            {
                text.Append('\uFFFD');
                span = span[1..];
            }
            else
            {
                text.Append(Encoding.UTF8.GetString(span[..length]));
                span = span[length..];
            }
        }
        return text.ToString();
    }
}
