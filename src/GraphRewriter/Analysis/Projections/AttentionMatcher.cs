using SparseOnnx.GraphRewriter.Ir;

namespace SparseOnnx.GraphRewriter.Analysis.Projections;

/// <summary>One attention computation found in a graph.</summary>
/// <param name="Marker">The Softmax of an explicit attention, or the fused attention node.</param>
/// <param name="Query">The value holding queries (for packed QKV, the packed input).</param>
/// <param name="Key">The value holding keys (null when packed).</param>
/// <param name="Value">The value holding values (null when packed).</param>
/// <param name="Output">Attention's result, before the output projection.</param>
internal sealed record AttentionCore(Node Marker, Value Query, Value? Key, Value? Value, Value Output);

/// <summary>
/// Finds attention computations and assigns q, k, v, qkv and o by structure:
/// <list type="bullet">
/// <item>explicit attention: <c>Softmax(f(MatMul(Q, K)))</c> whose result feeds <c>MatMul(·, V)</c>, where f is a
/// chain of scaling, masking and casts;</item>
/// <item>fused attention ops (GroupQueryAttention, MultiHeadAttention, ONNX Attention) by input position; a
/// GroupQueryAttention without key and value inputs reads packed QKV.</item>
/// </list>
/// A projection that reaches Q (through reshapes, transposes, RoPE, KV-cache concatenation, GQA expansion)
/// without crossing another projection is q; K and V likewise; one that reaches all three through a split
/// is qkv. The o projection is the one reading attention's result through reshapes and transposes only.
/// </summary>
internal static class AttentionMatcher
{
    private const int TraceBudget = 400;

    public static void Match(GraphContext context)
    {
        var graph = context.Graph;
        var tracer = context.Tracer;
        var cores = FindCores(graph);
        context.AttentionCores.AddRange(cores);
        foreach (var core in cores)
        {
            var q = tracer.TraceBack(core.Query, graph, TraceBudget);
            var k = core.Key is null ? null : tracer.TraceBack(core.Key, graph, TraceBudget);
            var v = core.Value is null ? null : tracer.TraceBack(core.Value, graph, TraceBudget);
            if (!q.Complete || k is { Complete: false } || v is { Complete: false }) continue;

            if (k is null || v is null)
            {
                foreach (var p in q.Reached.Keys) Assign(context, p, ProjectionKind.Qkv, core);
            }
            else
            {
                foreach (var p in q.Reached.Keys.Union(k.Reached.Keys).Union(v.Reached.Keys))
                {
                    bool inQ = q.Reached.ContainsKey(p), inK = k.Reached.ContainsKey(p), inV = v.Reached.ContainsKey(p);
                    var kind = (inQ, inK, inV) switch
                    {
                        (true, true, true) => ProjectionKind.Qkv,
                        (true, false, false) => ProjectionKind.Q,
                        (false, true, false) => ProjectionKind.K,
                        (false, false, true) => ProjectionKind.V,
                        _ => ProjectionKind.Unknown,
                    };
                    if (kind == ProjectionKind.Unknown)
                        p.Reason = $"feeds attention {core.Marker} as {(inQ ? "query " : "")}{(inK ? "key " : "")}{(inV ? "value" : "")}".Trim() + ", which is no single role";
                    else
                        Assign(context, p, kind, core);
                }
            }

            var readers = tracer.ConsumersThroughDataMovement(core.Output, TraceBudget);
            if (readers.Count == 1) Assign(context, readers[0], ProjectionKind.O, core);
            else if (readers.Count > 1)
                foreach (var p in readers) p.Reason = $"one of {readers.Count} projections reading attention {core.Marker}'s result";
        }
    }

    private static void Assign(GraphContext context, Projection projection, ProjectionKind kind, AttentionCore core)
    {
        if (projection.KindSource == KindSource.Structure && projection.Kind != kind)
        {
            projection.Kind = ProjectionKind.Unknown;
            projection.KindSource = KindSource.None;
            projection.Reason = $"plays different roles in two attention computations ({kind.ToShortName()} in {core.Marker})";
            return;
        }
        projection.Kind = kind;
        projection.KindSource = KindSource.Structure;
        projection.Reason = null;
        context.CoreOf[projection] = core;
    }

    private static List<AttentionCore> FindCores(Graph graph)
    {
        var cores = new List<AttentionCore>();
        foreach (var node in graph.Nodes)
        {
            if (OpCategories.FusedAttentionRoles(node) is { } roles)
            {
                if (node.InputOrNull(roles.Query) is not { } query || node.Outputs.Count == 0) continue;
                var key = node.InputOrNull(roles.Key);
                var value = node.InputOrNull(roles.Value);
                if ((key is null) != (value is null)) continue;
                cores.Add(new AttentionCore(node, query, key, value, node.Outputs[0]));
            }
            else if (OpCategories.IsSoftmax(node) && node.InputOrNull(0) is { } scores)
            {
                var scoresMatMul = FindScoresMatMul(scores, graph);
                var contextMatMul = FindContextMatMul(node.Outputs[0]);
                if (scoresMatMul is null || contextMatMul is null) continue;
                cores.Add(new AttentionCore(node, scoresMatMul.Inputs[0]!, scoresMatMul.Inputs[1]!, contextMatMul.Inputs[1]!, contextMatMul.Outputs[0]));
            }
        }
        return cores;
    }

    /// <summary>The MatMul of two activations behind Softmax's input, through scaling, masking, softcapping and casts.</summary>
    private static Node? FindScoresMatMul(Value scores, Graph graph)
    {
        var found = new HashSet<Node>();
        var seen = new HashSet<Value>();
        var stack = new Stack<Value>();
        stack.Push(scores);
        int budget = 64;
        while (stack.Count > 0 && budget-- > 0)
        {
            var value = stack.Pop();
            if (!seen.Add(value) || value.Producer is not { } producer || !ReferenceEquals(producer.Graph, graph)) continue;
            if (IsActivationMatMul(producer))
            {
                found.Add(producer);
                continue;
            }
            if (!(OpCategories.IsDataMovement(producer) || OpCategories.IsElementwise(producer))) continue;
            foreach (int i in OpCategories.DataInputs(producer))
                if (producer.InputOrNull(i) is { } input && ProjectionFinder.ConstantTensor(input) is null) stack.Push(input);
        }
        return found.Count == 1 ? found.First() : null;
    }

    /// <summary>The MatMul that multiplies the attention probabilities by V.</summary>
    private static Node? FindContextMatMul(Value probabilities)
    {
        var queue = new Queue<Value>();
        queue.Enqueue(probabilities);
        var seen = new HashSet<Value>();
        while (queue.Count > 0 && seen.Count < 16)
        {
            var value = queue.Dequeue();
            if (!seen.Add(value)) continue;
            foreach (var use in value.Uses)
            {
                if (IsActivationMatMul(use.Node) && use.InputIndex == 0) return use.Node;
                if (use.Node.IsStandardDomain && use.Node.OpType is "Cast" or "Dropout" or "Identity" or "Where" or "Reshape")
                    foreach (var output in use.Node.Outputs) queue.Enqueue(output);
            }
        }
        return null;
    }

    private static bool IsActivationMatMul(Node node) =>
        node.Is("MatMul") && node.Inputs.Count == 2 && node.Inputs[0] is { } a && node.Inputs[1] is { } b
        && ProjectionFinder.ConstantTensor(a) is null && ProjectionFinder.ConstantTensor(b) is null;
}
