using System.Buffers.Binary;
using SparseOnnx.GraphRewriter.Ir;

namespace SparseOnnx.GraphRewriter.Sparsify;

/// <summary>Element conversions between float and the floating-point types the rewriter writes.</summary>
public static class FloatElements
{
    /// <summary>Whether the rewriter reads and writes <paramref name="type"/> (float32, float16, bfloat16).</summary>
    public static bool IsSupported(DataType type) => type is DataType.Float or DataType.Float16 or DataType.BFloat16;

    /// <summary>Floats as raw little-endian bytes of <paramref name="type"/> (round to nearest even).</summary>
    public static byte[] Encode(ReadOnlySpan<float> values, DataType type)
    {
        int size = type == DataType.Float ? 4 : 2;
        var bytes = new byte[values.Length * size];
        for (int i = 0; i < values.Length; i++)
        {
            var slot = bytes.AsSpan(i * size, size);
            switch (type)
            {
                case DataType.Float: BinaryPrimitives.WriteSingleLittleEndian(slot, values[i]); break;
                case DataType.Float16: BinaryPrimitives.WriteHalfLittleEndian(slot, (Half)values[i]); break;
                case DataType.BFloat16: BinaryPrimitives.WriteUInt16LittleEndian(slot, ToBFloat16(values[i])); break;
                default: throw new NotSupportedException($"Cannot encode {type.DisplayName()}.");
            }
        }
        return bytes;
    }

    /// <summary>Raw little-endian bytes of <paramref name="type"/> as floats.</summary>
    public static float[] Decode(ReadOnlySpan<byte> bytes, DataType type)
    {
        int size = type == DataType.Float ? 4 : 2;
        var values = new float[bytes.Length / size];
        for (int i = 0; i < values.Length; i++)
        {
            var slot = bytes.Slice(i * size, size);
            values[i] = type switch
            {
                DataType.Float => BinaryPrimitives.ReadSingleLittleEndian(slot),
                DataType.Float16 => (float)BinaryPrimitives.ReadHalfLittleEndian(slot),
                DataType.BFloat16 => FromBFloat16(BinaryPrimitives.ReadUInt16LittleEndian(slot)),
                _ => throw new NotSupportedException($"Cannot decode {type.DisplayName()}."),
            };
        }
        return values;
    }

    /// <summary>The float whose upper half <paramref name="bits"/> are (exact: bfloat16 is a truncated float32).</summary>
    public static float FromBFloat16(ushort bits) => BitConverter.UInt32BitsToSingle((uint)bits << 16);

    /// <summary>The bfloat16 bits of <paramref name="value"/>, rounded to nearest even; NaN stays a quiet NaN.</summary>
    public static ushort ToBFloat16(float value)
    {
        uint bits = BitConverter.SingleToUInt32Bits(value);
        if ((bits & 0x7FFFFFFF) > 0x7F800000) return (ushort)((bits >> 16) | 0x40);
        bits += 0x7FFF + ((bits >> 16) & 1);
        return (ushort)(bits >> 16);
    }
}
