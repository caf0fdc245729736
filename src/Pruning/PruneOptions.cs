using SparseOnnx.Pruning.Decomposition;
using SparseOnnx.Pruning.Importance;

namespace SparseOnnx.Pruning;

/// <summary>How neurons are scored.</summary>
public enum PruneMethod
{
    /// <summary>Key neurons of the layer's functional networks (ICA), one threshold τ across layers.</summary>
    Ica,

    /// <summary>The L2 norm of the weights each neuron owns, the same share from every layer.</summary>
    Magnitude,

    /// <summary>Wanda-sp-like ‖W_down[j, :]‖ · ‖h_j‖ over the calibration tokens, the same share from every layer.</summary>
    Activation,
}

/// <summary>How ICA turns a layer's functional networks into neuron scores.</summary>
public enum IcaScore
{
    /// <summary>The paper's: a neuron's largest |z| over the z-scored spatial maps (key when above τ).</summary>
    Maps,

    /// <summary>
    /// The map score times the neuron's output scale, std(h_j) · ‖W_down[j, :]‖: membership in a network, measured
    /// in what the neuron adds to the residual stream (z-scoring over tokens discards that scale).
    /// </summary>
    Weighted,

    /// <summary>
    /// Decompose the neurons' contributions h_j · ‖W_down[j, :]‖ (centred, not z-scored): PCA and ICA then find the
    /// networks that move the residual stream most; the score is the largest |z| over those maps.
    /// </summary>
    Output,
}

/// <summary>What <see cref="Pruner"/> does.</summary>
public sealed record PruneOptions
{
    /// <summary>Fraction of all MLP neurons to remove (layers kept whole count in the total).</summary>
    public double Ratio { get; init; } = 0.2;

    /// <summary>How neurons are scored.</summary>
    public PruneMethod Method { get; init; } = PruneMethod.Ica;

    /// <summary>How the removals are spread; null: global for ICA, uniform for the baselines.</summary>
    public Allocation? Allocation { get; init; }

    /// <summary>Add the removed neurons' mean contribution to down's output (FLAP-style compensation).</summary>
    public bool Compensation { get; init; } = true;

    /// <summary>Layers kept whole, by number.</summary>
    public IReadOnlySet<int> KeepLayers { get; init; } = new HashSet<int>();

    /// <summary>Keep the first MLP layer whole (the paper keeps the first and the last).</summary>
    public bool KeepFirstLayer { get; init; }

    /// <summary>Keep the last MLP layer whole.</summary>
    public bool KeepLastLayer { get; init; }

    /// <summary>Every pruned layer keeps at least this share of its neurons.</summary>
    public double MinKeptFraction { get; init; } = 0.05;

    /// <summary>Tokens sampled (over all calibration windows) for the ICA decomposition.</summary>
    public int SampleTokens { get; init; } = 8192;

    /// <summary>How ICA scores neurons.</summary>
    public IcaScore IcaScore { get; init; } = IcaScore.Maps;

    /// <summary>The decomposition's settings.</summary>
    public IcaOptions Ica { get; init; } = new();

    /// <summary>ONNX Runtime threads (0: all cores).</summary>
    public int Threads { get; init; }

    /// <summary>The allocation used: <see cref="Allocation"/>, or the method's default.</summary>
    public Allocation EffectiveAllocation => Allocation ?? (Method == PruneMethod.Ica ? Importance.Allocation.Global : Importance.Allocation.Uniform);

    /// <summary>Throws <see cref="ArgumentException"/> for settings that cannot work.</summary>
    public void Validate()
    {
        if (!(Ratio > 0 && Ratio < 1)) throw new ArgumentException($"The pruning ratio must be in (0, 1), not {Ratio}.");
        if (!(MinKeptFraction >= 0 && MinKeptFraction < 1)) throw new ArgumentException($"The kept fraction floor must be in [0, 1), not {MinKeptFraction}.");
        if (Method == PruneMethod.Ica && SampleTokens < 16) throw new ArgumentException($"ICA needs at least 16 sampled tokens, not {SampleTokens}.");
        if (Threads < 0) throw new ArgumentException($"Threads cannot be negative ({Threads}).");
        if (KeepLayers.Any(l => l < 0)) throw new ArgumentException("Layer numbers start at 0.");
        Ica.Validate();
    }
}
