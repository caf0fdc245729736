using Microsoft.ML.OnnxRuntime;
using SparseOnnx.Calibration.Capture;
using SparseOnnx.GraphRewriter.IO;
using SparseOnnx.GraphRewriter.Sparsify;
using SparseOnnx.Runtime.Inference;

namespace SparseOnnx.Calibration.Tests;

/// <summary>The probe against the model it instruments and against TopKSparseMatMul, through ONNX Runtime.</summary>
public sealed class ProbeTests(Xunit.Abstractions.ITestOutputHelper output) : IDisposable
{
    private static string ModelPath => Path.Combine(RepositoryPaths.Models, "llama-brown", "model.onnx");
    private readonly string _folder = Directory.CreateTempSubdirectory("sparseonnx-probe-").FullName;

    public void Dispose() => Directory.Delete(_folder, recursive: true);

    private static int[][] Windows(int count, int length, int seed)
    {
        var random = new Random(seed);
        return Enumerable.Range(0, count).Select(_ => Enumerable.Range(0, length).Select(_ => random.Next(4, 4096)).ToArray()).ToArray();
    }

    private ProbeSession OpenProbe(SparsityMode mode, out GraphRewriter.Ir.Model model)
    {
        model = ModelLoader.Load(ModelPath);
        var layout = ProbeModelBuilder.Instrument(model, new ProbeOptions { Mode = mode });
        return ProbeSession.Open(model, layout, Path.Combine(_folder, "probe-" + mode), threads: 1);
    }

    private static float[] Logits(ProbeSession probe, int[][] windows, ProbeSettings settings) => probe.Capture(windows, 2, settings, probe.Logits);

    private static float[] ModelLogits(string path, int[][] windows)
    {
        using var lm = CausalLm.Open(path, new CausalLmOptions { Threads = 1, OptimizationLevel = GraphOptimizationLevel.ORT_ENABLE_BASIC });
        var tokens = windows.SelectMany(w => w.Select(t => (long)t)).ToArray();
        return lm.ForwardWindows(tokens, windows.Length, windows[0].Length, out _);
    }

    private static void AssertClose(float[] expected, float[] actual, float tolerance)
    {
        Assert.Equal(expected.Length, actual.Length);
        int worst = 0;
        for (int i = 0; i < expected.Length; i++)
            if (MathF.Abs(expected[i] - actual[i]) > MathF.Abs(expected[worst] - actual[worst])) worst = i;
        float difference = MathF.Abs(expected[worst] - actual[worst]);
        Assert.True(difference <= tolerance, $"logit {worst}: expected {expected[worst]}, got {actual[worst]} (|Δ| = {difference}, tolerance {tolerance})");
    }

    /// <summary>
    /// Probe settings for every group (<paramref name="threshold"/> or k = K/2 + index; random vectors of ±
    /// <paramref name="vectorScale"/>/2 where <paramref name="withVector"/>), and the model at <paramref name="densePath"/>
    /// rewritten by SparsifyPass with the same values as a plan, saved to <paramref name="sparsePath"/>.
    /// </summary>
    private static ProbeSettings SettingsAndTheirRewrite(ProbeLayout layout, SparsityMode mode, string densePath, string sparsePath, Random random,
        Func<ProbeGroup, float> threshold, Func<ProbeGroup, bool> withVector, float vectorScale)
    {
        var settings = new ProbeSettings(layout);
        var entries = new List<PlanEntry>();
        foreach (var g in layout.Groups)
        {
            float t = threshold(g);
            long k = g.InFeatures / 2 + g.Index;
            if (mode == SparsityMode.Threshold) settings.SetThreshold(g, t);
            else settings.SetK(g, k);
            foreach (var p in g.Members)
            {
                var vector = withVector(g) ? Enumerable.Range(0, (int)p.OutFeatures).Select(_ => (float)(random.NextDouble() - 0.5) * vectorScale).ToArray() : null;
                settings.SetCompensation(p, vector);
                entries.Add(new PlanEntry
                {
                    Node = p.Node,
                    Threshold = mode == SparsityMode.Threshold ? t : null,
                    K = mode == SparsityMode.TopK ? k : null,
                    Spontaneous = vector,
                });
            }
        }
        using var original = ModelLoader.Load(densePath);
        new SparsifyPass(new SparsifyOptions { Mode = mode, Plan = new SparsityPlan(entries) }).Run(original);
        ModelSaver.Save(original, sparsePath);
        return settings;
    }

    [Fact]
    public void Layout_GroupsProjectionsBySharedInput_AndFindsEveryBlockOutput()
    {
        using var probe = OpenProbe(SparsityMode.Threshold, out var model);
        using var _ = model;
        var layout = probe.Layout;
        Assert.Equal(24, layout.Groups.Count);
        Assert.Equal(["q+k+v", "o", "gate+up", "down"], layout.Groups.Take(4).Select(g => g.KindsName));
        Assert.Equal(256 * (256 + 64 + 64), layout.Groups[0].Parameters);
        Assert.Equal(Enumerable.Range(0, 6), layout.Layers);
        Assert.Null(layout.BlockOutputProblem);
        Assert.Equal(6, layout.BlockOutputs.Count);
    }

