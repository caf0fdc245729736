using SparseOnnx.Calibration.Capture;
using SparseOnnx.Calibration.Statistics;
using SparseOnnx.GraphRewriter.Analysis.Projections;
using SparseOnnx.GraphRewriter.Ir;
using SparseOnnx.GraphRewriter.Sparsify;
using SparseOnnx.Pruning.Linear;

namespace SparseOnnx.Pruning.Capture;

/// <summary>What was measured for one layer's MLP neurons over the calibration tokens.</summary>
public sealed class LayerActivations
{
    private readonly string? _samplePath;

    internal LayerActivations(int layer, string downNode, int width, double[] means, double[] norms, double[] standardDeviations, long tokens,
        string? samplePath, int sampledTokens)
    {
        Layer = layer;
        DownNode = downNode;
        Width = width;
        Means = means;
        Norms = norms;
        StandardDeviations = standardDeviations;
        Tokens = tokens;
        _samplePath = samplePath;
        SampledTokens = sampledTokens;
    }

    /// <summary>The layer.</summary>
    public int Layer { get; }
    /// <summary>The down projection's node name.</summary>
    public string DownNode { get; }
    /// <summary>Neurons.</summary>
    public int Width { get; }
    /// <summary>E[h_j] over every calibration token.</summary>
    public double[] Means { get; }
    /// <summary>‖h_j‖₂ = sqrt(Σ_t h_j(t)²) over every calibration token (Wanda's input norm).</summary>
    public double[] Norms { get; }
    /// <summary>The standard deviation of h_j over every calibration token.</summary>
    public double[] StandardDeviations { get; }

    /// <summary>Calibration tokens the means and norms cover.</summary>
    public long Tokens { get; }
    /// <summary>Tokens in the sample (0 when no sample was kept).</summary>
    public int SampledTokens { get; }

    /// <summary>The sampled activations [sampled tokens × Width], read back from the work folder.</summary>
    public RowMatrix ReadSample()
    {
        if (_samplePath is null || SampledTokens == 0) throw new InvalidOperationException($"No activation sample was kept for layer {Layer}.");
        var data = new float[checked(SampledTokens * Width)];
        using (var stream = File.OpenRead(_samplePath))
            stream.ReadExactly(System.Runtime.InteropServices.MemoryMarshal.AsBytes(data.AsSpan()));
        return new RowMatrix(SampledTokens, Width, data);
    }
}

/// <summary>
/// Captures the MLP intermediate activation h (down's input: act(gate)·up, or the GELU output of a GPT-2
/// MLP) of every layer over calibration windows, streaming: the probe (<see cref="ProbeModelBuilder"/> with
/// only down projections, dense settings) exposes h, each batch is reduced into per-neuron sums and sums of
/// squares, and a seeded sample of tokens is appended to one file per layer in the work folder. Memory holds
/// one batch of outputs; the samples are read back one layer at a time.
/// </summary>
public static class MlpActivations
{
    /// <summary>Bytes of captured activations one batch may hold.</summary>
    public const long BatchBudgetBytes = 256L << 20;

    /// <summary>
    /// Runs <paramref name="windows"/> through <paramref name="model"/> (instrumented in place: pass a copy you
    /// do not need) and returns each layer's statistics, with up to <paramref name="sampleTokens"/> sampled tokens
    /// per layer written under <paramref name="workFolder"/> (0: no sample).
    /// </summary>
    public static IReadOnlyList<LayerActivations> Capture(Model model, IReadOnlyList<int[]> windows, int sampleTokens, int seed,
        string workFolder, int threads, IProgress<(int Done, int Total)>? progress = null)
    {
        var layout = ProbeModelBuilder.Instrument(model, new ProbeOptions { Kinds = new HashSet<ProjectionKind> { ProjectionKind.Down }, Mode = SparsityMode.Threshold });
        var groups = layout.Groups.Where(g => g.Layer is not null).ToList();
        using var session = ProbeSession.Open(model, layout, workFolder, threads, "mlp-probe.onnx");
        int length = windows.Count == 0 ? 0 : windows[0].Length;
        long totalTokens = (long)windows.Count * length;
        var sampled = ChooseTokens(totalTokens, sampleTokens, seed);

        var statistics = groups.Select(g => new ChannelMeans(g.InFeatures, squares: true)).ToArray();
        var paths = groups.Select(g => Path.Combine(workFolder, $"mlp-activations.layer{g.Layer}.f32")).ToArray();
        FileStream[] writers = sampled.Length == 0 ? [] : paths.Select(p => new FileStream(p, FileMode.Create, FileAccess.Write, FileShare.None, 1 << 20)).ToArray();
        try
        {
            long bytesPerWindow = Math.Max(1, length * groups.Sum(g => g.InFeatures) * sizeof(float));
            int batchSize = (int)Math.Clamp(BatchBudgetBytes / bytesPerWindow, 1, 16);
            int nextSample = 0;
            session.Run(windows, batchSize, new ProbeSettings(layout), groups.Select(g => g.DenseOutput).ToList(), batch =>
            {
                long first = (long)batch.FirstWindow * length, end = first + (long)batch.Windows * length;
                int sampleStart = nextSample;
                while (nextSample < sampled.Length && sampled[nextSample] < end) nextSample++;
                for (int l = 0; l < groups.Count; l++)
                {
                    var h = batch.Floats(groups[l].DenseOutput);
                    int width = (int)groups[l].InFeatures;
                    statistics[l].Add(h);
                    for (int s = sampleStart; s < nextSample; s++)
                        writers[l].Write(System.Runtime.InteropServices.MemoryMarshal.AsBytes(h.Slice((int)(sampled[s] - first) * width, width)));
                }
            }, done => progress?.Report((done, windows.Count)));
        }
        finally
        {
            foreach (var writer in writers) writer.Dispose();
        }

        return groups.Select((g, l) => new LayerActivations(g.Layer!.Value, g.Members[0].Node, (int)g.InFeatures,
            statistics[l].Means(), statistics[l].Norms(), statistics[l].Variances().Select(Math.Sqrt).ToArray(), totalTokens,
            sampled.Length == 0 ? null : paths[l], sampled.Length)).ToList();
    }

    /// <summary>min(<paramref name="count"/>, <paramref name="total"/>) distinct token indices, ascending, drawn with <paramref name="seed"/>.</summary>
    internal static long[] ChooseTokens(long total, int count, int seed)
    {
        if (count <= 0 || total == 0) return [];
        if (count >= total) return Enumerable.Range(0, (int)total).Select(i => (long)i).ToArray();
        var random = new Random(seed);
        var chosen = new HashSet<long>();
        while (chosen.Count < count) chosen.Add(random.NextInt64(total));
        return chosen.Order().ToArray();
    }
}
