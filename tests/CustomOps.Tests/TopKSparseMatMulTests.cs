using Microsoft.ML.OnnxRuntime;
using SparseOnnx.GraphRewriter.Ir;

namespace SparseOnnx.CustomOps.Tests;

/// <summary>
/// TopKSparseMatMul through ONNX Runtime against ORT's own MatMul on the masked input, for every path the
/// kernel has: one row (selected rows), a few rows (union of selections, or dense when they cover most of
/// K), many rows (masked dense GEMM), and k = K (plain MatMul).
/// </summary>
public class TopKSparseMatMulTests
{
    // Tolerances, written down: both sides accumulate in float32, in different orders, so outputs may differ
    // by the worst-case float32 summation error 2·K·2^-24·Σ|a_i·b_in| (kept i). A 16-bit output is rounded
    // once more on each side: one unit in the last place, 2^-10 (float16) or 2^-7 (bfloat16) relative.
    private static double Tolerance(DataType type, int K, double magnitude, double reference) =>
        2.0 * K * Math.Pow(2, -24) * magnitude + type switch
        {
            DataType.Float16 => Math.Pow(2, -10) * Math.Abs(reference) + 1e-7,
            DataType.BFloat16 => Math.Pow(2, -7) * Math.Abs(reference) + 1e-7,
            _ => 1e-30,
        };

    public static TheoryData<int, int, int, long?, float?> Shapes() => new()
    {
        { 1, 1, 1, 1, null },
        { 1, 7, 9, 3, null },
        { 1, 64, 130, 16, null },
        { 1, 257, 33, 200, null },
        { 1, 1024, 96, 100, null },      // selected rows, several partitions
        { 3, 512, 40, 20, null },        // a few rows: union of selections
        { 3, 512, 40, 480, null },       // a few rows whose selections cover most of K: dense
        { 16, 300, 17, 150, null },
        { 17, 300, 65, 150, null },      // many rows: masked dense GEMM
        { 64, 128, 128, 8, null },
        { 5, 100, 21, 100, null },       // k = K
        { 1, 300, 50, null, 0.8f },      // threshold mode
        { 9, 300, 50, null, 0f },
        { 40, 200, 30, null, 1.5f },
    };

    private static void AssertMatchesMaskedMatMul(DataType type, int M, int K, int N, long? k, float? threshold, int seed)
    {
        var random = new Random(seed);
        var a = OpModels.RoundTo(Reference.Normal(random, M * K), type);
        var b = OpModels.RoundTo(Reference.Normal(random, K * N, 0.5f), type);
        using var op = OpModels.Session(OpModels.TopK(type, K, N, b, k, threshold));
        var y = OpModels.Run(op, type, a, [M, K]);

        var masked = Reference.Masked(a, K, k, threshold);
        var (exact, magnitude) = Reference.Product(masked, b, K, N);
        float[]? ortMatMul = null;
        if (type != DataType.BFloat16) // ORT has no bfloat16 MatMul on CPU; compare with the exact product instead
        {
            using var reference = OpModels.Session(OpModels.MatMul(type, K, N, b));
            ortMatMul = OpModels.Run(reference, type, masked, [M, K]);
        }
        Assert.Equal(M * N, y.Length);
        var failures = new List<string>();
        for (int i = 0; i < y.Length; i++)
        {
            double expected = ortMatMul?[i] ?? exact[i];
            double tolerance = Tolerance(type, K, magnitude[i], exact[i]) + (ortMatMul is null ? 0 : Tolerance(type, K, magnitude[i], exact[i]));
            if (!(Math.Abs(y[i] - expected) <= tolerance) && failures.Count < 5)
                failures.Add($"Y[{i / N}, {i % N}] = {y[i]}, expected {expected} (exact {exact[i]:G9}, tolerance {tolerance:G3})");
        }
        Assert.True(failures.Count == 0, $"{type} M={M} K={K} N={N} k={k} threshold={threshold}:\n" + string.Join("\n", failures));
    }

    [Theory]
    [MemberData(nameof(Shapes))]
    public void Float32MatchesMatMulOnTheMaskedInput(int M, int K, int N, long? k, float? threshold) =>
        AssertMatchesMaskedMatMul(DataType.Float, M, K, N, k, threshold, seed: M * 7919 + K * 31 + N);

    [Theory]
    [MemberData(nameof(Shapes))]
    public void Float16MatchesMatMulOnTheMaskedInput(int M, int K, int N, long? k, float? threshold) =>
        AssertMatchesMaskedMatMul(DataType.Float16, M, K, N, k, threshold, seed: M * 7919 + K * 31 + N + 1);

    [Theory]
    [MemberData(nameof(Shapes))]
    public void BFloat16MatchesTheExactProductOfTheMaskedInput(int M, int K, int N, long? k, float? threshold) =>
        AssertMatchesMaskedMatMul(DataType.BFloat16, M, K, N, k, threshold, seed: M * 7919 + K * 31 + N + 2);

