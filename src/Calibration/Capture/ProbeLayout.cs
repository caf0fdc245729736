using SparseOnnx.GraphRewriter.Analysis.Projections;
using SparseOnnx.GraphRewriter.Ir;
using SparseOnnx.GraphRewriter.Sparsify;

namespace SparseOnnx.Calibration.Capture;

/// <summary>A projection of the probe model, with the input that feeds its compensation vector.</summary>
public sealed class ProbeProjection
{
    internal ProbeProjection(Projection projection, string compensationInput)
    {
        Node = projection.DisplayName;
        GraphPath = projection.GraphPath;
        Kind = projection.Kind;
        Layer = projection.Layer;
        InFeatures = projection.InFeatures;
        OutFeatures = projection.OutFeatures;
        Weight = projection.Weight.ConstValue ?? throw new InvalidOperationException($"The weight of {projection.DisplayName} is not a constant.");
        WeightStoredTransposed = projection.WeightStoredTransposed;
        CompensationInput = compensationInput;
    }

    /// <summary>The projection's node name, as plans name it.</summary>
    public string Node { get; }
    /// <summary>The graph path of the node.</summary>
    public string GraphPath { get; }
    /// <summary>The projection's role.</summary>
    public ProjectionKind Kind { get; }
    /// <summary>Its layer, when known.</summary>
    public int? Layer { get; }
    /// <summary>K.</summary>
    public long InFeatures { get; }
    /// <summary>N.</summary>
    public long OutFeatures { get; }
    /// <summary>The weight tensor ([K, N], or [N, K] when <see cref="WeightStoredTransposed"/>).</summary>
    public Tensor Weight { get; }
    /// <summary>True when <see cref="Weight"/> is stored [N, K].</summary>
    public bool WeightStoredTransposed { get; }
    /// <summary>Probe input [N] added to the projection's output (zeros when not compensating).</summary>
    public string CompensationInput { get; }
}

/// <summary>
/// Projections that read the same input (q/k/v after the attention norm, gate/up after the MLP norm) share
/// one selection: the sparsifier runs once on the shared input, as TopKSparseMatMul would on each of them
/// with the same setting, so the group is allocated one sparsity.
/// </summary>
public sealed class ProbeGroup
{
    internal ProbeGroup(int index, string id, int? layer, IReadOnlyList<ProbeProjection> members, long inFeatures,
        string selectionInput, string denseOutput, string sparseOutput, string keptFractionOutput)
    {
        Index = index;
        Id = id;
        Layer = layer;
        Members = members;
        InFeatures = inFeatures;
        SelectionInput = selectionInput;
        DenseOutput = denseOutput;
        SparseOutput = sparseOutput;
        KeptFractionOutput = keptFractionOutput;
    }

    /// <summary>Position in <see cref="ProbeLayout.Groups"/>.</summary>
    public int Index { get; }
    /// <summary>A readable id such as <c>layer3.qkv</c>.</summary>
    public string Id { get; }
    /// <summary>The layer of the projections, when known.</summary>
    public int? Layer { get; }
    /// <summary>The projections reading the shared input.</summary>
    public IReadOnlyList<ProbeProjection> Members { get; }
    /// <summary>K of the shared input.</summary>
    public long InFeatures { get; }
    /// <summary>Weights the group reads when dense: Σ K·N over its members; sparsity is averaged with this weight.</summary>
    public long Parameters => Members.Sum(m => m.InFeatures * m.OutFeatures);
    /// <summary>Probe input: the threshold (float scalar) in threshold mode, k (int64 [1]) in top-k mode.</summary>
    public string SelectionInput { get; }
    /// <summary>Probe output: the shared input x before the sparsifier, [..., K].</summary>
    public string DenseOutput { get; }
    /// <summary>Probe output: S(x), what the projections read, [..., K].</summary>
    public string SparseOutput { get; }
    /// <summary>Probe output: the fraction of entries S kept (float scalar).</summary>
    public string KeptFractionOutput { get; }
    /// <summary>The kinds joined, e.g. <c>q+k+v</c>.</summary>
    public string KindsName => string.Join("+", Members.Select(m => m.Kind.ToShortName()));
}

/// <summary>What <see cref="ProbeModelBuilder"/> added to a model: the sparsifier of each group and where the blocks end.</summary>
public sealed class ProbeLayout
{
    internal ProbeLayout(SparsityMode mode, IReadOnlyList<ProbeGroup> groups, IReadOnlyDictionary<int, string> blockOutputs, string? blockOutputProblem)
    {
        Mode = mode;
        Groups = groups;
        BlockOutputs = blockOutputs;
        BlockOutputProblem = blockOutputProblem;
    }

    /// <summary>How the probe's sparsifiers select: by threshold or top-k.</summary>
    public SparsityMode Mode { get; }
    /// <summary>The groups, in layer order.</summary>
    public IReadOnlyList<ProbeGroup> Groups { get; }
    /// <summary>Per layer, the probe output holding the block's output (the residual stream after its MLP).</summary>
    public IReadOnlyDictionary<int, string> BlockOutputs { get; }
    /// <summary>
    /// Per layer, the residual stream entering the block (the other input of the Add after its attention output):
    /// with <see cref="BlockOutputs"/>, where a block is cut out of the model for sequential calibration.
    /// </summary>
    public IReadOnlyDictionary<int, string> BlockInputs { get; init; } = new Dictionary<int, string>();
    /// <summary>Why <see cref="BlockOutputs"/> misses layers, or null when every layer has one.</summary>
    public string? BlockOutputProblem { get; }
    /// <summary>The layers with groups, ascending.</summary>
    public IReadOnlyList<int> Layers => Groups.Where(g => g.Layer is not null).Select(g => g.Layer!.Value).Distinct().Order().ToArray();
    /// <summary>Every projection, in group order.</summary>
    public IEnumerable<ProbeProjection> Projections => Groups.SelectMany(g => g.Members);
}
