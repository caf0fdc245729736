using System.Buffers.Binary;
using System.Text;

namespace SparseOnnx.Runtime.Tokenization.SentencePiece;

/// <summary>
/// SentencePiece's text normalization, as its C++ library (and so the Python package) applies it, over UTF-8
/// bytes: at each position the longest user-defined symbol is kept as it is, else the longest rule of the
/// model's compiled character map (nfkc, nmt_nfkc, nmt_nfkc_cf or a user's TSV, all compiled into the model
/// at training time) is replaced by its target, else one UTF-8 character is copied (an invalid byte becomes
/// U+FFFD). Around that: leading, trailing and repeated spaces are dropped (<c>remove_extra_whitespaces</c>),
/// a space is put in front (<c>add_dummy_prefix</c>, or behind with <c>treat_whitespace_as_suffix</c>), and
/// spaces become U+2581 "▁" (<c>escape_whitespaces</c>). Only the space U+0020 counts as a space here: other
/// whitespace reaches these steps only as the rules map it (nmt_nfkc maps tab, newline and NBSP to U+0020;
/// identity keeps them).
/// </summary>
internal sealed class SentencePieceNormalizer
{
    private static readonly byte[] SpaceSymbol = "\u2581"u8.ToArray();
    private static readonly byte[] ReplacementCharacter = "\uFFFD"u8.ToArray();

    private readonly NormalizerSpec _spec;
    private readonly bool _treatWhitespaceAsSuffix;
    private readonly DoubleArrayTrie? _rules;
    private readonly byte[] _replacements = [];
    private readonly PrefixMatcher _userDefined;

    public SentencePieceNormalizer(NormalizerSpec spec, bool treatWhitespaceAsSuffix, PrefixMatcher userDefined)
    {
        _spec = spec;
        _treatWhitespaceAsSuffix = treatWhitespaceAsSuffix;
        _userDefined = userDefined;
        var blob = spec.PrecompiledCharsMap;
        if (blob.Length == 0) return;
        if (blob.Length <= 4) throw new FormatException("the normalizer's precompiled_charsmap is truncated");
        uint trieSize = BinaryPrimitives.ReadUInt32LittleEndian(blob);
        if (trieSize >= (uint)(blob.Length - 4) + 1 || trieSize == 0)
            throw new FormatException($"the normalizer's precompiled_charsmap declares a {trieSize}-byte trie in a {blob.Length}-byte blob");
        _rules = new DoubleArrayTrie(blob.AsSpan(4, (int)trieSize));
        _replacements = blob[(4 + (int)trieSize)..];
    }

    /// <summary>The normalized text as UTF-8 bytes (what the segmentation model reads).</summary>
    public byte[] Normalize(string text)
    {
        byte[] input = Encoding.UTF8.GetBytes(text);
        var output = new List<byte>(input.Length + 8);
        int position = 0;
        bool removeExtra = _spec.RemoveExtraWhitespaces;
        if (removeExtra)
        {
            // Leading spaces go, also those that rules produce (a leading NBSP under nmt_nfkc).
            while (position < input.Length)
            {
                var (piece, consumed) = NormalizePrefix(input, position);
                if (!(piece.Length == 1 && piece.Span[0] == (byte)' ')) break;
                position += consumed;
            }
        }
        if (position >= input.Length) return [];
        if (!_treatWhitespaceAsSuffix && _spec.AddDummyPrefix) AppendSpace(output);
        bool previousIsSpace = removeExtra;
        while (position < input.Length)
        {
            var (normalizedPiece, consumed) = NormalizePrefix(input, position);
            var piece = normalizedPiece.Span;
            if (previousIsSpace)
                while (piece.Length > 0 && piece[0] == (byte)' ') piece = piece[1..];
            if (piece.Length > 0)
            {
                foreach (byte b in piece)
                {
                    if (_spec.EscapeWhitespaces && b == (byte)' ') output.AddRange(SpaceSymbol);
                    else output.Add(b);
                }
                previousIsSpace = piece[^1] == (byte)' ';
            }
            position += consumed;
            if (!removeExtra) previousIsSpace = false;
        }
        if (removeExtra)
        {
            byte[] space = _spec.EscapeWhitespaces ? SpaceSymbol : [(byte)' '];
            while (EndsWith(output, space)) output.RemoveRange(output.Count - space.Length, space.Length);
        }
        if (_treatWhitespaceAsSuffix && _spec.AddDummyPrefix) AppendSpace(output);
        return output.ToArray();
    }

    private void AppendSpace(List<byte> output)
    {
        if (_spec.EscapeWhitespaces) output.AddRange(SpaceSymbol);
        else output.Add((byte)' ');
    }

    private static bool EndsWith(List<byte> output, byte[] suffix)
    {
        if (output.Count < suffix.Length) return false;
        for (int i = 0; i < suffix.Length; i++)
            if (output[output.Count - suffix.Length + i] != suffix[i]) return false;
        return true;
    }

    /// <summary>What the text at <paramref name="position"/> normalizes to, and how many input bytes that takes.</summary>
    private (ReadOnlyMemory<byte> Piece, int Consumed) NormalizePrefix(byte[] input, int position)
    {
        var rest = input.AsSpan(position);
        int userDefined = _userDefined.LongestMatch(rest);
        if (userDefined > 0) return (input.AsMemory(position, userDefined), userDefined);
        if (_rules is not null)
        {
            var (length, value) = _rules.LongestPrefix(rest);
            if (length > 0)
            {
                if ((uint)value >= (uint)_replacements.Length)
                    throw new FormatException($"a normalization rule points at offset {value}, outside the {_replacements.Length}-byte replacement table");
                int end = Array.IndexOf(_replacements, (byte)0, value);
                if (end < 0) end = _replacements.Length;
                return (_replacements.AsMemory(value, end - value), length);
            }
        }
        int characterLength = Utf8.ValidCharacterLength(rest);
        return characterLength > 0 ? (input.AsMemory(position, characterLength), characterLength) : (ReplacementCharacter, 1);
    }
}

/// <summary>Longest match among a model's user-defined symbols, over UTF-8 bytes (SentencePiece's PrefixMatcher).</summary>
internal sealed class PrefixMatcher
{
    private readonly HashSet<string> _symbols;
    private readonly int _longest;

    public PrefixMatcher(IEnumerable<string> symbols)
    {
        _symbols = new HashSet<string>(symbols, StringComparer.Ordinal);
        _longest = _symbols.Count == 0 ? 0 : _symbols.Max(s => Encoding.UTF8.GetByteCount(s));
    }

    /// <summary>Bytes of the longest symbol that <paramref name="text"/> starts with, or 0.</summary>
    public int LongestMatch(ReadOnlySpan<byte> text)
    {
        if (_symbols.Count == 0) return 0;
        for (int length = Math.Min(_longest, text.Length); length > 0; length--)
        {
            // Symbols are whole UTF-8 strings, so a length that cuts a character matches nothing.
            if (length < text.Length && (text[length] & 0xC0) == 0x80) continue;
            if (_symbols.Contains(Encoding.UTF8.GetString(text[..length]))) return length;
        }
        return 0;
    }
}

/// <summary>UTF-8 helpers with SentencePiece's rules.</summary>
internal static class Utf8
{
    /// <summary>The length of the valid UTF-8 character at the start of <paramref name="text"/>, or 0 when it is not one.</summary>
    public static int ValidCharacterLength(ReadOnlySpan<byte> text)
    {
        var status = System.Text.Rune.DecodeFromUtf8(text, out _, out int consumed);
        return status == System.Buffers.OperationStatus.Done ? consumed : 0;
    }
}
