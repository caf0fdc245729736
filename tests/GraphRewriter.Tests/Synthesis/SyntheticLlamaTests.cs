using Microsoft.ML.OnnxRuntime;
using SparseOnnx.GraphRewriter.Analysis.Projections;
using SparseOnnx.GraphRewriter.Sparsify;
using SparseOnnx.GraphRewriter.Synthesis;
using SparseOnnx.GraphRewriter.Tests.TestUtil;
using Xunit.Abstractions;

namespace SparseOnnx.GraphRewriter.Tests.Synthesis;

/// <summary>
/// The synthetic Llama decoder: what the classifier and the sparsify pass see in it, that ONNX Runtime computes
/// Hugging Face's Llama math with it (against a loop-by-loop reference, and cached against uncached decoding),
/// that it saves with streamed external data, and that a Llama-3.2-1B-sized one is built without its weights.
/// </summary>
public class SyntheticLlamaTests(ITestOutputHelper output)
{
    private static readonly LlamaDimensions Tiny = LlamaDimensions.Tiny;

    // Logits here are of order 1. Float32 ONNX Runtime against the double reference, and cached against
    // uncached decoding (sums of other lengths and orders), differ by about 1e-6 (measured: see the test
    // output); a wrong mask, rotation or head mapping moves logits by 1e-2 or more.
    private const double AbsoluteTolerance = 1e-4;
    private const double RelativeTolerance = 1e-4;

    private static readonly (string Module, ProjectionKind Kind)[] LayerProjections =
    [
        ("self_attn/q_proj", ProjectionKind.Q), ("self_attn/k_proj", ProjectionKind.K), ("self_attn/v_proj", ProjectionKind.V),
        ("self_attn/o_proj", ProjectionKind.O), ("mlp/gate_proj", ProjectionKind.Gate), ("mlp/up_proj", ProjectionKind.Up),
        ("mlp/down_proj", ProjectionKind.Down),
    ];

    [Theory]
    [InlineData("tiny")]
    [InlineData("llama-3.2-1b")]
    public void ClassifierFindsEveryProjectionOfEveryLayerByStructure(string preset)
    {
        var dims = LlamaDimensions.Preset(preset);
        using var model = SyntheticLlama.Build(dims);

        var projections = ProjectionClassifier.Classify(model);

        var expected = Enumerable.Range(0, dims.Layers)
            .SelectMany(layer => LayerProjections.Select(p => ($"/model/layers.{layer}/{p.Module}/MatMul", p.Kind, (int?)layer)))
            .Append(("/lm_head/MatMul", ProjectionKind.LmHead, null))
            .Order().ToArray();
        Assert.Equal(7 * dims.Layers + 1, expected.Length);
        Assert.Equal(expected, projections.Select(p => (p.DisplayName, p.Kind, p.Layer)).Order().ToArray());
        // Names are only the classifier's fallback; this graph must be recognised by its structure.
        Assert.All(projections, p => Assert.Equal(KindSource.Structure, p.KindSource));
    }

    [Fact]
    public void SparsifyRewritesAllSevenKindsAndAtSparsityZeroTheLogitsStayTheSame()
    {
        using var dense = SyntheticLlama.Build(Tiny);
        using var sparse = SyntheticLlama.Build(Tiny);
        var pass = new SparsifyPass(new SparsifyOptions { Sparsity = 0 });

        var result = pass.Run(sparse);
        Assert.True(result.Changed);

        var report = result.Report;
        Assert.Equal(7 * Tiny.Layers, report.Rewritten.Count);
        foreach (var (_, kind) in LayerProjections)
            Assert.Equal(Enumerable.Range(0, Tiny.Layers).Select(l => (int?)l), report.Rewritten.Where(r => r.Kind == kind).Select(r => r.Layer).Order());
        Assert.Equal(ProjectionKind.LmHead, Assert.Single(report.Skipped).Kind);

        // Keeping every input entry (k = K) must not change what the model computes.
        const int batch = 2, length = 5;
        var (ids, mask, positions) = LeftPaddedBatch(batch, length, padding: 2, Tiny.Vocab, seed: 21);
        using var denseSession = Sessions.Open(ModelSaver.ToBytes(dense));
        using var sparseSession = Sessions.Open(ModelSaver.ToBytes(sparse));
        var rows = AttendedPositions(mask, batch, length).ToArray();
        double worst = AssertClose(LogitRows(DecoderRun.Step(denseSession, Tiny, batch, ids, mask, positions)["logits"], rows),
            LogitRows(DecoderRun.Step(sparseSession, Tiny, batch, ids, mask, positions)["logits"], rows), "sparsity 0 vs dense", DescribeLogit(rows));
        output.WriteLine($"sparsity 0 vs dense: worst |difference| {worst:E2}");
    }

