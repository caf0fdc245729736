namespace SparseOnnx.GraphRewriter.Ir;

/// <summary>
/// Inserts a node after a value so that it takes the value's place: every reader of the value (node inputs
/// in any graph, graph outputs) reads the new node's output instead, and that output takes over the
/// value's name. Names are the interface of a model (graph outputs such as <c>logits</c> and
/// <c>present.0.key</c>, tensors a host fetches by name), so a rewrite that appends an operation keeps
/// them; the displaced value gets a new name.
/// </summary>
public static class Splice
{
    /// <summary>
    /// Inserts <c>opType(value, otherInputs...)</c> right after the node producing <paramref name="value"/>
    /// and returns the new node. Its output is named as <paramref name="value"/> was and has its type;
    /// <paramref name="value"/> is renamed from <paramref name="displacedNameHint"/> through
    /// <see cref="Model.UniqueName"/>. Both values are declared in the graph's value_info when their type
    /// is known (graph outputs are declared by the output list instead).
    /// </summary>
    public static Node After(Model model, Value value, string opType, IEnumerable<Value?> otherInputs, string nodeNameHint,
        string displacedNameHint)
    {
        var producer = value.Producer ?? throw new InvalidOperationException($"Value '{value.Name}' is not a node output.");
        var graph = producer.Graph ?? throw new InvalidOperationException($"The producer of '{value.Name}' is not in a graph.");
        string name = value.Name;
        value.Name = model.UniqueName(displacedNameHint);
        var node = new Node("", opType, new Value?[] { null }.Concat(otherInputs), [name], model.UniqueName(nodeNameHint));
        var result = node.Outputs[0];
        result.Type = value.Type;

        value.ReplaceAllUsesWith(result);
        foreach (var g in model.AllGraphs())
            if (g.OuterOutputDeclarations.Remove(value, out var declaration))
            {
                declaration.Name = name;
                g.OuterOutputDeclarations[result] = declaration;
            }
        node.SetInput(0, value);
        graph.Nodes.InsertAfter(producer, node);

        if (value.Type is not null && !graph.ValueInfo.Contains(value)) graph.ValueInfo.Add(value);
        if (result.Type is not null && !result.IsGraphOutput) graph.ValueInfo.Add(result);
        return node;
    }

    /// <summary>Declares <paramref name="value"/> in its graph's value_info (once), when it has a type and is not a graph output.</summary>
    public static void Declare(Value value)
    {
        if (value.Type is null || value.IsGraphOutput || value.Graph is not { } graph || graph.ValueInfo.Contains(value)) return;
        graph.ValueInfo.Add(value);
    }
}
