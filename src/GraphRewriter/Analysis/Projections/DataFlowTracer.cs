using SparseOnnx.GraphRewriter.Ir;

namespace SparseOnnx.GraphRewriter.Analysis.Projections;

/// <summary>
/// Follows activations through the transparent ops of one graph (<see cref="OpCategories"/>), stopping at
/// projections. Every trace has a node budget: a structural pattern (attention, MLP) is local, so a trace
/// that runs long has left the pattern (e.g. walked up the residual stream) and its answer is not used.
/// </summary>
internal sealed class DataFlowTracer
{
    private readonly Dictionary<Value, Projection> _byOutput = new();
    private readonly Dictionary<Node, Projection> _byInputNode = new();

    public DataFlowTracer(IEnumerable<Projection> projections)
    {
        foreach (var p in projections)
        {
            _byOutput[p.Output] = p;
            _byInputNode[p.Node] = p;
        }
    }

    /// <summary>The projection whose result <paramref name="value"/> is, if any.</summary>
    public Projection? ProducedBy(Value value) => _byOutput.GetValueOrDefault(value);

    /// <summary>The projection whose MatMul/Gemm is <paramref name="node"/>, if any.</summary>
    public Projection? ProjectionAt(Node node) => _byInputNode.GetValueOrDefault(node);

    /// <summary>The result of a backward trace.</summary>
    /// <param name="Reached">Projections reached, each with whether some path from it passed through an activation.</param>
    /// <param name="Nodes">The transparent nodes passed through.</param>
    /// <param name="Complete">False when the budget ran out (the trace left the local pattern).</param>
    public sealed record BackwardTrace(IReadOnlyDictionary<Projection, bool> Reached, IReadOnlySet<Node> Nodes, bool Complete);

    /// <summary>
    /// Walks back from <paramref name="start"/> through transparent ops of <paramref name="graph"/> (data inputs
    /// only) and records every projection it reaches without passing through another one.
    /// </summary>
    public BackwardTrace TraceBack(Value start, Graph graph, int budget)
    {
        var reached = new Dictionary<Projection, bool>();
        var nodes = new HashSet<Node>();
        var seen = new HashSet<(Value, bool)>();
        var stack = new Stack<(Value Value, bool ThroughActivation)>();
        stack.Push((start, false));
        while (stack.Count > 0)
        {
            var (value, throughActivation) = stack.Pop();
            if (!seen.Add((value, throughActivation))) continue;
            if (_byOutput.TryGetValue(value, out var projection))
            {
                reached[projection] = reached.GetValueOrDefault(projection) || throughActivation;
                continue;
            }
            var producer = value.Producer;
            if (producer is null || !ReferenceEquals(producer.Graph, graph)) continue;
            var inputs = OpCategories.DataInputs(producer).ToList();
            if (inputs.Count == 0) continue;
            nodes.Add(producer);
            if (nodes.Count > budget) return new BackwardTrace(reached, nodes, Complete: false);
            bool activation = throughActivation || OpCategories.IsActivation(producer);
            foreach (int i in inputs)
                if (producer.InputOrNull(i) is { } input && ProjectionFinder.ConstantTensor(input) is null)
                    stack.Push((input, activation));
        }
        return new BackwardTrace(reached, nodes, Complete: true);
    }

    /// <summary>
    /// Walks forward from <paramref name="start"/> through data-movement ops only and returns the projections
    /// that read the result as their activation input.
    /// </summary>
    public List<Projection> ConsumersThroughDataMovement(Value start, int budget)
    {
        var found = new List<Projection>();
        WalkForward(start, budget, use =>
        {
            if (_byInputNode.TryGetValue(use.Node, out var projection) && use.InputIndex == 0)
            {
                if (!found.Contains(projection)) found.Add(projection);
                return false;
            }
            return OpCategories.IsDataMovement(use.Node);
        }, _ => false);
        return found;
    }

    /// <summary>
    /// True when <paramref name="start"/> reaches an output of its graph through transparent ops, without
    /// passing another projection.
    /// </summary>
    public bool ReachesGraphOutput(Value start, int budget) =>
        WalkForward(start, budget,
            use => !_byInputNode.ContainsKey(use.Node) && (OpCategories.IsDataMovement(use.Node) || OpCategories.IsElementwise(use.Node)),
            value => value.IsGraphOutput);

    /// <summary>
    /// Breadth-first walk over values downstream of <paramref name="start"/>: a use is followed (to all its node's
    /// outputs) when <paramref name="follow"/> says so and the use is a data input. Returns true as soon as
    /// <paramref name="stop"/> holds for a visited value; false when the walk ends or the budget runs out.
    /// </summary>
    private static bool WalkForward(Value start, int budget, Func<Use, bool> follow, Func<Value, bool> stop)
    {
        var seen = new HashSet<Value>();
        var queue = new Queue<Value>();
        queue.Enqueue(start);
        int visited = 0;
        while (queue.Count > 0 && visited++ < budget)
        {
            var value = queue.Dequeue();
            if (!seen.Add(value)) continue;
            if (stop(value)) return true;
            foreach (var use in value.Uses)
                if (follow(use) && OpCategories.IsDataInput(use.Node, use.InputIndex))
                    foreach (var output in use.Node.Outputs) queue.Enqueue(output);
        }
        return false;
    }
}