    [Fact]
    public void LogitsMatchAReferenceForwardPassWithLeftPadding()
    {
        using var model = SyntheticLlama.Build(Tiny, seed: 7);
        const int batch = 2, length = 5;
        var (ids, mask, positions) = LeftPaddedBatch(batch, length, padding: 2, Tiny.Vocab, seed: 11);
        var reference = new LlamaReference(model, Tiny).Logits(batch, length, ids, mask, positions);

        using var session = Sessions.Open(ModelSaver.ToBytes(model));
        var outputs = DecoderRun.Step(session, Tiny, batch, ids, mask, positions);

        var logits = outputs["logits"];
        Assert.Equal([batch, length, Tiny.Vocab], logits.Shape);
        AssertPresentShapes(outputs, batch, totalLength: length);
        // Only positions that attend: a padding position's query sees no key, and its logits mean nothing.
        var rows = AttendedPositions(mask, batch, length).ToArray();
        Assert.Equal(2 * length - 2, rows.Length);
        var expected = LogitRows(new FloatTensor(reference, [batch, length, Tiny.Vocab]), rows);
        // The comparison can only catch errors if the logits are of order 1, not collapsed to ~0.
        Assert.InRange(Math.Sqrt(expected.Average(e => (double)e * e)), 0.3, 10);
        double worst = AssertClose(expected, LogitRows(logits, rows), "ONNX Runtime vs reference", DescribeLogit(rows));
        output.WriteLine($"ONNX Runtime vs double reference: worst |difference| {worst:E2} over {expected.Length} logits");
    }

    /// <summary>
    /// The float16 decoder computes what the float32 one does, within float16's rounding: its weights are the float32
    /// ones rounded, and every op rounds its result (relative 2^-11), so over two layers logits of order 1 differ by
    /// about 3e-3 (measured: see the test output; 1e-2 allowed); a wrong cast, mask or softmax would move them by far more, and a
    /// padding position whose query sees no key stays finite (the lowest float16 score, not −1e9 = −∞).
    /// </summary>
    [Fact]
    public void TheFloat16DecoderComputesTheFloat32OneWithinItsRounding()
    {
        using var single = SyntheticLlama.Build(Tiny, seed: 7);
        using var half = SyntheticLlama.Build(Tiny, seed: 7, DataType.Float16);
        Assert.All(ProjectionClassifier.Classify(half), p => Assert.Equal(DataType.Float16, p.DataType));
        Assert.Equal(DataType.Float16, half.Graph.Outputs.Single(o => o.Name == "logits").ElementType);
        const int batch = 2, length = 5;
        var (ids, mask, positions) = LeftPaddedBatch(batch, length, padding: 2, Tiny.Vocab, seed: 11);
        using var singleSession = Sessions.Open(ModelSaver.ToBytes(single));
        using var halfSession = Sessions.Open(ModelSaver.ToBytes(half));
        var expected = DecoderRun.Step(singleSession, Tiny, batch, ids, mask, positions)["logits"];
        var actual = DecoderRun.Step(halfSession, Tiny, batch, ids, mask, positions)["logits"];
        Assert.All(actual.Data, v => Assert.True(float.IsFinite(v), "a float16 logit is not finite"));
        var rows = AttendedPositions(mask, batch, length).ToArray();
        var e = LogitRows(expected, rows);
        var a = LogitRows(actual, rows);
        double worst = e.Zip(a).Max(p => Math.Abs(p.First - p.Second));
        output.WriteLine($"float16 vs float32: worst |difference| {worst:E2} over {e.Length} logits");
        Assert.True(worst <= 1e-2, $"float16 logits differ from float32 ones by {worst}");
    }

