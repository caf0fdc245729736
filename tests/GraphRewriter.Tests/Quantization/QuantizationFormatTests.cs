using SparseOnnx.GraphRewriter.Ir;
using SparseOnnx.GraphRewriter.Quantization;

namespace SparseOnnx.GraphRewriter.Tests.Quantization;

public class QuantizationFormatTests
{
    private static float[] Normal(Random random, int count) =>
        Enumerable.Range(0, count).Select(_ => (float)(Math.Sqrt(-2 * Math.Log(1 - random.NextDouble())) * Math.Cos(2 * Math.PI * random.NextDouble()))).ToArray();

    [Theory]
    [InlineData(4, 32, 70, 9)]
    [InlineData(4, 16, 33, 5)]
    [InlineData(8, 32, 64, 3)]
    [InlineData(8, 128, 300, 7)]
    public void RtnIsSymmetricRoundToNearestWithTheExtremeAtCodeZero(int bits, int blockSize, int k, int n)
    {
        var w = Normal(new Random(bits * 100 + k), k * n);
        var q = RtnQuantizer.Quantize(w, k, n, bits, blockSize);
        int zero = 1 << (bits - 1);
        for (int col = 0; col < n; col++)
            for (long b = 0; b < q.BlocksPerColumn; b++)
            {
                float scale = q.Scales[col * q.BlocksPerColumn + b];
                int k0 = (int)b * blockSize, k1 = Math.Min(k, k0 + blockSize);
                int extreme = Enumerable.Range(k0, k1 - k0).MaxBy(r => MathF.Abs(w[r * n + col]));
                Assert.Equal(0, q.Code(extreme, col));                                    // the extreme value uses the -2^(bits-1) end
                Assert.Equal(w[extreme * n + col], q.Weight(extreme, col), 5);
                for (int r = k0; r < k1; r++)
                {
                    // Round to nearest, except that a value of the other sign as large as the extreme clamps at
                    // the top code, 2^(bits-1) - 1 steps, one step short (as ONNX Runtime's quantizer does).
                    float bound = q.Code(r, col) == (1 << bits) - 1 ? MathF.Abs(scale) : MathF.Abs(scale) / 2;
                    Assert.True(MathF.Abs(q.Weight(r, col) - w[r * n + col]) <= bound * 1.0001f,
                        $"row {r} col {col}: {q.Weight(r, col)} vs {w[r * n + col]}, scale {scale}");
                }
            }
        Assert.Null(q.ZeroPoints);
        Assert.Equal(zero, q.ZeroPoint(0, 0));
    }

    [Theory]
    [InlineData(4)]
    [InlineData(8)]
    public void MatMulNBitsTensorsRoundTrip(int bits)
    {
        const int k = 100, n = 6, block = 32;
        var random = new Random(bits);
        var w = RtnQuantizer.Quantize(Normal(random, k * n), k, n, bits, block);
        // Asymmetric zero points in the code range, to exercise their packing.
        var zeros = Enumerable.Range(0, (int)(n * w.BlocksPerColumn)).Select(i => (float)(i % (1 << bits))).ToArray();
        var asymmetric = new NBitsBlocks(bits, k, n, block, w.Codes, w.Scales, zeros);
        long blocks = w.BlocksPerColumn, blob = block * bits / 8;
        var b = new Tensor("B", DataType.UInt8, [n, blocks, blob], new InMemoryTensorData(MatMulNBitsFormat.PackB(asymmetric)));
        var scales = Tensor.FromElements<float>("S", DataType.Float, [n * blocks], w.Scales);
        var zp = new Tensor("Z", DataType.UInt8, [n * ((blocks * bits + 7) / 8)], new InMemoryTensorData(MatMulNBitsFormat.PackZeroPoints(asymmetric)!));
        var read = MatMulNBitsFormat.Read("node", bits, k, n, block, b, scales, zp);
        for (int r = 0; r < k; r++)
            for (int c = 0; c < n; c++)
            {
                Assert.Equal(asymmetric.Code(r, c), read.Code(r, c));
                Assert.Equal(asymmetric.Weight(r, c), read.Weight(r, c));
            }
        // Float zero points that are not codes cannot be packed as uint8.
        Assert.Null(MatMulNBitsFormat.PackZeroPoints(new NBitsBlocks(bits, k, n, block, w.Codes, w.Scales, zeros.Select(z => z + 0.5f).ToArray())));
    }

    [Fact]
    public void MalformedMatMulNBitsTensorsAreRefusedByName()
    {
        var b = new Tensor("B", DataType.UInt8, [4, 2, 16], new InMemoryTensorData(new byte[4 * 2 * 16]));
        var scales = Tensor.FromElements<float>("S", DataType.Float, [7], new float[7]);
        var e = Assert.Throws<InvalidModelException>(() => MatMulNBitsFormat.Read("proj", 4, 64, 4, 32, b, scales, null));
        Assert.Contains("MatMulNBits node 'proj'", e.Message);
        Assert.Contains("scales has 7 elements", e.Message);
        var wrongB = new Tensor("B", DataType.UInt8, [4, 2, 8], new InMemoryTensorData(new byte[4 * 2 * 8]));
        e = Assert.Throws<InvalidModelException>(() => MatMulNBitsFormat.Read("proj", 4, 64, 4, 32, wrongB, Tensor.FromElements<float>("S", DataType.Float, [8], new float[8]), null));
        Assert.Contains("need uint8 [4, 2, 16]", e.Message);
    }

    // The row layout as docs/topk-sparse-matmul-nbits.md draws it: in a 4-bit chunk, bytes 0-7 hold
    // columns 0-7, bytes 8-15 columns 16-23, bytes 16-23 columns 8-15 (low nibbles; high nibbles + 32).
    [Fact]
    public void RowLayoutPlacesColumnsWhereTheContractSays()
    {
        Assert.Equal(17, QuantizedRowsFormat.PermutedColumn(9));
        Assert.Equal(9, QuantizedRowsFormat.PermutedColumn(17));
        Assert.Equal(3, QuantizedRowsFormat.PermutedColumn(3));
        Assert.Equal(27, QuantizedRowsFormat.PermutedColumn(27));
        const int k = 2, n = 70;
        var codes = new byte[n * 1 * 32];
        for (int col = 0; col < n; col++) codes[col * 32 + 1] = (byte)(col % 16);  // row 1 of column col = col % 16
        var w = new NBitsBlocks(4, k, n, 32, codes, Enumerable.Repeat(1f, n).ToArray(), null);
        var rows = QuantizedRowsFormat.Codes(w);
        Assert.Equal(2 * 64, rows.Length);  // two rows of two 32-byte chunks (70 columns padded to 128)
        var row1 = rows.AsSpan(64, 64);
        Assert.Equal(9, row1[17] & 0x0F);           // column 9 in byte 17, low nibble
        Assert.Equal((32 + 9) % 16, row1[17] >> 4); // column 41 in its high nibble
        Assert.Equal(64 % 16, row1[32] & 0x0F);     // column 64: the second chunk's first byte
        Assert.Equal(0, row1[32 + 6] & 0x0F);       // column 70 is past N: zero
        var scales = QuantizedRowsFormat.BlockFloats(w, w.Scales);
        Assert.Equal(128 * 4, scales.Length);
        Assert.Equal(1f, BitConverter.ToSingle(scales, 69 * 4));
        Assert.Equal(0f, BitConverter.ToSingle(scales, 70 * 4));
    }
}