    [Fact]
    public void DenseSettings_GiveTheOriginalModelsLogits()
    {
        var windows = Windows(3, 24, 1);
        using var probe = OpenProbe(SparsityMode.Threshold, out var model);
        using var _ = model;
        AssertClose(ModelLogits(ModelPath, windows), Logits(probe, windows, new ProbeSettings(probe.Layout)), 1e-4f);
    }

    [Theory]
    [InlineData(SparsityMode.Threshold)]
    [InlineData(SparsityMode.TopK)]
    public void SparseSettings_MatchTheRewrittenModel_WithTheRealOp(SparsityMode mode)
    {
        var windows = Windows(3, 24, 2);
        using var probe = OpenProbe(mode, out var model);
        using var _ = model;
        string sparsePath = Path.Combine(_folder, $"sparse-{mode}.onnx");
        var settings = SettingsAndTheirRewrite(probe.Layout, mode, ModelPath, sparsePath, new Random(3),
            g => 0.05f + 0.1f * g.Index % 0.6f, g => g.Index % 3 == 0, vectorScale: 0.1f);

        var expected = ModelLogits(sparsePath, windows);
        var dense = ModelLogits(ModelPath, windows);
        var actual = Logits(probe, windows, settings);
        // The settings change the logits by far more than the probe and the op differ (summation order only).
        double moved = expected.Zip(dense).Max(p => Math.Abs(p.First - p.Second));
        Assert.True(moved > 0.5, $"the sparse settings moved the logits by only {moved}");
        AssertClose(expected, actual, 2e-3f);
    }

    /// <summary>
    /// A float16 model is probed in its own type: with the same thresholds (or k) and vectors, the probe's logits are
    /// those of the model SparsifyPass rewrites with the real float16 op, up to float16 rounding carried through the
    /// selection (the bounds below). Its x and S(x) are read back widened to float32, exactly.
    /// </summary>
    [Theory]
    [InlineData(SparsityMode.Threshold)]
    [InlineData(SparsityMode.TopK)]
    public void AFloat16ModelIsProbedInItsOwnType_AndMatchesTheRewrittenModel(SparsityMode mode)
    {
        // Wider than the tiny preset: the probe and the op round at different places (the op rounds its output to
        // float16, ONNX Runtime runs the probe's MatMul and its neighbours in float32 between Casts), and in a 64-wide
        // model each entry that one keeps and the other drops near a threshold moves the next layer by a lot.
        var dims = GraphRewriter.Synthesis.LlamaDimensions.Tiny with { Hidden = 256, Heads = 8, KvHeads = 4, Intermediate = 512, Vocab = 256 };
        string densePath = Path.Combine(_folder, "fp16.onnx");
        using (var half = GraphRewriter.Synthesis.SyntheticLlama.Build(dims, seed: 5, GraphRewriter.Ir.DataType.Float16))
            ModelSaver.Save(half, densePath);
        var random = new Random(8);
        var windows = Enumerable.Range(0, 3).Select(_ => Enumerable.Range(0, 12).Select(_ => random.Next(dims.Vocab)).ToArray()).ToArray();

        using var model = ModelLoader.Load(densePath);
        var layout = ProbeModelBuilder.Instrument(model, new ProbeOptions { Mode = mode });
        using var probe = ProbeSession.Open(model, layout, Path.Combine(_folder, "probe-fp16-" + mode), threads: 1);
        string sparsePath = Path.Combine(_folder, $"sparse-fp16-{mode}.onnx");
        var settings = SettingsAndTheirRewrite(layout, mode, densePath, sparsePath, random,
            g => 0.3f + 0.1f * g.Index, g => g.Index % 2 == 0, vectorScale: 0.2f);

        var expected = ModelLogits(sparsePath, windows);
        var actual = Logits(probe, windows, settings);
        double moved = expected.Zip(ModelLogits(densePath, windows)).Average(p => Math.Abs(p.First - p.Second));
        double differs = expected.Zip(actual).Average(p => Math.Abs(p.First - p.Second));
        double close = expected.Zip(actual).Count(p => Math.Abs(p.First - p.Second) <= 1e-2) / (double)expected.Length;
        output.WriteLine($"{mode}: mean |probe - op| {differs:E2}, mean |op - dense| {moved:E2}, within 1e-2: {close:P1}");
        Assert.True(moved > 0.3, $"the sparse settings moved the logits by only {moved} on average");
        // Measured: 1e-3 of the movement in top-k mode, 0.14 in threshold mode (one group alone: 1e-3, growing group by
        // group as rounding differences move entries across thresholds downstream). A probe that ignored its vectors or
        // its thresholds would be off by 0.3 to 1.
        double allowed = mode == SparsityMode.TopK ? 0.02 : 0.2;
        Assert.True(differs <= allowed * moved, $"{mode}: the probe's logits differ from the rewritten model's by {differs:E2} on average, " +
            $"more than {allowed:P0} of the {moved:E2} the settings moved them");

        var group = layout.Groups[0];
        probe.Run(windows, 3, settings, [group.DenseOutput, group.SparseOutput], batch =>
        {
            var x = batch.Floats(group.DenseOutput).ToArray();
            var sparse = batch.Floats(group.SparseOutput);
            Assert.Equal(3 * 12 * group.InFeatures, x.Length);
            Assert.All(x, v => Assert.Equal(v, (float)(Half)v));  // float16 values, widened exactly
            if (mode == SparsityMode.Threshold)
                for (int i = 0; i < x.Length; i++) Assert.Equal(MathF.Abs(x[i]) > settings.Threshold(group) ? x[i] : 0f, sparse[i]);
        });
    }