    /// <summary>A bfloat16 decoder declares bfloat16 weights, cache and logits (ONNX Runtime's CPU provider has no bfloat16 MatMul to run it).</summary>
    [Fact]
    public void TheBFloat16DecoderIsBFloat16Throughout()
    {
        using var model = SyntheticLlama.Build(Tiny, seed: 7, DataType.BFloat16);
        Assert.All(ProjectionClassifier.Classify(model), p => Assert.Equal(DataType.BFloat16, p.DataType));
        Assert.All(model.Graph.Outputs, o => Assert.Equal(DataType.BFloat16, o.ElementType));
        Assert.All(model.Graph.Inputs.Where(i => i.Name.StartsWith("past_key_values.", StringComparison.Ordinal)), i => Assert.Equal(DataType.BFloat16, i.ElementType));
        Assert.Throws<ArgumentException>(() => SyntheticLlama.Build(Tiny, seed: 7, DataType.Double));
    }

    [Fact]
    public void DecodingWithTheCacheGivesTheLogitsOfOneFullPass()
    {
        using var model = SyntheticLlama.Build(Tiny, seed: 3);
        using var session = Sessions.Open(ModelSaver.ToBytes(model));
        const int batch = 2, total = 9, prefill = 6;
        var (ids, mask, positions) = LeftPaddedBatch(batch, total, padding: 2, Tiny.Vocab, seed: 13);
        var full = DecoderRun.Step(session, Tiny, batch, ids, mask, positions);

        // Prefill from an empty cache, then one token at a time, each step's present.* fed back as past.
        var step = DecoderRun.Step(session, Tiny, batch, Columns(ids, batch, 0, prefill), Columns(mask, batch, 0, prefill), Columns(positions, batch, 0, prefill));
        AssertPresentShapes(step, batch, prefill);
        var prefillRows = AttendedPositions(mask, batch, total).Where(r => r.Position < prefill).ToArray();
        double worst = AssertClose(LogitRows(full["logits"], prefillRows), LogitRows(step["logits"], prefillRows), "prefill vs full pass",
            DescribeLogit(prefillRows));
        for (int t = prefill; t < total; t++)
        {
            step = DecoderRun.Step(session, Tiny, batch, Columns(ids, batch, t, t + 1), Columns(mask, batch, 0, t + 1), Columns(positions, batch, t, t + 1), past: step);
            AssertPresentShapes(step, batch, t + 1);
            Assert.Equal([batch, 1, Tiny.Vocab], step["logits"].Shape);
            var fullRows = Enumerable.Range(0, batch).Select(b => (b, t)).ToArray();
            var stepRows = Enumerable.Range(0, batch).Select(b => (b, 0)).ToArray();
            worst = Math.Max(worst, AssertClose(LogitRows(full["logits"], fullRows), LogitRows(step["logits"], stepRows),
                $"decode step at position {t} vs full pass", DescribeLogit(fullRows)));
        }

        // The cache built step by step holds the full pass's keys and values wherever a query can read them.
        for (int layer = 0; layer < Tiny.Layers; layer++)
            foreach (string kv in new[] { "key", "value" })
            {
                string name = $"present.{layer}.{kv}";
                var attended = AttendedCacheEntries(mask, batch, total).ToArray();
                worst = Math.Max(worst, AssertClose(attended.Select(i => full[name].Data[i]).ToArray(), attended.Select(i => step[name].Data[i]).ToArray(),
                    $"{name} after decoding vs full pass", i => $"flat index {attended[i]}"));
            }
        output.WriteLine($"cached decoding vs one full pass: worst |difference| {worst:E2}");
    }

    [Fact]
    public void OnnxRuntimesGraphOptimizationsKeepTheLogits()
    {
        // Benchmarks run with every optimization on: its fusions must accept this graph and compute the same.
        using var model = SyntheticLlama.Build(Tiny, seed: 9);
        byte[] bytes = ModelSaver.ToBytes(model);
        using var optimizedOptions = new SessionOptions { GraphOptimizationLevel = GraphOptimizationLevel.ORT_ENABLE_ALL };
        using var optimized = new InferenceSession(bytes, optimizedOptions);
        using var plain = Sessions.Open(bytes);
        const int batch = 2, length = 5;
        var (ids, mask, positions) = LeftPaddedBatch(batch, length, padding: 2, Tiny.Vocab, seed: 19);

        var rows = AttendedPositions(mask, batch, length).ToArray();
        double worst = AssertClose(LogitRows(DecoderRun.Step(plain, Tiny, batch, ids, mask, positions)["logits"], rows),
            LogitRows(DecoderRun.Step(optimized, Tiny, batch, ids, mask, positions)["logits"], rows), "optimized vs unoptimized", DescribeLogit(rows));
        output.WriteLine($"optimized vs unoptimized session: worst |difference| {worst:E2}");
    }

