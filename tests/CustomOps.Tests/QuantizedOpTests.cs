using Microsoft.ML.OnnxRuntime;
using SparseOnnx.GraphRewriter.Analysis.Projections;
using SparseOnnx.GraphRewriter.IO;
using SparseOnnx.GraphRewriter.Ir;
using SparseOnnx.GraphRewriter.Quantization;
using SparseOnnx.GraphRewriter.Sparsify;

namespace SparseOnnx.CustomOps.Tests;

/// <summary>
/// The quantized path end to end through ONNX Runtime: a float projection quantized by <see cref="QuantizePass"/>
/// runs as ORT's own MatMulNBits; <see cref="SparsifyPass"/> turns that MatMulNBits, or the float projection
/// with quantization, into TopKSparseMatMulNBits, which must equal MatMulNBits on A ⊙ mask.
/// </summary>
public class QuantizedOpTests
{
    private static byte[] FloatModel(int k, int n, float[] w, float[]? bias = null)
    {
        var graph = new Graph("proj");
        var builder = new GraphBuilder(graph);
        var a = builder.Input("A", DataType.Float, "m", (long)k);
        var weight = builder.Initializer("W", [k, n], w);
        var node = builder.Node("", "MatMul", [a, weight], 1, "/model/layers.0/mlp/up_proj/MatMul");
        var y = node.Outputs[0];
        if (bias is not null) y = builder.Node("", "Add", [y, builder.Initializer("bias", [n], bias)], 1, "bias_add").Outputs[0];
        y.Name = "Y";
        builder.Output(y, DataType.Float, "m", (long)n);
        using var model = new Model(graph) { IrVersion = 8 };
        model.OpsetImports.Set("", 17);
        return ModelSaver.ToBytes(model);
    }

    private static byte[] Rewrite(byte[] source, Action<Model> pass)
    {
        using var model = ModelLoader.Load(source);
        pass(model);
        return ModelSaver.ToBytes(model);
    }

    private static byte[] Quantized(byte[] floatModel, int bits, int accuracyLevel) =>
        Rewrite(floatModel, m => new QuantizePass(new QuantizeOptions
        {
            Quantization = new WeightQuantization(bits, 32, accuracyLevel),
            Kinds = new HashSet<ProjectionKind>(Enum.GetValues<ProjectionKind>()),
        }).Run(m));

    private static float[] Run(byte[] model, float[] a, int m, int k)
    {
        using var session = OpModels.Session(model);
        return OpModels.Run(session, DataType.Float, a, [m, k]);
    }

    [Theory]
    [InlineData(4, 0, 1)]
    [InlineData(4, 4, 3)]
    [InlineData(8, 0, 20)]
    [InlineData(4, 0, 33)]
    public void SparsifiedMatMulNBitsEqualsMatMulNBitsOnTheMaskedInput(int bits, int level, int m)
    {
        const int k = 200, n = 150;
        var random = new Random(bits * 7 + m);
        var w = Reference.Normal(random, k * n, 0.05f);
        var bias = Reference.Normal(random, n);
        var quantized = Quantized(FloatModel(k, n, w, bias), bits, level);
        using (var check = ModelLoader.Load(quantized))
            Assert.Single(check.Graph.Nodes, x => x.OpType == MatMulNBitsFormat.OpType);
        var a = Reference.Normal(random, m * k);
        foreach (long kept in new long[] { k, 67, 1 })
        {
            var sparse = Rewrite(quantized, model => new SparsifyPass(new SparsifyOptions
            {
                Sparsity = 1 - (double)kept / k,
                Kinds = new HashSet<ProjectionKind>(Enum.GetValues<ProjectionKind>()),
                SpontaneousNeurons = false,
            }).Run(model));
            using (var check = ModelLoader.Load(sparse))
                Assert.Single(check.Graph.Nodes, x => x.OpType == TopKSparseMatMulNBitsOp.OpType);
            var y = Run(sparse, a, m, k);
            var expected = Run(quantized, Reference.Masked(a, k, kept, null), m, k);
            // Level 0: float32 rounding. Level 4 quantizes each block of A ⊙ mask to int8 as MatMulNBits does.
            double tolerance = level == 0 ? 2e-4 : 2e-3;
            double scale = Math.Sqrt(expected.Average(v => (double)v * v));
            for (int i = 0; i < y.Length; i++)
                Assert.True(Math.Abs(y[i] - expected[i]) <= tolerance * scale, $"k {kept} at {i}: {y[i]} vs MatMulNBits {expected[i]} (rms {scale})");
        }
    }