    [Fact]
    public void KEqualToKIsMatMul()
    {
        // k = K runs ORT's own MatMul through the op invocation API. It is not bit-identical to a MatMul node
        // in a session, which pre-packs its constant B and so sums in another order: compare within tolerance.
        var random = new Random(5);
        var a = Reference.Normal(random, 3 * 200);
        var b = Reference.Normal(random, 200 * 70);
        using var op = OpModels.Session(OpModels.TopK(DataType.Float, 200, 70, b, k: 200));
        using var matmul = OpModels.Session(OpModels.MatMul(DataType.Float, 200, 70, b));
        var expected = OpModels.Run(matmul, DataType.Float, a, [3, 200]);
        var actual = OpModels.Run(op, DataType.Float, a, [3, 200]);
        var (_, magnitude) = Reference.Product(a, b, 200, 70);
        for (int i = 0; i < actual.Length; i++)
            Assert.True(Math.Abs(actual[i] - expected[i]) <= 2 * Tolerance(DataType.Float, 200, magnitude[i], expected[i]), $"Y[{i}]: {actual[i]} vs {expected[i]}");
    }

    [Fact]
    public void RankThreeInputKeepsLeadingDimensionsAndShapeIsInferred()
    {
        var random = new Random(6);
        var b = Reference.Normal(random, 64 * 24);
        using var session = OpModels.Session(OpModels.TopK(DataType.Float, 64, 24, b, k: 16, aDims: ["batch", "sequence", 64L]));
        var y = session.OutputMetadata["Y"];
        Assert.Equal(3, y.Dimensions.Length);
        Assert.Equal(["batch", "sequence", ""], y.SymbolicDimensions);
        Assert.Equal(24, y.Dimensions[2]);

        var a = Reference.Normal(random, 2 * 3 * 64);
        var output = OpModels.Run(session, DataType.Float, a, [2, 3, 64]);
        var (exact, magnitude) = Reference.Product(Reference.Masked(a, 64, 16, null), b, 64, 24);
        for (int i = 0; i < output.Length; i++) Assert.True(Math.Abs(output[i] - exact[i]) <= Tolerance(DataType.Float, 64, magnitude[i], exact[i]), $"Y[{i}]");
    }

    [Fact]
    public void NaNAndInfinityInKeptEntriesPropagate()
    {
        var b = Enumerable.Repeat(1f, 8 * 4).ToArray();
        using var session = OpModels.Session(OpModels.TopK(DataType.Float, 8, 4, b, k: 2));
        var a = new[] { 1f, float.NaN, 3f, 0f, 0f, 0f, 0f, 0f, /* row 2 */ 1f, 2f, float.NegativeInfinity, 0f, 0f, 0f, 0f, 0f };
        var y = OpModels.Run(session, DataType.Float, a, [2, 8]);
        Assert.All(y.Take(4), v => Assert.True(float.IsNaN(v)));
        Assert.All(y.Skip(4), v => Assert.Equal(float.NegativeInfinity, v));
    }

    [Fact]
    public void EmptyBatchGivesAnEmptyOutput()
    {
        var b = Enumerable.Repeat(1f, 8 * 4).ToArray();
        using var session = OpModels.Session(OpModels.TopK(DataType.Float, 8, 4, b, k: 2));
        Assert.Empty(OpModels.Run(session, DataType.Float, [], [0, 8]));
    }

    [Fact]
    public void EightThreadsCallingRunOnOneSessionGetIdenticalResults()
    {
        var random = new Random(8);
        const int K = 1024, N = 512;
        var b = Reference.Normal(random, K * N);
        using var session = OpModels.Session(OpModels.TopK(DataType.Float, K, N, b, k: 300), threads: 2);
        var inputs = Enumerable.Range(0, 4).Select(i => (A: Reference.Normal(new Random(100 + i), (i + 1) * K), M: i + 1)).ToArray();
        var expected = inputs.Select(x => OpModels.Run(session, DataType.Float, x.A, [x.M, K])).ToArray();

        var mismatches = 0;
        var threads = Enumerable.Range(0, 8).Select(t => new Thread(() =>
        {
            for (int iteration = 0; iteration < 25; iteration++)
            {
                int which = (t + iteration) % inputs.Length;
                var y = OpModels.Run(session, DataType.Float, inputs[which].A, [inputs[which].M, K]);
                if (!y.AsSpan().SequenceEqual(expected[which])) Interlocked.Increment(ref mismatches);
            }
        })).ToList();
        threads.ForEach(t => t.Start());
        threads.ForEach(t => t.Join());
        Assert.Equal(0, mismatches);
    }

    [Fact]
    public void OutputDoesNotDependOnTheThreadCount()
    {
        var random = new Random(9);
        const int K = 2048, N = 300;
        var b = Reference.Normal(random, K * N);
        var a = Reference.Normal(random, 2 * K);
        var model = OpModels.TopK(DataType.Float, K, N, b, k: 1000);
        float[]? first = null;
        foreach (int threads in new[] { 1, 2, 3, 4 })
        {
            using var session = OpModels.Session(model, threads);
            var y = OpModels.Run(session, DataType.Float, a, [2, K]);
            if (first is null) first = y;
            else Assert.True(first.AsSpan().SequenceEqual(y), $"{threads} threads changed the result");
        }
    }
}