    [Fact]
    public void SavedWithExternalDataItReloadsAndRunsAsBuilt()
    {
        using var dir = new TempDirectory();
        string path = dir.File("model.onnx");
        using var built = SyntheticLlama.Build(Tiny, seed: 5);

        var saved = ModelSaver.Save(built, path, new SaveOptions { ExternalData = ExternalDataMode.Always });

        // Every matrix goes to the data file; the 256-byte norm weights stay under the 1 KiB inline threshold.
        Assert.Equal(7 * Tiny.Layers + 2, saved.ExternalTensors);
        using var reloaded = ModelLoader.Load(path);
        Assert.Equal(8, reloaded.IrVersion);
        Assert.Equal(17, reloaded.OpsetImports[""]);
        Assert.Equal(SyntheticLlama.ProducerName, reloaded.ProducerName);
        Assert.Equal(built.Graph.Initializers.Select(v => v.Name).Order(), reloaded.Graph.Initializers.Select(v => v.Name).Order());
        foreach (var weight in built.Graph.Initializers)
            Assert.True(weight.ConstValue!.Data.ToArray().AsSpan().SequenceEqual(reloaded.Graph.Initializers.Find(weight.Name)!.ConstValue!.Data.ToArray()),
                $"{weight.Name} reads back different bytes.");

        const int batch = 2, length = 4;
        var (ids, mask, positions) = LeftPaddedBatch(batch, length, padding: 1, Tiny.Vocab, seed: 17);
        using var fromFile = Sessions.Open(path);
        using var fromMemory = Sessions.Open(ModelSaver.ToBytes(built));
        Assert.Equal(DecoderRun.Step(fromMemory, Tiny, batch, ids, mask, positions)["logits"].Data, DecoderRun.Step(fromFile, Tiny, batch, ids, mask, positions)["logits"].Data);
    }

    [Fact]
    public void TheSameSeedGivesTheSameWeightsAndAnotherSeedOtherWeights()
    {
        using var first = SyntheticLlama.Build(Tiny, seed: 5);
        using var again = SyntheticLlama.Build(Tiny, seed: 5);
        using var other = SyntheticLlama.Build(Tiny, seed: 6);

        byte[] Bytes(Model model, string name) => model.Graph.Initializers.Find(name)!.ConstValue!.Data.ToArray();
        var matrices = first.Graph.Initializers.Where(v => v.ConstValue!.Dims.Length == 2).Select(v => v.Name).ToArray();
        Assert.Equal(7 * Tiny.Layers + 2, matrices.Length);
        foreach (string name in matrices)
        {
            Assert.True(Bytes(first, name).AsSpan().SequenceEqual(Bytes(again, name)), $"{name} differs between two builds with seed 5.");
            Assert.False(Bytes(first, name).AsSpan().SequenceEqual(Bytes(other, name)), $"{name} is the same with seeds 5 and 6.");
        }
        // Within one model every matrix has its own stream: no two share their first values.
        Assert.Equal(matrices.Length, matrices.Select(n => BitConverter.ToString(Bytes(first, n), 0, 64)).Distinct().Count());
    }

    [Theory]
    [InlineData("model.embed_tokens.weight", 1.0)]
    [InlineData("model.layers.1.self_attn.q_proj.weight", 0.21650635094610965)] // √(3/64)
    [InlineData("model.layers.0.mlp.down_proj.weight", 0.1767766952966369)] // √(3/96)
    [InlineData("lm_head.weight", 0.21650635094610965)]
    public void MatricesAreUniformWithVarianceOneOverFanIn(string name, double bound)
    {
        using var model = SyntheticLlama.Build(Tiny);
        var tensor = model.Graph.Initializers.Find(name)!.ConstValue!;
        Assert.IsType<GeneratedTensorData>(tensor.Data);
        using var lease = tensor.Data.Acquire();
        var values = lease.AsSpan<float>().ToArray();

        // Uniform in [-a, a) has variance a²/3: 1/K for a projection's a = √(3/K), 1/3 for the embeddings' a = 1.
        double variance = bound * bound / 3;
        Assert.All(values, v => Assert.InRange(v, -bound, bound));
        Assert.True(values.Max(v => Math.Abs(v)) > 0.99 * bound, $"{name} does not fill [-{bound}, {bound}).");
        Assert.InRange(values.Average(v => (double)v), -0.05 * bound, 0.05 * bound);
        // At least 4096 samples: the variance estimate's relative spread is about 2 %.
        Assert.InRange(values.Average(v => (double)v * v), 0.9 * variance, 1.1 * variance);
    }