    [Fact]
    public void SparsifyWithQuantizeEqualsQuantizeThenSparsify()
    {
        const int k = 256, n = 96, m = 2;
        var random = new Random(5);
        var floatModel = FloatModel(k, n, Reference.Normal(random, k * n, 0.05f));
        var a = Reference.Normal(random, m * k);
        var direct = Rewrite(floatModel, model => new SparsifyPass(new SparsifyOptions
        {
            Sparsity = 0.5, SpontaneousNeurons = false, Quantization = new WeightQuantization(4, 32, 0),
            Kinds = new HashSet<ProjectionKind>(Enum.GetValues<ProjectionKind>()),
        }).Run(model));
        var viaMatMulNBits = Rewrite(Quantized(floatModel, 4, 0), model => new SparsifyPass(new SparsifyOptions
        {
            Sparsity = 0.5, SpontaneousNeurons = false, Kinds = new HashSet<ProjectionKind>(Enum.GetValues<ProjectionKind>()),
        }).Run(model));
        Assert.Equal(Run(viaMatMulNBits, a, m, k), Run(direct, a, m, k));

        // Float16 scales: the codes are rounded against the float16 scale, so the weight moves by a fraction
        // of one quantization step, far below the int4 error itself.
        var half = Rewrite(floatModel, model => new SparsifyPass(new SparsifyOptions
        {
            Sparsity = 0.5, SpontaneousNeurons = false, Quantization = new WeightQuantization(4, 32, 0, Float16Scales: true),
            Kinds = new HashSet<ProjectionKind>(Enum.GetValues<ProjectionKind>()),
        }).Run(model));
        using (var check = ModelLoader.Load(half))
            Assert.Contains(check.Graph.Initializers, v => v.ConstValue!.DataType == DataType.Float16);
        var exact = Run(direct, a, m, k);
        var approximate = Run(half, a, m, k);
        double rms = Math.Sqrt(exact.Average(v => (double)v * v));
        double difference = Math.Sqrt(exact.Zip(approximate, (x, y) => (double)(x - y) * (x - y)).Average());
        Assert.InRange(difference, 1e-9, 0.01 * rms);
    }

    // The spontaneous-neuron vector becomes the op's bias input: no Add node, the same outputs. (A MatMulNBits
    // bias input is summed with it into one tensor, which the genai-builder mimics' sparsify test reads as in scope.)
    [Fact]
    public void SpontaneousVectorsJoinTheBiasInput()
    {
        const int k = 128, n = 80, m = 3;
        var random = new Random(9);
        var quantized = Quantized(FloatModel(k, n, Reference.Normal(random, k * n, 0.05f), Reference.Normal(random, n)), 4, 0);
        byte[] Sparse(bool spontaneous) => Rewrite(quantized, model => new SparsifyPass(new SparsifyOptions
        {
            Sparsity = 0.5, SpontaneousNeurons = spontaneous, Kinds = new HashSet<ProjectionKind>(Enum.GetValues<ProjectionKind>()),
        }).Run(model));
        var with = Sparse(true);
        using (var check = ModelLoader.Load(with))
        {
            // The model's own bias Add (quantize keeps it) is the only Add: no spontaneous-neuron Add.
            Assert.Equal(["bias_add"], check.Graph.Nodes.Where(x => x.OpType == "Add").Select(x => x.Name));
            var node = Assert.Single(check.Graph.Nodes, x => x.OpType == TopKSparseMatMulNBitsOp.OpType);
            Assert.EndsWith(".spontaneous", node.Inputs[4]!.Name);
            Assert.Contains(node.MetadataProps, p => p.Key == "sparseonnx.spontaneous");
        }
        var a = Reference.Normal(random, m * k);
        Assert.Equal(Run(Sparse(false), a, m, k), Run(with, a, m, k));
    }

