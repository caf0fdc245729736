using SparseOnnx.GraphRewriter.Ir;

namespace SparseOnnx.GraphRewriter.Autodiff;

/// <summary>What to differentiate: the parameters (float32 graph inputs) and the seeds (a value and the gradient of the loss with respect to it).</summary>
public sealed record GradientRequest(IReadOnlyList<Value> Parameters, IReadOnlyList<(Value Value, Value Gradient)> Seeds);

/// <summary>
/// Reverse-mode differentiation of an ONNX graph, written as more ONNX: appends to the model's main graph the
/// nodes that compute dLoss/dp for every parameter p, given the seeds dLoss/dv for some values v (the logits,
/// say). The result runs in ONNX Runtime like any model, so the gradients come from the same kernels that
/// serve the forward pass.
/// <para>
/// Only what lies on a path from a parameter to a seed is differentiated: values are active when they are
/// float32 and depend on a parameter (forward sweep over <see cref="ElementTypes"/>), and needed when a seed
/// depends on them (backward sweep). Integer and bool values cut the path, so masks, positions and shape
/// arithmetic need no rules. Every node on the path needs a rule (<see cref="GradientRules"/>); the first one
/// without a rule is named in an <see cref="UnsupportedGradientException"/>.
/// </para>
/// <para>
/// Contract: the forward nodes are left unchanged; the returned values are the gradients (not yet graph
/// outputs); a parameter the seeds do not depend on gets a zero gradient. Needs ONNX opset 13 or newer,
/// where Reduce/Squeeze/Unsqueeze take their axes as inputs and Softmax normalises one axis.
/// </para>
/// </summary>
public static class GradientGraphBuilder
{
    /// <summary>Name prefix of everything the backward graph adds.</summary>
    public const string Prefix = "sparseonnx.grad.";

    /// <summary>Appends the backward graph for <paramref name="request"/> to <paramref name="model"/>; returns each parameter's gradient.</summary>
    public static IReadOnlyDictionary<Value, Value> Build(Model model, GradientRequest request)
    {
        long opset = model.OpsetImports[""] ?? 0; // the indexer treats "" and "ai.onnx" as one domain
        if (opset < 13) throw new UnsupportedGradientException($"the model imports ONNX opset {opset}; differentiation needs opset 13 or newer");
        var graph = model.Graph;
        foreach (var p in request.Parameters)
        {
            if (!graph.Inputs.Contains(p)) throw new ArgumentException($"Parameter '{p.Name}' is not an input of the main graph.", nameof(request));
            if (p.ElementType != DataType.Float) throw new ArgumentException($"Parameter '{p.Name}' is not float32.", nameof(request));
        }

        var types = ElementTypes.Infer(graph);
        var order = graph.TopologicalOrder();
        var active = ForwardSweep(order, request.Parameters, types);
        foreach (var (value, _) in request.Seeds)
            if (!active.Contains(value)) throw new UnsupportedGradientException($"the loss seed '{value.Name}' does not depend on any parameter through float32 operations");
        var needed = BackwardSweep(order, active, request.Seeds.Select(s => s.Value));

        var emit = new GradientEmitter(model, Prefix, opset);
        var contributions = new Dictionary<Value, List<Value>>();
        void Contribute(Value value, Value gradient)
        {
            if (!contributions.TryGetValue(value, out var list)) contributions[value] = list = new List<Value>();
            list.Add(gradient);
        }
        Value? Total(Value value) => contributions.TryGetValue(value, out var list)
            ? list.Count == 1 ? list[0] : emit.Op("Sum", list.ToArray())
            : null;

        foreach (var (value, gradient) in request.Seeds) Contribute(value, gradient);
        for (int n = order.Count - 1; n >= 0; n--)
        {
            var node = order[n];
            if (!node.Outputs.Any(needed.Contains)) continue;
            var outputGradients = node.Outputs.Select(o => needed.Contains(o) ? Total(o) : null).ToArray();
            if (outputGradients.All(g => g is null)) continue;
            if (node.Subgraphs.Any())
                throw UnsupportedGradientException.For(node, "control flow (If, Loop, Scan) on the path from the parameters to the loss is not differentiated");
            var rule = GradientRules.For(node) ?? throw UnsupportedGradientException.For(node,
                $"no gradient rule for {(node.IsStandardDomain ? "" : node.Domain + ".")}{node.OpType}; rules exist for {string.Join(", ", GradientRules.Supported.Order())}");
            var wanted = node.Inputs.Select(i => i is not null && needed.Contains(i)).ToArray();
            var inputGradients = rule(emit, node, outputGradients, wanted);
            for (int i = 0; i < wanted.Length; i++)
            {
                if (!wanted[i]) continue;
                Contribute(node.Inputs[i]!, inputGradients[i] ?? throw new InvalidOperationException($"The {node.OpType} rule gave no gradient for input {i} of '{node.Name}'."));
            }
        }
        return request.Parameters.Distinct().ToDictionary(p => p, p => Total(p) ?? emit.ZerosLike(p));
    }

    private static HashSet<Value> ForwardSweep(IReadOnlyList<Node> order, IEnumerable<Value> parameters, Dictionary<Value, DataType> types)
    {
        var active = new HashSet<Value>(parameters);
        foreach (var node in order)
        {
            if (!node.Inputs.Concat(node.ImplicitInputs()).Any(i => i is not null && active.Contains(i))) continue;
            foreach (var output in node.Outputs)
                if (types.TryGetValue(output, out var type) && type == DataType.Float) active.Add(output);
        }
        return active;
    }

    private static HashSet<Value> BackwardSweep(IReadOnlyList<Node> order, HashSet<Value> active, IEnumerable<Value> seeds)
    {
        var needed = new HashSet<Value>(seeds);
        for (int n = order.Count - 1; n >= 0; n--)
        {
            var node = order[n];
            if (!node.Outputs.Any(needed.Contains)) continue;
            foreach (var input in node.Inputs.Concat(node.ImplicitInputs()))
                if (input is not null && active.Contains(input)) needed.Add(input);
        }
        return needed;
    }
}
