using SparseOnnx.GraphRewriter.Ir;

namespace SparseOnnx.GraphRewriter.Analysis.Projections;

/// <summary>What the matchers know about one graph while classifying its projections.</summary>
internal sealed class GraphContext
{
    public GraphContext(Graph graph, string path, List<Projection> projections)
    {
        Graph = graph;
        Path = path;
        Projections = projections;
        Tracer = new DataFlowTracer(projections);
    }

    public Graph Graph { get; }

    public string Path { get; }

    /// <summary>The projections of this graph, in node order.</summary>
    public List<Projection> Projections { get; }

    public DataFlowTracer Tracer { get; }

    /// <summary>Attention computations, in node order.</summary>
    public List<AttentionCore> AttentionCores { get; } = new();

    /// <summary>The attention computation each q/k/v/qkv/o projection belongs to.</summary>
    public Dictionary<Projection, AttentionCore> CoreOf { get; } = new();

    /// <summary>The down projection of the MLP each gate/up/gate_up/down projection belongs to.</summary>
    public Dictionary<Projection, Projection> DownOf { get; } = new();

    public IEnumerable<Projection> Unclassified => Projections.Where(p => p.KindSource == KindSource.None);
}