    // Asymmetric weights (uint8 zero points, as other quantizers write them), 8-bit and 4-bit, and a block size
    // of 64: the rewrite carries the zero points over, and the sparse op equals MatMulNBits on A ⊙ mask.
    [Theory]
    [InlineData(4, 64)]
    [InlineData(8, 32)]
    public void AsymmetricMatMulNBitsWithZeroPointsIsRewrittenExactly(int bits, int blockSize)
    {
        const int k = 200, n = 70, m = 2;
        var random = new Random(bits + blockSize);
        long blocks = (k + blockSize - 1) / blockSize, blob = blockSize * bits / 8, zpPerColumn = (blocks * bits + 7) / 8;
        var b = new byte[n * blocks * blob];
        random.NextBytes(b);
        var zp = new byte[n * zpPerColumn];
        random.NextBytes(zp);
        var scales = Enumerable.Range(0, (int)(n * blocks)).Select(_ => 0.005f + 0.02f * (float)random.NextDouble()).ToArray();
        var graph = new Graph("nbits");
        var builder = new GraphBuilder(graph);
        var a = builder.Input("A", DataType.Float, "m", (long)k);
        var node = builder.Node("com.microsoft", "MatMulNBits",
            [a, builder.Initializer(new Tensor("B", DataType.UInt8, [n, blocks, blob], new InMemoryTensorData(b))),
             builder.Initializer(Tensor.FromElements<float>("scales", DataType.Float, [n * blocks], scales)),
             builder.Initializer(new Tensor("zp", DataType.UInt8, [n * zpPerColumn], new InMemoryTensorData(zp)))],
            1, "/model/layers.0/mlp/down_proj/MatMul_Q4", OnnxAttribute.Int("K", k), OnnxAttribute.Int("N", n), OnnxAttribute.Int("bits", bits),
            OnnxAttribute.Int("block_size", blockSize), OnnxAttribute.Int("accuracy_level", 0));
        node.Outputs[0].Name = "Y";
        builder.Output(node.Outputs[0], DataType.Float, "m", (long)n);
        byte[] dense;
        using (var model = new Model(graph) { IrVersion = 8 })
        {
            model.OpsetImports.Set("", 17);
            model.OpsetImports.Set("com.microsoft", 1);
            dense = ModelSaver.ToBytes(model);
        }
        const long kept = 77;
        var sparse = Rewrite(dense, model => new SparsifyPass(new SparsifyOptions
        {
            Sparsity = 1 - (double)kept / k, SpontaneousNeurons = false, Kinds = new HashSet<ProjectionKind>(Enum.GetValues<ProjectionKind>()),
        }).Run(model));
        using (var check = ModelLoader.Load(sparse))
        {
            var op = Assert.Single(check.Graph.Nodes, x => x.OpType == TopKSparseMatMulNBitsOp.OpType);
            Assert.NotNull(op.InputOrNull(3));  // the zero points
        }
        var x = Reference.Normal(random, m * k);
        var y = Run(sparse, x, m, k);
        var expected = Run(dense, Reference.Masked(x, k, kept, null), m, k);
        double rms = Math.Sqrt(expected.Average(v => (double)v * v));
        for (int i = 0; i < y.Length; i++) Assert.True(Math.Abs(y[i] - expected[i]) <= 2e-4 * rms, $"at {i}: {y[i]} vs {expected[i]}");
    }
}
