using SparseOnnx.GraphRewriter.Analysis.Projections;

namespace SparseOnnx.GraphRewriter.Sparsify;

/// <summary>How TopKSparseMatMul chooses the input entries it keeps.</summary>
public enum SparsityMode
{
    /// <summary>Keep the k entries of largest magnitude per token (attribute <c>k</c>).</summary>
    TopK,

    /// <summary>Keep the entries whose magnitude exceeds a threshold (attribute <c>threshold</c>).</summary>
    Threshold,
}

/// <summary>What <see cref="SparsifyPass"/> rewrites and with which settings.</summary>
public sealed record SparsifyOptions
{
    /// <summary>The kinds rewritten by default: every attention and MLP projection, never the output head.</summary>
    public static IReadOnlySet<ProjectionKind> DefaultKinds { get; } = new HashSet<ProjectionKind>
    {
        ProjectionKind.Q, ProjectionKind.K, ProjectionKind.V, ProjectionKind.O, ProjectionKind.Gate, ProjectionKind.Up,
        ProjectionKind.Down, ProjectionKind.Qkv, ProjectionKind.GateUp,
    };

    /// <summary>Selection mode of the uniform setting (<see cref="Sparsity"/> or <see cref="Threshold"/>).</summary>
    public SparsityMode Mode { get; init; } = SparsityMode.TopK;

    /// <summary>
    /// Uniform sparsity for <see cref="SparsityMode.TopK"/>: the fraction of input entries dropped, in [0, 1).
    /// Each projection keeps k = round((1 − sparsity) · K) entries, at least 1. A plan's per-projection k wins.
    /// </summary>
    public double? Sparsity { get; init; }

    /// <summary>Uniform magnitude threshold for <see cref="SparsityMode.Threshold"/>. A plan's per-projection threshold wins.</summary>
    public float? Threshold { get; init; }

    /// <summary>The projection kinds to rewrite (default <see cref="DefaultKinds"/>; add <c>LmHead</c> or <c>Unknown</c> explicitly).</summary>
    public IReadOnlySet<ProjectionKind> Kinds { get; init; } = DefaultKinds;

    /// <summary>Inject the spontaneous-neuron Add after every rewritten projection (default true).</summary>
    public bool SpontaneousNeurons { get; init; } = true;

    /// <summary>
    /// Quantize float projections into TopKSparseMatMulNBits (RTN, blocks along K) instead of writing the float
    /// TopKSparseMatMul; null keeps float weights. MatMulNBits projections always become TopKSparseMatMulNBits
    /// with their own weights, whatever this says.
    /// </summary>
    public WeightQuantization? Quantization { get; init; }

    /// <summary>Per-projection k or threshold and calibrated spontaneous values (from the calibration pass).</summary>
    public SparsityPlan? Plan { get; init; }

    /// <summary>Throws <see cref="ArgumentException"/> for contradictory or out-of-range settings.</summary>
    public void Validate()
    {
        if (Sparsity is { } s && !(s >= 0 && s < 1))
            throw new ArgumentException($"Sparsity must be in [0, 1) (the fraction of input entries dropped), not {s}.");
        if (Threshold is { } t && !(t >= 0 && float.IsFinite(t)))
            throw new ArgumentException($"The threshold must be a finite number ≥ 0, not {t}.");
        if (Mode == SparsityMode.TopK && Threshold is not null)
            throw new ArgumentException("A threshold was given in top-k mode; use threshold mode, or give a sparsity.");
        if (Mode == SparsityMode.Threshold && Sparsity is not null)
            throw new ArgumentException(
                "Threshold mode cannot turn a sparsity into thresholds without calibration: give a threshold, or a plan with " +
                "per-projection thresholds, or use top-k mode.");
        if (Sparsity is null && Threshold is null && Plan is null)
            throw new ArgumentException(Mode == SparsityMode.TopK
                ? "Nothing says how sparse to make the projections: give a sparsity or a plan."
                : "Nothing says how sparse to make the projections: give a threshold or a plan.");
        if (Kinds.Count == 0) throw new ArgumentException("No projection kinds selected.");
        Quantization?.Validate();
    }

    /// <summary>k for a projection with <paramref name="inFeatures"/> inputs at <paramref name="sparsity"/>: round((1 − s) · K), clamped to [1, K].</summary>
    public static long KeptEntries(double sparsity, long inFeatures) =>
        Math.Clamp((long)Math.Round((1 - sparsity) * inFeatures, MidpointRounding.AwayFromZero), 1, inFeatures);
}
