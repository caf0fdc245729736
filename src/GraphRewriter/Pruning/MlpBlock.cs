using SparseOnnx.GraphRewriter.Analysis.Projections;
using SparseOnnx.GraphRewriter.Ir;

namespace SparseOnnx.GraphRewriter.Pruning;

/// <summary>
/// One MLP of a transformer layer, seen as <see cref="Width"/> neurons: neuron j is column j of gate and up
/// (columns j and Width + j of a fused gate_up), the j-th entry of the intermediate activation h = act(gate) · up
/// (act(up) for a plain MLP such as GPT-2's), and row j of down. The block's output is
/// <c>down(h) = Σ_j h_j · W_down[j, :]</c>, so removing a neuron removes one term of that sum.
/// </summary>
public sealed class MlpBlock
{
    internal MlpBlock(Projection down, IReadOnlyList<Projection> feeders, IReadOnlySet<Node> pathNodes)
    {
        Down = down;
        Feeders = feeders;
        PathNodes = pathNodes;
    }

    /// <summary>The down projection; its input is the intermediate activation h [..., Width].</summary>
    public Projection Down { get; }

    /// <summary>The projections that feed h: gate and up, a fused gate_up, or up alone.</summary>
    public IReadOnlyList<Projection> Feeders { get; }

    /// <summary>The nodes between the feeders' outputs and down's input (activation, product, reshapes, split).</summary>
    internal IReadOnlySet<Node> PathNodes { get; }

    /// <summary>The transformer layer.</summary>
    public int Layer => Down.Layer ?? -1;

    /// <summary>Neurons: down's input features.</summary>
    public long Width => Down.InFeatures;

    /// <summary>Down's node name, as reports and plans name the block.</summary>
    public string Name => Down.DisplayName;

    /// <inheritdoc />
    public override string ToString() => $"layer {Layer}: {string.Join("+", Feeders.Select(f => f.Kind.ToShortName()))} -> down [{Width}]";
}

/// <summary>Finds the MLP blocks of a model's main graph, one per layer, in layer order.</summary>
public static class MlpBlocks
{
    private const int TraceBudget = 200;

    /// <summary>
    /// The MLP blocks of <paramref name="model"/> (main graph), and for every down projection that is not a
    /// usable block, why. A block is usable when its down projection has a layer, the feeders are the
    /// classifier's gate/up/gate_up of that layer, and every weight is a constant.
    /// </summary>
    public static (IReadOnlyList<MlpBlock> Blocks, IReadOnlyList<string> Problems) Find(Model model)
    {
        var projections = ProjectionClassifier.Classify(model).Where(p => p.GraphPath == "main").ToList();
        var tracer = new DataFlowTracer(projections);
        var blocks = new List<MlpBlock>();
        var problems = new List<string>();
        foreach (var down in projections.Where(p => p.Kind == ProjectionKind.Down))
        {
            if (down.Layer is null) { problems.Add($"{down.DisplayName}: its layer is not known"); continue; }
            var trace = tracer.TraceBack(down.Input, model.Graph, TraceBudget);
            var feeders = trace.Reached.Keys.OrderBy(p => p.Kind).ToList();
            if (!trace.Complete || feeders.Count == 0 || feeders.Any(f => f.Kind is not (ProjectionKind.Gate or ProjectionKind.Up or ProjectionKind.GateUp)))
            {
                problems.Add($"{down.DisplayName}: the projections feeding it are not an MLP's gate/up");
                continue;
            }
            if (feeders.FirstOrDefault(f => f.OutFeatures != down.InFeatures * (f.Kind == ProjectionKind.GateUp ? 2 : 1)) is { } odd)
            {
                problems.Add($"{down.DisplayName}: {odd.DisplayName} has {odd.OutFeatures} outputs for {down.InFeatures} neurons");
                continue;
            }
            blocks.Add(new MlpBlock(down, feeders, trace.Nodes));
        }
        foreach (var duplicate in blocks.GroupBy(b => b.Layer).Where(g => g.Count() > 1))
            problems.Add($"layer {duplicate.Key} has {duplicate.Count()} MLP blocks");
        return (blocks.OrderBy(b => b.Layer).ToList(), problems);
    }
}
