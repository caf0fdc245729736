using SparseOnnx.GraphRewriter.Analysis.Projections;
using SparseOnnx.GraphRewriter.Sparsify;
using SparseOnnx.GraphRewriter.Tests.TestUtil;

namespace SparseOnnx.GraphRewriter.Tests.Sparsify;

/// <summary>
/// The sparsify pass on every committed model (a trained Llama and five family fixtures: separate and fused
/// qkv / gate_up, MatMul, Gemm with transB 0 and 1, biases), run through ONNX Runtime with the op library on
/// the golden decoding cases (several batch, sequence and past lengths, KV cache fed back step by step).
/// </summary>
public class CommittedModelTests
{
    // k = K keeps every entry, so only the summation order differs from MatMul/Gemm: float32 rounding,
    // compounded over the layers. The measured worst case is recorded in docs/benchmarks.md.
    private const double SparsityZeroTolerance = 1e-5;

    public static TheoryData<string, bool> ModelsAndKinds()
    {
        var data = new TheoryData<string, bool>();
        foreach (string folder in DecodingRunner.ModelsWithGoldenCases())
        {
            data.Add(folder, false);
            data.Add(folder, true);
        }
        return data;
    }

    [Theory]
    [MemberData(nameof(ModelsAndKinds))]
    public void AtSparsityZeroEveryOutputEqualsTheOriginal(string folder, bool includeHead)
    {
        using var dir = new TempDirectory();
        string source = Path.Combine(RepositoryPaths.Models, folder, "model.onnx");
        string sparse = dir.File("sparse.onnx");
        if (DecodingRunner.IsQuantized(folder))
        {
            // int4 models are compared with float32 activations, where the rewrite must be exact (see UseFloatActivations).
            using var quantized = ModelLoader.Load(source);
            DecodingRunner.UseFloatActivations(quantized);
            source = dir.File("level0.onnx");
            ModelSaver.Save(quantized, source);
        }
        var kinds = includeHead ? new HashSet<ProjectionKind>(SparsifyOptions.DefaultKinds) { ProjectionKind.LmHead } : SparsifyOptions.DefaultKinds;
        SparsifyReport report;
        using (var model = ModelLoader.Load(source))
        {
            var pass = new SparsifyPass(new SparsifyOptions { Sparsity = 0, Kinds = kinds });
            report = pass.Run(model).Report;
            ModelSaver.Save(model, sparse);
        }
        Assert.DoesNotContain(report.Skipped, s => kinds.Contains(s.Kind));
        Assert.All(report.Rewritten, r => Assert.Equal(r.InFeatures, r.K));
        Assert.Equal(includeHead, report.Rewritten.Any(r => r.Kind == ProjectionKind.LmHead));

        var spec = DecodingRunner.Spec(folder);
        List<StepResult> expected, actual;
        using (var session = Sessions.Open(source)) expected = DecodingRunner.Run(session, spec);
        using (var session = Sessions.Open(sparse)) actual = DecodingRunner.Run(session, spec);

        Assert.Equal(expected.Count, actual.Count);
        double worst = 0;
        for (int i = 0; i < expected.Count; i++)
        {
            Assert.Equal(expected[i].Outputs.Keys.Order(), actual[i].Outputs.Keys.Order());
            foreach (var (name, tensor) in expected[i].Outputs)
            {
                Assert.Equal(tensor.Shape, actual[i].Outputs[name].Shape);
                string what = $"{folder} {expected[i].Case} step {expected[i].Step} {name}";
                Numerics.AssertRelativelyClose(tensor.Data, actual[i].Outputs[name].Data, SparsityZeroTolerance, what);
                worst = Math.Max(worst, Numerics.WorstRelativeError(tensor.Data, actual[i].Outputs[name].Data).Worst);
            }
        }
        Console.WriteLine($"[sparsity 0] {folder} (head {(includeHead ? "rewritten" : "kept")}): worst relative error {worst:E2} over {expected.Count} steps");
    }

    /// <summary>
    /// A model with external data: the sparse model gets its own data file and stands alone. The input's data
    /// file is deleted before the sparse model runs, and it still matches the original's outputs.
    /// </summary>
    [Fact]
    public void AnExternalDataModelGetsItsOwnDataFileAndStandsAlone()
    {
        using var dir = new TempDirectory();
        string external = dir.File("in/model.onnx");
        string sparse = dir.File("out/model.onnx");
        using (var model = ModelLoader.Load(Path.Combine(RepositoryPaths.Models, "llama-brown", "model.onnx")))
            ModelSaver.Save(model, external, new SaveOptions { ExternalData = ExternalDataMode.Always });
        var spec = DecodingRunner.Spec("llama-brown");
        List<StepResult> expected;
        using (var session = Sessions.Open(external)) expected = DecodingRunner.Run(session, spec);

        SaveResult saved;
        using (var model = ModelLoader.Load(external))
        {
            new SparsifyPass(new SparsifyOptions { Sparsity = 0 }).Run(model);
            saved = ModelSaver.Save(model, sparse);
        }
        Assert.Equal(dir.File("out/model.onnx.data"), saved.DataPath);
        Assert.Equal(0, saved.ReusedTensors);
        File.Delete(external + ".data");

        using var sparseSession = Sessions.Open(sparse);
        var actual = DecodingRunner.Run(sparseSession, spec);
        for (int i = 0; i < expected.Count; i++)
            foreach (var (name, tensor) in expected[i].Outputs)
                Numerics.AssertRelativelyClose(tensor.Data, actual[i].Outputs[name].Data, SparsityZeroTolerance, $"{expected[i].Case} step {expected[i].Step} {name}");
    }

