namespace SparseOnnx.GraphRewriter.Quantization;

/// <summary>
/// The weight layout of <c>ai.sparseonnx.TopKSparseMatMulNBits</c> (docs/topk-sparse-matmul-nbits.md): codes
/// stored by input row, so a dropped input channel skips its row. codes [K, row_bytes] with each row made of
/// 64-column chunks (8 bits: byte j is column j; 4 bits: 32 bytes, byte b holds column P(b) in its low nibble
/// and 32 + P(b) in its high nibble, P swapping the second and third groups of 8); scales and zero points
/// [blocks, padded N] float32. Columns past N are zero.
/// </summary>
public static class QuantizedRowsFormat
{
    public const int ChunkColumns = 64;

    public static long PaddedColumns(long n) => (n + ChunkColumns - 1) / ChunkColumns * ChunkColumns;

    public static long RowBytes(int bits, long n) => PaddedColumns(n) * bits / 8;

    /// <summary>Where column j (&lt; 32) of a 4-bit chunk half is stored.</summary>
    public static int PermutedColumn(int j) => ((j / 8) switch { 1 => 2, 2 => 1, var g => g }) * 8 + j % 8;

    public static byte[] Codes(NBitsBlocks w)
    {
        long rowBytes = RowBytes(w.Bits, w.N);
        var codes = new byte[checked(w.K * rowBytes)];
        for (long k = 0; k < w.K; k++)
        {
            long row = k * rowBytes;
            for (long n = 0; n < w.N; n++)
            {
                int q = w.Code(k, n);
                long chunk = n / ChunkColumns;
                int j = (int)(n % ChunkColumns);
                if (w.Bits == 8) codes[row + chunk * 64 + j] = (byte)q;
                else codes[row + chunk * 32 + PermutedColumn(j % 32)] |= (byte)(j < 32 ? q : q << 4);
            }
        }
        return codes;
    }

    /// <summary>Scales [blocks, padded N] as little-endian float16 bytes (round to nearest even).</summary>
    public static byte[] BlockHalves(NBitsBlocks w, float[] perColumnBlock)
    {
        long blocks = w.BlocksPerColumn, padded = PaddedColumns(w.N);
        var values = new Half[checked(blocks * padded)];
        for (long n = 0; n < w.N; n++)
            for (long b = 0; b < blocks; b++) values[b * padded + n] = (Half)perColumnBlock[n * blocks + b];
        return System.Runtime.InteropServices.MemoryMarshal.AsBytes(values.AsSpan()).ToArray();
    }

    /// <summary>Scales (or zero points) [blocks, padded N] as little-endian float32 bytes.</summary>
    public static byte[] BlockFloats(NBitsBlocks w, float[] perColumnBlock)
    {
        long blocks = w.BlocksPerColumn, padded = PaddedColumns(w.N);
        var values = new float[checked(blocks * padded)];
        for (long n = 0; n < w.N; n++)
            for (long b = 0; b < blocks; b++) values[b * padded + n] = perColumnBlock[n * blocks + b];
        var bytes = new byte[values.LongLength * 4];
        Buffer.BlockCopy(values, 0, bytes, 0, bytes.Length);
        return bytes;
    }
}
