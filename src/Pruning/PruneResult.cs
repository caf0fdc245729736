using SparseOnnx.GraphRewriter.Ir;
using SparseOnnx.Pruning.Decomposition;

namespace SparseOnnx.Pruning;

/// <summary>What happened to one layer's MLP.</summary>
/// <param name="Layer">The layer.</param>
/// <param name="DownNode">Its down projection's node.</param>
/// <param name="Width">Neurons before.</param>
/// <param name="Kept">Neurons after.</param>
/// <param name="KeptWhole">True when the layer was excluded from pruning (--keep-layers).</param>
/// <param name="Compensated">True when a compensation vector was added.</param>
/// <param name="Networks">The ICA decomposition (ICA method, pruned layers only).</param>
public sealed record LayerPruning(int Layer, string DownNode, int Width, int Kept, bool KeptWhole, bool Compensated, LayerNetworks? Networks);

/// <summary>The result of <see cref="Pruner.Run"/>: the pruned model (in memory; the caller saves and disposes it) and the report.</summary>
public sealed class PruneResult : IDisposable
{
    internal PruneResult(Model model, PruneOptions options, IReadOnlyList<LayerPruning> layers, double? threshold, long parametersBefore,
        long parametersAfter, long tokens, int sampledTokens, TimeSpan captureTime, TimeSpan decompositionTime, TimeSpan elapsed)
    {
        Model = model;
        Options = options;
        Layers = layers;
        Threshold = threshold;
        ParametersBefore = parametersBefore;
        ParametersAfter = parametersAfter;
        Tokens = tokens;
        SampledTokens = sampledTokens;
        CaptureTime = captureTime;
        DecompositionTime = decompositionTime;
        Elapsed = elapsed;
    }

    /// <summary>The pruned model.</summary>
    public Model Model { get; }
    /// <summary>The options it was pruned with.</summary>
    public PruneOptions Options { get; }
    /// <summary>Every MLP layer, in order.</summary>
    public IReadOnlyList<LayerPruning> Layers { get; }
    /// <summary>ICA with global allocation: τ, the largest removed neuron score.</summary>
    public double? Threshold { get; }
    /// <summary>Parameters (initializer elements) before.</summary>
    public long ParametersBefore { get; }
    /// <summary>Parameters after (compensation vectors included).</summary>
    public long ParametersAfter { get; }
    /// <summary>Calibration tokens captured.</summary>
    public long Tokens { get; }
    /// <summary>Tokens sampled for ICA (0 for the baselines).</summary>
    public int SampledTokens { get; }
    /// <summary>Time running the model over the calibration text.</summary>
    public TimeSpan CaptureTime { get; }
    /// <summary>Time in the decompositions (ICA) or scoring.</summary>
    public TimeSpan DecompositionTime { get; }
    /// <summary>Total time.</summary>
    public TimeSpan Elapsed { get; }
    /// <summary>MLP neurons before.</summary>
    public long NeuronsBefore => Layers.Sum(l => (long)l.Width);
    /// <summary>MLP neurons after.</summary>
    public long NeuronsAfter => Layers.Sum(l => (long)l.Kept);

    /// <inheritdoc />
    public void Dispose() => Model.Dispose();
}
