using SparseOnnx.GraphRewriter.Ir;

namespace SparseOnnx.GraphRewriter.Analysis.Projections;

/// <summary>
/// Numbers transformer blocks by data dependence rather than by name. Attention computations are totally
/// ordered along the residual stream (block l + 1 reads what block l wrote), so an attention computation's
/// layer is the number of attention computations upstream of it. An MLP belongs to the block of the first
/// attention downstream of it, minus one, which holds for sequential and for parallel (GPT-J style) blocks;
/// the last MLP belongs to the last block. A model without attention numbers its MLPs in order.
/// </summary>
internal static class LayerAssigner
{
    public static void Assign(GraphContext context)
    {
        IReadOnlyList<Node> order;
        try
        {
            order = context.Graph.TopologicalOrder();
        }
        catch (InvalidModelException)
        {
            return; // a cyclic graph has no block order; kinds stay, layers stay unknown
        }

        var markers = context.AttentionCores.Count > 0
            ? context.AttentionCores.Select(c => c.Marker).ToHashSet()
            : context.Projections.Where(p => p.Kind == ProjectionKind.Down).Select(p => p.Node).ToHashSet();
        if (markers.Count == 0) return;

        var producersOf = order.ToDictionary(n => n, n => Producers(n, context.Graph).ToList());
        var depth = new Dictionary<Node, int>();
        foreach (var node in order)
            depth[node] = producersOf[node].Select(p => depth.GetValueOrDefault(p)).DefaultIfEmpty(0).Max() + (markers.Contains(node) ? 1 : 0);

        var consumersOf = order.ToDictionary(n => n, _ => new List<Node>());
        foreach (var node in order)
            foreach (var producer in producersOf[node])
                consumersOf[producer].Add(node);
        var firstMarkerBelow = new Dictionary<Node, int>();
        for (int i = order.Count - 1; i >= 0; i--)
        {
            var node = order[i];
            int best = int.MaxValue;
            foreach (var consumer in consumersOf[node])
                best = Math.Min(best, markers.Contains(consumer) ? depth[consumer] : firstMarkerBelow[consumer]);
            firstMarkerBelow[node] = best;
        }

        bool attentionMarkers = context.AttentionCores.Count > 0;
        foreach (var projection in context.Projections)
        {
            if (context.CoreOf.TryGetValue(projection, out var core))
            {
                projection.Layer = depth[core.Marker] - 1;
            }
            else if (context.DownOf.TryGetValue(projection, out var down))
            {
                if (!attentionMarkers) projection.Layer = depth[down.Node] - 1;
                else if (firstMarkerBelow[down.Node] != int.MaxValue) projection.Layer = firstMarkerBelow[down.Node] - 2;
                else projection.Layer = markers.Count - 1;
                if (projection.Layer < 0) projection.Layer = null;
            }
        }
    }

    /// <summary>Nodes of this graph whose outputs <paramref name="node"/> reads, directly or from its subgraphs.</summary>
    private static IEnumerable<Node> Producers(Node node, Graph graph)
    {
        var seen = new HashSet<Node>();
        foreach (var input in node.Inputs.Concat(node.ImplicitInputs()))
            if (input?.Producer is { } p && ReferenceEquals(p.Graph, graph) && seen.Add(p))
                yield return p;
    }
}
