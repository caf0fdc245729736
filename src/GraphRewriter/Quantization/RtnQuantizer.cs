namespace SparseOnnx.GraphRewriter.Quantization;

/// <summary>
/// Round-to-nearest symmetric quantization in blocks along K, the way ONNX Runtime's quantizer writes
/// MatMulNBits weights (and so the onnxruntime-genai builder's <c>-p int4</c>): per block of each column, the
/// value of largest magnitude v (sign kept) sets scale = v / -2^(bits-1), so that value maps to code 0 and the
/// full signed range [-2^(bits-1), 2^(bits-1) - 1] is used; q = clamp(round(w / scale) + 2^(bits-1)).
/// </summary>
public static class RtnQuantizer
{
    /// <summary>Quantizes a [K, N] row-major float weight.</summary>
    public static NBitsBlocks Quantize(ReadOnlySpan<float> weightKn, long k, long n, int bits, int blockSize, bool float16Scales = false)
    {
        if (weightKn.Length != k * n) throw new ArgumentException($"The weight has {weightKn.Length} values, not {k} x {n}.", nameof(weightKn));
        long blocks = (k + blockSize - 1) / blockSize;
        var codes = new byte[checked(n * blocks * blockSize)];
        var scales = new float[checked(n * blocks)];
        int zero = 1 << (bits - 1), max = (1 << bits) - 1;
        for (long col = 0; col < n; col++)
            for (long b = 0; b < blocks; b++)
            {
                long k0 = b * blockSize, k1 = Math.Min(k, k0 + blockSize);
                float extreme = 0;
                for (long r = k0; r < k1; r++)
                {
                    float v = weightKn[(int)(r * n + col)];
                    if (MathF.Abs(v) > MathF.Abs(extreme)) extreme = v;
                }
                float scale = extreme / -zero;
                if (float16Scales) scale = (float)(Half)scale;  // one rounding: the codes are chosen for the stored scale
                float inverse = scale != 0 ? 1f / scale : 0f;
                scales[col * blocks + b] = scale;
                long at = col * blocks * blockSize;
                for (long r = k0; r < k1; r++)
                {
                    float q = MathF.Round(weightKn[(int)(r * n + col)] * inverse, MidpointRounding.ToEven) + zero;
                    codes[at + r] = (byte)Math.Clamp(q, 0, max);
                }
                for (long r = k1; r < k0 + blockSize; r++) codes[at + r] = 0;  // padding past K, never read as a weight
            }
        return new NBitsBlocks(bits, k, n, blockSize, codes, scales, null);
    }
}