    [Fact]
    public void Llama32_1BHasTheUntiedParameterCountAndIsBuiltWithoutItsWeights()
    {
        var dims = LlamaDimensions.Llama32_1B;
        // This thread's allocations only: tests of other classes run in parallel.
        long allocatedBefore = GC.GetAllocatedBytesForCurrentThread();
        using var model = SyntheticLlama.Build(dims);
        long allocated = GC.GetAllocatedBytesForCurrentThread() - allocatedBefore;

        const long expected = 16L * (2048L * 2048 * 2 + 2048L * 512 * 2 + 3L * 2048 * 8192 + 2 * 2048) + 2L * 128256 * 2048 + 2048;
        // The released model, with the output head tied to the embeddings, has 1,235,814,400.
        Assert.Equal(1_235_814_400L + 128256L * 2048, expected);
        Assert.Equal(expected, model.Graph.Initializers.Sum(v => v.ConstValue!.ElementCount));
        Assert.Equal(expected, dims.ParameterCount);
        Assert.All(model.Graph.Initializers.Where(v => v.ConstValue!.Dims.Length == 2), v => Assert.IsType<GeneratedTensorData>(v.ConstValue!.Data));
        // 6 GB of float32 weights; the graph and the norm weights are a few hundred kilobytes.
        Assert.True(allocated < 200L << 20, $"Building allocated {allocated / 1e6:0.0} MB.");
        output.WriteLine($"Llama-3.2-1B dimensions: {expected:N0} parameters, built with {allocated / 1e6:0.00} MB allocated");
    }

    [Fact]
    public void PresetsAreFoundByNameAndAnUnknownNameListsTheKnownOnes()
    {
        Assert.Same(LlamaDimensions.Llama32_1B, LlamaDimensions.Preset("llama-3.2-1b"));
        Assert.Same(LlamaDimensions.Llama32_1B, LlamaDimensions.Preset("Llama-3.2-1B"));
        Assert.Same(LlamaDimensions.Tiny, LlamaDimensions.Preset("tiny"));
        Assert.Equal(64, LlamaDimensions.Llama32_1B.HeadDim);

        var error = Assert.Throws<ArgumentException>(() => LlamaDimensions.Preset("llama-2-7b"));
        Assert.Contains("'llama-2-7b'", error.Message);
        Assert.Contains("llama-3.2-1b", error.Message);
        Assert.Contains("tiny", error.Message);
    }

    public static TheoryData<string, LlamaDimensions> InvalidDimensions => new()
    {
        { "Layers", Tiny with { Layers = 0 } },
        { "Hidden", Tiny with { Hidden = -64 } },
        { "Heads", Tiny with { Heads = 0 } },
        { "KvHeads", Tiny with { KvHeads = -2 } },
        { "Intermediate", Tiny with { Intermediate = 0 } },
        { "Vocab", Tiny with { Vocab = 0 } },
        { "RopeTheta", Tiny with { RopeTheta = 0 } },
        { "RopeTheta", Tiny with { RopeTheta = double.NaN } },
        { "RmsEps", Tiny with { RmsEps = -1e-5 } },
        { "RmsEps", Tiny with { RmsEps = double.PositiveInfinity } },
        { "Hidden", Tiny with { Hidden = 66 } },  // not divisible by 4 heads
        { "KvHeads", Tiny with { KvHeads = 3 } }, // 4 heads in groups of 3
        { "HeadDim", Tiny with { Hidden = 36 } }, // 9 per head: RoPE needs pairs
    };

    [Theory]
    [MemberData(nameof(InvalidDimensions))]
    public void ValidateNamesTheBadField(string field, LlamaDimensions dims)
    {
        var error = Assert.Throws<ArgumentException>(dims.Validate);
        Assert.Equal(field, error.ParamName);
        Assert.Contains(field, error.Message, StringComparison.Ordinal);
        Assert.Throws<ArgumentException>(() => SyntheticLlama.Build(dims));
    }

