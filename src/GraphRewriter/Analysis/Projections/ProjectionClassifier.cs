using SparseOnnx.GraphRewriter.Ir;

namespace SparseOnnx.GraphRewriter.Analysis.Projections;

/// <summary>How the classifier may use names.</summary>
public sealed record ClassifierOptions
{
    /// <summary>Fall back on node and weight names when the structure is not conclusive (default true).</summary>
    public bool UseNameHints { get; init; } = true;
}

/// <summary>
/// Finds every dense projection of a model and classifies it (q, k, v, o, gate, up, down, qkv, gate_up,
/// lm_head) with its transformer layer, by graph structure first and by names only as a fallback. Runs on
/// the main graph and on every subgraph (If branches of merged decoders, Loop and Scan bodies); a weight
/// shared by two branches appears once per branch. Model-local function bodies are not analysed.
/// </summary>
public static class ProjectionClassifier
{
    /// <summary>Classifies every projection of <paramref name="model"/>, in graph order.</summary>
    public static IReadOnlyList<Projection> Classify(Model model, ClassifierOptions? options = null)
    {
        options ??= new ClassifierOptions();
        var all = new List<Projection>();
        foreach (var (graph, path) in GraphsWithPaths(model.Graph, "main"))
        {
            var context = new GraphContext(graph, path, ProjectionFinder.Find(graph, path));
            if (context.Projections.Count == 0) continue;
            AttentionMatcher.Match(context);
            MlpMatcher.Match(context);
            LmHeadMatcher.Match(context);
            LayerAssigner.Assign(context);
            if (options.UseNameHints) NameHints.Apply(context);
            foreach (var p in context.Projections)
                if (p.Kind == ProjectionKind.Unknown && p.Reason is null)
                    p.Reason = "no attention, MLP or output-head pattern around it";
            all.AddRange(context.Projections);
        }
        return all;
    }

    /// <summary>A graph and its nested subgraphs, each with a readable path.</summary>
    public static IEnumerable<(Graph Graph, string Path)> GraphsWithPaths(Graph graph, string path)
    {
        yield return (graph, path);
        foreach (var node in graph.Nodes)
        {
            string label = string.IsNullOrEmpty(node.Name) ? node.OpType : node.Name;
            foreach (var attribute in node.Attributes)
            {
                var subgraphs = attribute.Subgraphs.ToList();
                for (int i = 0; i < subgraphs.Count; i++)
                {
                    string subPath = $"{path}/{label}/{attribute.Name}{(attribute.Kind == AttributeKind.Graphs ? $"[{i}]" : "")}";
                    foreach (var nested in GraphsWithPaths(subgraphs[i], subPath)) yield return nested;
                }
            }
        }
    }
}
