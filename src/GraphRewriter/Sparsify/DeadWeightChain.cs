using SparseOnnx.GraphRewriter.Ir;

namespace SparseOnnx.GraphRewriter.Sparsify;

/// <summary>
/// Removes what fed a weight input once nothing reads it any more: Identity, Transpose and Constant nodes
/// whose outputs are all unused, and then initializers left without readers. Anything still read elsewhere
/// (a tied embedding table, a weight shared with another branch) stays.
/// </summary>
internal static class DeadWeightChain
{
    public static void Remove(Value value, Model model)
    {
        if (value.Uses.Count > 0 || value.IsGraphOutput) return;
        if (value.Producer is { } node)
        {
            if (!(node.Is("Identity") || node.Is("Transpose") || node.Is("Constant"))) return;
            if (node.Outputs.Any(o => o.Uses.Count > 0 || o.IsGraphOutput)) return;
            var inputs = node.Inputs.ToArray();
            var graph = node.Graph!;
            graph.Nodes.Remove(node);
            foreach (var output in node.Outputs) graph.ValueInfo.Remove(output);
            foreach (var input in inputs)
                if (input is not null) Remove(input, model);
        }
        else if (value.IsInitializer && !value.IsGraphInput && value.Graph is { } owner && !IsTrainingBound(value, model))
        {
            owner.Initializers.Remove(value);
            owner.ValueInfo.Remove(value);
        }
    }

    // Training bindings refer to initializers by name; such an initializer must stay even when unread.
    private static bool IsTrainingBound(Value value, Model model) =>
        model.TrainingInfo.Any(t => t.InitializationBinding.Concat(t.UpdateBinding).Any(b => b.Key == value.Name));
}
