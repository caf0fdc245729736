using System.Diagnostics;
using SparseOnnx.GraphRewriter.Analysis.Projections;
using SparseOnnx.GraphRewriter.IO;
using SparseOnnx.GraphRewriter.Sparsify;
using SparseOnnx.GraphRewriter.Tests.IO;
using SparseOnnx.GraphRewriter.Tests.TestUtil;

namespace SparseOnnx.GraphRewriter.Tests.Sparsify;

/// <summary>
/// Sparsifying a model of Llama-3.2-1B's dimensions (hidden 2048, 16 layers, 32 query and 8 key/value heads,
/// MLP 8192, vocabulary 128256, tied embeddings; 1.24 B float32 parameters, 4.9 GB of external data, random
/// weights streamed to disk by a generator) keeps this process's peak resident memory under 1.5 GB. The
/// weights are stored [N, K] behind Transpose nodes, so every rewritten weight goes through the streaming
/// transpose, the costliest path.
/// </summary>
[Collection(nameof(MemoryMeasuringCollection))]
[Trait("Category", "Large")]
public class LargeModelSparsifyTests
{
    private const long PeakLimitBytes = 1500L * 1000 * 1000;

    private static readonly MimicConfig Llama32_1B = new()
    {
        Layers = 16, Hidden = 2048, Heads = 32, KvHeads = 8, Intermediate = 8192, Vocab = 128256,
        TiedHead = true, MeaningfulNames = true, Linear = LinearStyle.MatMulTransposedWeight,
        WeightData = (key, rows, columns) => new GeneratedTensorData(DataType.Float, rows * columns, StableSeed(key), 0.05f),
    };

    // FNV-1a: string.GetHashCode is randomized per process, and the weights should not be.
    private static ulong StableSeed(string key)
    {
        ulong hash = 14695981039346656037UL;
        foreach (char c in key) hash = (hash ^ c) * 1099511628211UL;
        return hash;
    }

    [Fact]
    public void SparsifyingALlama32_1BSizedModelStaysUnder1_5GB()
    {
        using var dir = new TempDirectory();
        string input = Path.Combine(dir.Path, "in", "model.onnx");
        string output = Path.Combine(dir.Path, "out", "model.onnx");
        var write = Stopwatch.StartNew();
        var (built, _) = TransformerMimic.Build(Llama32_1B);
        using (built) ModelSaver.Save(built, input, new SaveOptions { ExternalData = ExternalDataMode.Always });
        write.Stop();
        long inputBytes = new FileInfo(input + ".data").Length;
        Assert.True(inputBytes >= 4_000_000_000, $"The fixture must hold at least 4 GB of weights, not {inputBytes}.");

        SparsifyReport? report = null;
        SaveResult? saved = null;
        var clock = Stopwatch.StartNew();
        var memory = PeakMemory.Measure(() =>
        {
            using var model = ModelLoader.Load(input);
            var pass = new SparsifyPass(new SparsifyOptions { Sparsity = 0.5 });
            report = pass.Run(model).Report;
            saved = ModelSaver.Save(model, output);
        });
        clock.Stop();

        Assert.Equal(16 * 7, report!.Rewritten.Count);
        Assert.Equal(ProjectionKind.LmHead, Assert.Single(report.Skipped).Kind);
        Assert.True(saved!.ExternalBytes > 4_000_000_000);
        Console.WriteLine($"[large] Llama-3.2-1B dimensions, {inputBytes / 1e9:0.00} GB fp32: input written in {write.Elapsed.TotalSeconds:0.0} s; " +
            $"load + sparsify + save {clock.Elapsed.TotalSeconds:0.0} s, resident memory {memory.BeforeBytes / 1e6:0} MB before, " +
            $"peak {memory.PeakBytes / 1e6:0} MB (+{memory.GrowthBytes / 1e6:0} MB); output {saved.ExternalBytes / 1e9:0.00} GB in {saved.ExternalTensors} tensors");
        if (PeakMemory.IsSupported)
            Assert.True(memory.PeakBytes < PeakLimitBytes, $"Peak resident memory {memory.PeakBytes / 1e6:0} MB (test host included) exceeds 1.5 GB.");

        // The streamed transposes are right: sample a rewritten weight of the output against its source.
        using var source = ModelLoader.Load(input);
        using var result = ModelLoader.Load(output);
        foreach (string name in new[] { "model.layers.0.self_attn.k_proj.weight", "model.layers.15.mlp.down_proj.weight" })
        {
            var nk = source.Graph.Initializers.Find(name)!.ConstValue!;
            var kn = result.Graph.Initializers.Find(name + ".kn")!.ConstValue!;
            Assert.Equal(new[] { nk.Dims[1], nk.Dims[0] }, kn.Dims.ToArray());
            Assert.IsType<ExternalTensorData>(kn.Data);
            using var a = nk.Data.Acquire();
            using var b = kn.Data.Acquire();
            var (n, k) = (nk.Dims[0], nk.Dims[1]);
            var random = new Random(7);
            for (int sample = 0; sample < 10_000; sample++)
            {
                long row = random.NextInt64(n), column = random.NextInt64(k);
                Assert.Equal(a.AsSpan<float>()[(int)(row * k + column)], b.AsSpan<float>()[(int)(column * n + row)]);
            }
        }
    }
}