    /// <summary>
    /// The probe's top-k mask (an unsorted TopK, ones scattered at its indices) keeps exactly k per row, ties going
    /// to the lower index as TopKSparseMatMul breaks them, whatever order ONNX Runtime returns them in.
    /// </summary>
    [Fact]
    public void TopKMask_KeepsExactlyK_TiesToTheLowerIndex()
    {
        var model = new GraphRewriter.Ir.Model(new GraphRewriter.Ir.Graph("mask")) { IrVersion = 8 };
        model.OpsetImports.Set("", 17);
        var builder = new GraphRewriter.Ir.GraphBuilder(model.Graph, model.UniqueName);
        var x = builder.Input("x", GraphRewriter.Ir.DataType.Float, "rows", 64L);
        var k = builder.Input("k", GraphRewriter.Ir.DataType.Int64, 1L);
        var keep = ProbeModelBuilder.TopKMask(builder, builder.Op("Abs", x), k, "topk");
        builder.Output(builder.Op("Cast", [keep], GraphRewriter.Ir.OnnxAttribute.Int("to", (long)GraphRewriter.Ir.DataType.Float)), GraphRewriter.Ir.DataType.Float);
        using var session = new InferenceSession(ModelSaver.ToBytes(model));

        const int rows = 40, width = 64;
        var random = new Random(11);
        // Few distinct magnitudes, signs mixed, -0.0 among them: most rows have ties at the k-th magnitude.
        var values = Enumerable.Range(0, rows * width).Select(_ => (random.Next(2) == 0 ? -1f : 1f) * random.Next(0, 5) * 0.25f).ToArray();
        foreach (long kept in new long[] { 1, 7, 32, 63, 64 })
        {
            using var input = OrtValue.CreateTensorValueFromMemory(values, [rows, width]);
            using var count = OrtValue.CreateTensorValueFromMemory(new[] { kept }, [1]);
            using var runOptions = new RunOptions();
            using var outputs = session.Run(runOptions, ["x", "k"], [input, count], session.OutputNames);
            var mask = outputs[0].GetTensorDataAsSpan<float>().ToArray();
            for (int r = 0; r < rows; r++)
            {
                var row = values.AsSpan(r * width, width).ToArray();
                // The reference: by magnitude descending, then index ascending.
                var expected = Enumerable.Range(0, width).OrderByDescending(i => MathF.Abs(row[i])).ThenBy(i => i).Take((int)kept).ToHashSet();
                var actual = Enumerable.Range(0, width).Where(i => mask[r * width + i] == 1f).ToHashSet();
                Assert.True(expected.SetEquals(actual), $"k = {kept}, row {r}: expected [{string.Join(", ", expected.Order())}], kept [{string.Join(", ", actual.Order())}]");
            }
        }
    }

    [Fact]
    public void Outputs_ExposeXAndItsSparsification_AndTheKeptFraction()
    {
        var windows = Windows(2, 16, 4);
        using var probe = OpenProbe(SparsityMode.Threshold, out var model);
        using var _ = model;
        var group = probe.Layout.Groups[3];
        var settings = new ProbeSettings(probe.Layout);
        settings.SetThreshold(group, 0.05f);
        int checkedEntries = 0;
        probe.Run(windows, 2, settings, [group.DenseOutput, group.SparseOutput, group.KeptFractionOutput], batch =>
        {
            var x = batch.Floats(group.DenseOutput);
            var s = batch.Floats(group.SparseOutput);
            Assert.Equal(2 * 16 * group.InFeatures, x.Length);
            int kept = 0;
            for (int i = 0; i < x.Length; i++)
            {
                Assert.Equal(MathF.Abs(x[i]) > 0.05f ? x[i] : 0f, s[i]);
                if (MathF.Abs(x[i]) > 0.05f) kept++;
            }
            Assert.Equal(kept / (double)x.Length, batch.Floats(group.KeptFractionOutput)[0], 5);
            checkedEntries += x.Length;
        });
        Assert.True(checkedEntries > 0);
    }

    [Fact]
    public void Instrument_RefusesAnAlreadySparsifiedModel()
    {
        using var model = ModelLoader.Load(ModelPath);
        new SparsifyPass(new SparsifyOptions { Sparsity = 0.5 }).Run(model);
        var e = Assert.Throws<CalibrationModelException>(() => ProbeModelBuilder.Instrument(model, new ProbeOptions()));
        Assert.Contains("already sparsified", e.Message);
    }
}
