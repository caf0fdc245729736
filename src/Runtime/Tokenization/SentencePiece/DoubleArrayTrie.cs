using System.Buffers.Binary;

namespace SparseOnnx.Runtime.Tokenization.SentencePiece;

/// <summary>
/// A read-only Darts double-array trie over bytes, the format SentencePiece compiles its normalization rules
/// into. Each 32-bit unit packs a label (low 8 bits and bit 31), a has-leaf flag (bit 8) and an offset
/// (bits 10–31, shifted left by 8 when bit 9 is set); a leaf unit's low 31 bits are its value.
/// </summary>
internal sealed class DoubleArrayTrie
{
    private readonly uint[] _units;

    public DoubleArrayTrie(ReadOnlySpan<byte> blob)
    {
        if (blob.Length % 4 != 0) throw new FormatException($"the trie is {blob.Length} bytes, not a whole number of 32-bit units");
        _units = new uint[blob.Length / 4];
        for (int i = 0; i < _units.Length; i++) _units[i] = BinaryPrimitives.ReadUInt32LittleEndian(blob[(4 * i)..]);
        if (_units.Length == 0) throw new FormatException("the trie is empty");
    }

    private static bool HasLeaf(uint unit) => ((unit >> 8) & 1) == 1;
    private static uint Value(uint unit) => unit & ((1U << 31) - 1);
    private static uint Label(uint unit) => unit & ((1U << 31) | 0xFF);
    private static uint Offset(uint unit) => (unit >> 10) << (int)((unit & (1U << 9)) >> 6);

    /// <summary>
    /// The longest key that is a prefix of <paramref name="key"/>: its length in bytes and its value, or
    /// length 0 when no key is. (Darts' commonPrefixSearch, keeping the longest match as SentencePiece does.)
    /// </summary>
    public (int Length, int Value) LongestPrefix(ReadOnlySpan<byte> key)
    {
        int bestLength = 0, bestValue = 0;
        uint id = Offset(_units[0]);
        for (int i = 0; i < key.Length; i++)
        {
            id ^= key[i];
            if (id >= _units.Length) break;
            uint unit = _units[id];
            if (Label(unit) != key[i]) break;
            id ^= Offset(unit);
            if (id >= _units.Length) break;
            if (HasLeaf(unit))
            {
                bestLength = i + 1;
                bestValue = (int)Value(_units[id]);
            }
        }
        return (bestLength, bestValue);
    }
}
