using System.Runtime.InteropServices;
using SparseOnnx.GraphRewriter.Ir;

namespace SparseOnnx.GraphRewriter.Quantization;

/// <summary>
/// ONNX Runtime's <c>com.microsoft.MatMulNBits</c>: Y = A · dequantize(B) (+ bias), inputs
/// (A, B [N, blocks, blob], scales [N · blocks] or [N, blocks], zero_points?, g_idx?, bias?), attributes K, N,
/// bits, block_size, accuracy_level. Reads such a node's weight into <see cref="NBitsBlocks"/> and writes one.
/// </summary>
public static class MatMulNBitsFormat
{
    public const string Domain = "com.microsoft";
    public const string OpType = "MatMulNBits";

    /// <summary>True for a MatMulNBits node.</summary>
    public static bool IsMatMulNBits(Node node) => node.Domain == Domain && node.OpType == OpType;

    /// <summary>The node's attributes, or why they are not supported.</summary>
    public static (int Bits, long K, long N, int BlockSize, int AccuracyLevel)? ReadAttributes(Node node, out string? problem)
    {
        problem = null;
        long k = node.Attributes.GetInt("K", -1), n = node.Attributes.GetInt("N", -1);
        long bits = node.Attributes.GetInt("bits", 4), blockSize = node.Attributes.GetInt("block_size", -1);
        long accuracy = node.Attributes.GetInt("accuracy_level", 0);
        if (k <= 0 || n <= 0) problem = "its K and N attributes are missing or not positive";
        else if (bits is not (4 or 8)) problem = $"it has bits = {bits}; TopKSparseMatMulNBits takes 4 or 8";
        else if (blockSize < 16 || (blockSize & (blockSize - 1)) != 0) problem = $"its block_size {blockSize} is not a power of two of at least 16";
        else if (node.InputOrNull(4) is { Name.Length: > 0 }) problem = "it has a g_idx input (act-order quantization), which reorders K per block; not supported";
        return problem is null ? ((int)bits, k, n, (int)blockSize, (int)accuracy) : null;
    }

    /// <summary>The weight of a MatMulNBits node whose B, scales and zero points are constants; throws <see cref="InvalidModelException"/> naming the node.</summary>
    public static NBitsBlocks Read(Node node, Tensor b, Tensor scales, Tensor? zeroPoints)
    {
        var (bits, k, n, blockSize, _) = ReadAttributes(node, out var problem)
            ?? throw new InvalidModelException($"MatMulNBits node '{node.Name}': {problem}.");
        return Read(node.Name ?? "", bits, k, n, blockSize, b, scales, zeroPoints);
    }

    /// <summary>The weight from its tensors and the node's (already checked) attributes.</summary>
    public static NBitsBlocks Read(string nodeName, int bits, long k, long n, int blockSize, Tensor b, Tensor scales, Tensor? zeroPoints)
    {
        long blocks = (k + blockSize - 1) / blockSize, blob = blockSize * bits / 8;
        void Fail(string what) => throw new InvalidModelException($"MatMulNBits node '{nodeName}': {what}.");
        if (b.DataType != DataType.UInt8 || b.ElementCount != n * blocks * blob)
            Fail($"B is {b.DataType.DisplayName()} [{string.Join(", ", b.Dims)}]; K = {k}, N = {n}, bits = {bits} and block_size = {blockSize} need uint8 [{n}, {blocks}, {blob}]");
        if (scales.ElementCount != n * blocks) Fail($"scales has {scales.ElementCount} elements; N · blocks = {n * blocks}");
        var scaleValues = Floats(scales) ?? throw new InvalidModelException($"MatMulNBits node '{nodeName}': scales are {scales.DataType.DisplayName()}; float32 or float16 expected.");

        var packed = b.Data.ToArray();
        var codes = new byte[n * blocks * blockSize];
        if (bits == 8) packed.CopyTo(codes, 0);
        else
            for (long i = 0; i < packed.LongLength; i++)
            {
                codes[2 * i] = (byte)(packed[i] & 0x0F);
                codes[2 * i + 1] = (byte)(packed[i] >> 4);
            }

        float[]? zeros = null;
        if (zeroPoints is not null)
        {
            if (zeroPoints.DataType == DataType.UInt8)
            {
                long perColumn = (blocks * bits + 7) / 8;
                if (zeroPoints.ElementCount != n * perColumn) Fail($"zero_points has {zeroPoints.ElementCount} bytes; packed uint8 zero points need N · ceil(blocks · bits / 8) = {n * perColumn}");
                var zp = zeroPoints.Data.ToArray();
                zeros = new float[n * blocks];
                for (long col = 0; col < n; col++)
                    for (long blk = 0; blk < blocks; blk++)
                    {
                        byte v = zp[col * perColumn + blk * bits / 8];
                        zeros[col * blocks + blk] = bits == 8 ? v : blk % 2 == 0 ? v & 0x0F : v >> 4;
                    }
            }
            else
            {
                zeros = Floats(zeroPoints) ?? throw new InvalidModelException($"MatMulNBits node '{nodeName}': zero_points are {zeroPoints.DataType.DisplayName()}; uint8, float32 or float16 expected.");
                if (zeros.LongLength != n * blocks) Fail($"zero_points has {zeros.LongLength} values; N · blocks = {n * blocks}");
            }
        }
        return new NBitsBlocks(bits, k, n, blockSize, codes, scaleValues, zeros);
    }

    private static float[]? Floats(Tensor tensor)
    {
        var bytes = tensor.Data.ToArray();
        return tensor.DataType switch
        {
            DataType.Float => MemoryMarshal.Cast<byte, float>(bytes).ToArray(),
            DataType.Float16 => MemoryMarshal.Cast<byte, Half>(bytes).ToArray().Select(h => (float)h).ToArray(),
            _ => null,
        };
    }

    /// <summary>B [N, blocks, blob] packed as MatMulNBits reads it: two 4-bit codes per byte, the even k in the low nibble.</summary>
    public static byte[] PackB(NBitsBlocks w)
    {
        if (w.Bits == 8) return (byte[])w.Codes.Clone();
        var packed = new byte[w.Codes.LongLength / 2];
        for (long i = 0; i < packed.LongLength; i++) packed[i] = (byte)(w.Codes[2 * i] | w.Codes[2 * i + 1] << 4);
        return packed;
    }

    /// <summary>Zero points packed as MatMulNBits' uint8 input, or null when they are not integers in the code range.</summary>
    public static byte[]? PackZeroPoints(NBitsBlocks w)
    {
        if (w.ZeroPoints is not { } zeros) return null;
        long blocks = w.BlocksPerColumn, perColumn = (blocks * w.Bits + 7) / 8;
        var packed = new byte[w.N * perColumn];
        for (long col = 0; col < w.N; col++)
            for (long blk = 0; blk < blocks; blk++)
            {
                float z = zeros[col * blocks + blk];
                if (z != MathF.Round(z) || z < 0 || z > (1 << w.Bits) - 1) return null;
                if (w.Bits == 8) packed[col * perColumn + blk] = (byte)z;
                else packed[col * perColumn + blk / 2] |= (byte)(blk % 2 == 0 ? (int)z : (int)z << 4);
            }
        return packed;
    }
}