    /// <summary>
    /// Random token ids with row 1 left-padded by <paramref name="padding"/> positions, attention mask to match,
    /// and position ids as Hugging Face's generate makes them: cumsum(mask) − 1, with padding positions set to 1.
    /// </summary>
    private static (long[] Ids, long[] Mask, long[] Positions) LeftPaddedBatch(int batch, int length, int padding, int vocab, int seed)
    {
        var random = new Random(seed);
        var ids = new long[batch * length];
        var mask = new long[batch * length];
        var positions = new long[batch * length];
        for (int b = 0; b < batch; b++)
        {
            long position = -1;
            for (int t = 0; t < length; t++)
            {
                int i = b * length + t;
                ids[i] = random.Next(vocab);
                mask[i] = b == 1 && t < padding ? 0 : 1;
                position += mask[i];
                positions[i] = mask[i] == 0 ? 1 : position;
            }
        }
        return (ids, mask, positions);
    }

    /// <summary>Columns [from, to) of a row-major [batch, length] array.</summary>
    private static long[] Columns(long[] data, int batch, int from, int to)
    {
        int length = data.Length / batch;
        return Enumerable.Range(0, batch).SelectMany(b => data.Skip(b * length + from).Take(to - from)).ToArray();
    }

    /// <summary>The (batch, position) pairs whose attention mask is set.</summary>
    private static IEnumerable<(int Batch, int Position)> AttendedPositions(long[] mask, int batch, int length) =>
        Enumerable.Range(0, batch).SelectMany(b => Enumerable.Range(0, length).Where(t => mask[b * length + t] != 0).Select(t => (b, t)));

    /// <summary>Flat indices of a [batch, kvHeads, length, headDim] cache at the positions whose attention mask is set.</summary>
    private static IEnumerable<int> AttendedCacheEntries(long[] mask, int batch, int length) =>
        from b in Enumerable.Range(0, batch)
        from h in Enumerable.Range(0, Tiny.KvHeads)
        from t in Enumerable.Range(0, length)
        where mask[b * length + t] != 0
        from d in Enumerable.Range(0, Tiny.HeadDim)
        select ((b * Tiny.KvHeads + h) * length + t) * Tiny.HeadDim + d;

    /// <summary>The vocabulary rows of <paramref name="logits"/> [batch, length, vocab] at <paramref name="rows"/>, concatenated.</summary>
    private static float[] LogitRows(FloatTensor logits, IEnumerable<(int Batch, int Position)> rows)
    {
        int length = (int)logits.Shape[1], vocab = (int)logits.Shape[2];
        return rows.SelectMany(r => logits.Data.AsSpan((r.Batch * length + r.Position) * vocab, vocab).ToArray()).ToArray();
    }

    private static Func<int, string> DescribeLogit((int Batch, int Position)[] rows) =>
        i => $"batch {rows[i / Tiny.Vocab].Batch}, position {rows[i / Tiny.Vocab].Position}, token {i % Tiny.Vocab}";

    /// <summary>
    /// Asserts |actual − expected| ≤ <see cref="AbsoluteTolerance"/> + <see cref="RelativeTolerance"/>·|expected| everywhere,
    /// naming the worst entry on failure; returns the worst absolute difference.
    /// </summary>
    private static double AssertClose(float[] expected, float[] actual, string what, Func<int, string> describe)
    {
        Assert.Equal(expected.Length, actual.Length);
        Assert.NotEmpty(expected);
        double worstDifference = 0, worstRatio = -1;
        int worst = 0;
        for (int i = 0; i < expected.Length; i++)
        {
            double difference = Math.Abs((double)actual[i] - expected[i]);
            double ratio = difference / (AbsoluteTolerance + RelativeTolerance * Math.Abs(expected[i]));
            if (double.IsNaN(ratio)) ratio = double.PositiveInfinity;
            if (ratio > worstRatio) (worstRatio, worst) = (ratio, i);
            worstDifference = Math.Max(worstDifference, double.IsNaN(difference) ? double.PositiveInfinity : difference);
        }
        Assert.True(worstRatio <= 1,
            $"{what}: |difference| exceeds {AbsoluteTolerance:E0} + {RelativeTolerance:E0}·|expected| at {describe(worst)}: " +
            $"expected {expected[worst]:R}, got {actual[worst]:R}.");
        return worstDifference;
    }

    private static void AssertPresentShapes(IReadOnlyDictionary<string, FloatTensor> outputs, int batch, int totalLength)
    {
        for (int layer = 0; layer < Tiny.Layers; layer++)
            foreach (string kv in new[] { "key", "value" })
                Assert.Equal([batch, Tiny.KvHeads, totalLength, Tiny.HeadDim], outputs[$"present.{layer}.{kv}"].Shape);
    }
}