    /// <summary>
    /// llama-brown sparsified; layer 1's seven projections are probed (their input X and the op's output Y
    /// become graph outputs) on every golden step, prefill (more than 16 rows: the masked dense path) and
    /// decode (the selected-rows path), and Y is checked against a naive masked product in double.
    /// </summary>
    [Theory]
    [InlineData("topk")]
    [InlineData("threshold")]
    public void OneLayerAtSparsityMatchesANaiveMaskedProduct(string mode)
    {
        using var dir = new TempDirectory();
        string source = Path.Combine(RepositoryPaths.Models, "llama-brown", "model.onnx");
        string probed = dir.File("probed.onnx");
        var options = mode == "topk"
            ? new SparsifyOptions { Sparsity = 0.6 }
            : new SparsifyOptions { Mode = SparsityMode.Threshold, Threshold = 0.3f };
        var probes = new List<(string Kind, string X, string Y, float[] W, long K, long N, long? Kept, float? Threshold)>();
        using (var model = ModelLoader.Load(source))
        {
            new SparsifyPass(options).Run(model);
            foreach (var node in model.Graph.Nodes.Where(n => n.OpType == TopKSparseMatMulOp.OpType))
            {
                var meta = node.MetadataProps.ToDictionary(kv => kv.Key, kv => kv.Value);
                if (meta["sparseonnx.layer"] != "1") continue;
                var weight = node.Inputs[1]!.ConstValue!;
                var (x, y) = (node.Inputs[0]!, node.Outputs[0]);
                foreach (var v in new[] { x, y })
                {
                    v.Type ??= new TensorType(DataType.Float, null);
                    model.Graph.Outputs.Add(v);
                }
                probes.Add((meta["sparseonnx.kind"], x.Name, y.Name, weight.Data.ToArray().AsSpan().ToFloats(), weight.Dims[0], weight.Dims[1],
                    node.Attributes["k"]?.AsInt(), node.Attributes["threshold"]?.AsFloat()));
            }
            ModelSaver.Save(model, probed);
        }
        Assert.Equal(["q", "k", "v", "o", "gate", "up", "down"], probes.Select(p => p.Kind).ToArray());

        List<StepResult> steps;
        using (var session = Sessions.Open(probed)) steps = DecodingRunner.Run(session, DecodingRunner.Spec("llama-brown"));
        long rowsChecked = 0, keptEntries = 0, entries = 0;
        bool sawPrefill = false, sawDecode = false;
        foreach (var step in steps)
            foreach (var p in probes)
            {
                var x = step.Outputs[p.X].Data;
                var y = step.Outputs[p.Y].Data;
                int rows = x.Length / (int)p.K;
                (sawPrefill, sawDecode) = (sawPrefill || rows > 16, sawDecode || rows <= 16);
                var (expected, magnitude, kept) = MaskedProduct(x, p.W, (int)p.K, (int)p.N, p.Kept, p.Threshold);
                for (int i = 0; i < y.Length; i++)
                    Assert.True(Math.Abs(y[i] - expected[i]) <= 1e-5 * magnitude[i] + 1e-30,
                        $"{step.Case} step {step.Step} {p.Kind}: Y[{i}] = {y[i]:R}, masked product {expected[i]:R} (scale {magnitude[i]:E2}).");
                rowsChecked += rows;
                keptEntries += kept;
                entries += x.Length;
            }
        Assert.True(sawPrefill && sawDecode, "The golden cases must exercise both the prefill and the decode path.");
        double keptFraction = (double)keptEntries / entries;
        if (mode == "topk") Assert.InRange(keptFraction, 0.39, 0.41);
        else Assert.InRange(keptFraction, 0.05, 0.95); // a threshold that keeps everything or nothing would prove nothing
        Console.WriteLine($"[{mode}] {rowsChecked} rows of layer-1 projections match the naive masked product; kept {keptFraction:P1} of entries");
    }

    /// <summary>Y = (X ⊙ mask) · W in double, per-row selection as the op contract states; also Σ|x·w| per output and the kept count.</summary>
    private static (double[] Y, double[] Magnitude, long Kept) MaskedProduct(float[] x, float[] w, int K, int N, long? k, float? threshold)
    {
        int rows = x.Length / K;
        var y = new double[rows * N];
        var magnitude = new double[rows * N];
        long kept = 0;
        for (int r = 0; r < rows; r++)
        {
            var row = x.AsSpan(r * K, K).ToArray();
            bool[] keep;
            if (threshold is { } t) keep = row.Select(v => MathF.Abs(v) > t).ToArray();
            else
            {
                var order = Enumerable.Range(0, K).OrderByDescending(i => MathF.Abs(row[i])).ThenBy(i => i).Take((int)k!.Value).ToHashSet();
                keep = Enumerable.Range(0, K).Select(order.Contains).ToArray();
            }
            for (int i = 0; i < K; i++)
            {
                if (!keep[i]) continue;
                kept++;
                for (int n = 0; n < N; n++)
                {
                    double product = (double)row[i] * w[i * N + n];
                    y[r * N + n] += product;
                    magnitude[r * N + n] += Math.Abs(product);
                }
            }
        }
        return (y, magnitude, kept);
    }
}

internal static class ByteSpanExtensions
{
    public static float[] ToFloats(this Span<byte> bytes) => System.Runtime.InteropServices.MemoryMarshal.Cast<byte, float>(bytes).ToArray();
}
