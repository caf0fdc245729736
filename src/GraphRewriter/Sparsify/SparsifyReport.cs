using SparseOnnx.GraphRewriter.Analysis.Projections;
using SparseOnnx.GraphRewriter.Ir;

namespace SparseOnnx.GraphRewriter.Sparsify;

/// <summary>A projection the sparsify pass rewrote.</summary>
/// <param name="Node">The node's name (it keeps it).</param>
/// <param name="GraphPath">Where the node is (<c>main</c> or a subgraph path).</param>
/// <param name="Kind">Its classified kind.</param>
/// <param name="Layer">Its layer, when known.</param>
/// <param name="InFeatures">K.</param>
/// <param name="OutFeatures">N.</param>
/// <param name="DataType">Element type.</param>
/// <param name="K">Entries kept per token, in top-k mode.</param>
/// <param name="Threshold">Magnitude threshold, in threshold mode.</param>
/// <param name="ReplacedOp">What the node was (MatMul, Gemm with its attributes).</param>
/// <param name="Spontaneous">Whether a spontaneous-neuron Add follows it.</param>
/// <param name="SpontaneousCalibrated">Whether that Add's values came from a plan (false: zeros).</param>
/// <param name="Source">Where its k or threshold came from.</param>
public sealed record SparsifiedProjection(string Node, string GraphPath, ProjectionKind Kind, int? Layer, long InFeatures,
    long OutFeatures, DataType DataType, long? K, float? Threshold, string ReplacedOp, bool Spontaneous, bool SpontaneousCalibrated,
    string Source)
{
    /// <summary>k / K in top-k mode; null in threshold mode, where it depends on the input.</summary>
    public double? KeptFraction => K is { } k ? (double)k / InFeatures : null;
}

/// <summary>A projection the pass left dense, and why.</summary>
public sealed record SkippedProjection(string Node, string GraphPath, ProjectionKind Kind, int? Layer, long InFeatures, long OutFeatures, string Reason);

/// <summary>What the sparsify pass did to a model.</summary>
public sealed record SparsifyReport(IReadOnlyList<SparsifiedProjection> Rewritten, IReadOnlyList<SkippedProjection> Skipped)
{
    /// <summary>Weight bytes the rewritten projections hold.</summary>
    public long RewrittenWeightBytes => Rewritten.Sum(p => p.InFeatures * p.OutFeatures * (p.DataType.BitWidth() ?? 0) / 8);
}
