namespace SparseOnnx.GraphRewriter.Quantization;

/// <summary>
/// A [K, N] weight quantized to <see cref="Bits"/>-bit codes in blocks of <see cref="BlockSize"/> consecutive
/// input channels per output column, as ONNX Runtime's MatMulNBits stores it:
/// <c>W[k, n] = scale[n, k / block] · (q[n, k] - zero[n, k / block])</c>, the zero point 2^(bits-1) when absent.
/// Codes are held per column (MatMulNBits' [N, blocks, blob] order); scales and zero points as floats.
/// </summary>
public sealed class NBitsBlocks
{
    public NBitsBlocks(int bits, long k, long n, int blockSize, byte[] codes, float[] scales, float[]? zeroPoints)
    {
        if (bits is not (4 or 8)) throw new ArgumentException($"bits must be 4 or 8, got {bits}.", nameof(bits));
        if (blockSize < 16 || (blockSize & (blockSize - 1)) != 0)
            throw new ArgumentException($"block_size must be a power of two, at least 16, got {blockSize}.", nameof(blockSize));
        Bits = bits;
        K = k;
        N = n;
        BlockSize = blockSize;
        if (codes.LongLength != n * BlocksPerColumn * blockSize)
            throw new ArgumentException($"Expected {n * BlocksPerColumn * blockSize} codes (one byte each), got {codes.LongLength}.", nameof(codes));
        if (scales.LongLength != n * BlocksPerColumn) throw new ArgumentException($"Expected {n * BlocksPerColumn} scales, got {scales.LongLength}.", nameof(scales));
        if (zeroPoints is not null && zeroPoints.LongLength != scales.LongLength)
            throw new ArgumentException($"Expected {scales.LongLength} zero points, got {zeroPoints.LongLength}.", nameof(zeroPoints));
        Codes = codes;
        Scales = scales;
        ZeroPoints = zeroPoints;
    }

    public int Bits { get; }
    public long K { get; }
    public long N { get; }
    public int BlockSize { get; }

    /// <summary>Blocks per column: ceil(K / block size) (the last one padded with code 0... as MatMulNBits pads).</summary>
    public long BlocksPerColumn => (K + BlockSize - 1) / BlockSize;

    /// <summary>Codes, one per byte (unpacked), [N, blocks · block size]: column n's code of row k at n · blocks · block + k.</summary>
    public byte[] Codes { get; }

    /// <summary>Scales [N, blocks].</summary>
    public float[] Scales { get; }

    /// <summary>Zero points [N, blocks], or null for 2^(bits-1).</summary>
    public float[]? ZeroPoints { get; }

    public float DefaultZeroPoint => 1 << (Bits - 1);

    public int Code(long k, long n) => Codes[n * BlocksPerColumn * BlockSize + k];

    public float Scale(long k, long n) => Scales[n * BlocksPerColumn + k / BlockSize];

    public float ZeroPoint(long k, long n) => ZeroPoints?[n * BlocksPerColumn + k / BlockSize] ?? DefaultZeroPoint;

    /// <summary>The dequantized weight, rounded to float as ONNX Runtime computes it: scale · (q - zero).</summary>
    public float Weight(long k, long n) => Scale(k, n) * (Code(k, n) - ZeroPoint(k, n));

    /// <summary>The dequantized weight as a [K, N] row-major array.</summary>
    public float[] DequantizeKn()
    {
        var w = new float[checked(K * N)];
        for (long k = 0; k < K; k++)
            for (long n = 0; n < N; n++) w[k * N + n] = Weight(k, n);
        return w;
    }
}
