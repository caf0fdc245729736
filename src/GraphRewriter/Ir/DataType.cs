namespace SparseOnnx.GraphRewriter.Ir;

/// <summary>
/// Tensor element types, numbered as ONNX's <c>TensorProto.DataType</c> so values convert 1:1.
/// Values this enum does not name (types a newer ONNX adds) are still carried as their number.
/// </summary>
public enum DataType
{
    Undefined = 0,
    Float = 1,
    UInt8 = 2,
    Int8 = 3,
    UInt16 = 4,
    Int16 = 5,
    Int32 = 6,
    Int64 = 7,
    String = 8,
    Bool = 9,
    Float16 = 10,
    Double = 11,
    UInt32 = 12,
    UInt64 = 13,
    Complex64 = 14,
    Complex128 = 15,
    BFloat16 = 16,
    Float8E4M3FN = 17,
    Float8E4M3FNUZ = 18,
    Float8E5M2 = 19,
    Float8E5M2FNUZ = 20,
    UInt4 = 21,
    Int4 = 22,
    Float4E2M1 = 23,
    Float8E8M0 = 24,
}

/// <summary>Sizes and names of <see cref="DataType"/> values.</summary>
public static class DataTypeExtensions
{
    /// <summary>
    /// Bits one element occupies in raw (little-endian, fixed-width) storage, or null when the type
    /// has no fixed width (strings, undefined, or a type this version does not know).
    /// </summary>
    public static int? BitWidth(this DataType type) => type switch
    {
        DataType.Float or DataType.Int32 or DataType.UInt32 => 32,
        DataType.Double or DataType.Int64 or DataType.UInt64 or DataType.Complex64 => 64,
        DataType.Complex128 => 128,
        DataType.Float16 or DataType.BFloat16 or DataType.Int16 or DataType.UInt16 => 16,
        DataType.Int8 or DataType.UInt8 or DataType.Bool => 8,
        DataType.Float8E4M3FN or DataType.Float8E4M3FNUZ or DataType.Float8E5M2
            or DataType.Float8E5M2FNUZ or DataType.Float8E8M0 => 8,
        DataType.Int4 or DataType.UInt4 or DataType.Float4E2M1 => 4,
        _ => null,
    };

    /// <summary>
    /// Bytes that <paramref name="elementCount"/> elements occupy in raw storage (4-bit types pack two
    /// per byte, rounding up), or null when the type has no fixed width. Throws on overflow.
    /// </summary>
    public static long? RawByteLength(this DataType type, long elementCount)
    {
        int? bits = type.BitWidth();
        if (bits is null) return null;
        return checked((elementCount * bits.Value + 7) / 8);
    }

    /// <summary>True for the floating-point element types (any width).</summary>
    public static bool IsFloatingPoint(this DataType type) => type is DataType.Float or DataType.Double
        or DataType.Float16 or DataType.BFloat16 or DataType.Float8E4M3FN or DataType.Float8E4M3FNUZ
        or DataType.Float8E5M2 or DataType.Float8E5M2FNUZ or DataType.Float8E8M0 or DataType.Float4E2M1;

    /// <summary>The short lowercase name users know from NumPy and PyTorch (float32, float16, int64, ...).</summary>
    public static string DisplayName(this DataType type) => type switch
    {
        DataType.Float => "float32",
        DataType.Double => "float64",
        DataType.Float16 => "float16",
        DataType.BFloat16 => "bfloat16",
        DataType.Int8 => "int8",
        DataType.UInt8 => "uint8",
        DataType.Int16 => "int16",
        DataType.UInt16 => "uint16",
        DataType.Int32 => "int32",
        DataType.UInt32 => "uint32",
        DataType.Int64 => "int64",
        DataType.UInt64 => "uint64",
        DataType.Bool => "bool",
        DataType.String => "string",
        DataType.Complex64 => "complex64",
        DataType.Complex128 => "complex128",
        DataType.Float8E4M3FN => "float8e4m3fn",
        DataType.Float8E4M3FNUZ => "float8e4m3fnuz",
        DataType.Float8E5M2 => "float8e5m2",
        DataType.Float8E5M2FNUZ => "float8e5m2fnuz",
        DataType.Float8E8M0 => "float8e8m0",
        DataType.Int4 => "int4",
        DataType.UInt4 => "uint4",
        DataType.Float4E2M1 => "float4e2m1",
        DataType.Undefined => "undefined",
        _ => $"dtype({(int)type})",
    };
}
