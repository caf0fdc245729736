namespace SparseOnnx.GraphRewriter.Ir;

/// <summary>What <see cref="GraphCut.Keep"/> left of a model.</summary>
/// <param name="Inputs">The cut model's inputs, in order: the values cut at, then the original graph inputs its nodes
/// still read (a layer's past key/value; attention_mask and position_ids when the cut recomputes the mask and rotary
/// tables the whole model shares), by their original names.</param>
/// <param name="Computed">Those of <paramref name="Inputs"/> that the original model computed (not its own inputs): what a
/// caller must capture from a run of the whole model to feed the cut one.</param>
public sealed record GraphCutResult(IReadOnlyList<string> Inputs, IReadOnlyList<string> Computed);

/// <summary>
/// Cuts a model down to the part between some of its values: the nodes needed to compute <c>outputs</c> from
/// <c>inputs</c>, with the initializers they read. Work the whole model shares and that is not cut at (an
/// attention mask or rotary tables built once for all layers) stays in the cut, recomputed from the graph
/// inputs it comes from. This is how a decoder block becomes a model of its own
/// (the layer between two residual-stream values), for calibrating one block at a time as GPTQ, SparseGPT
/// and Wanda do. The model is changed in place; load a fresh copy for each cut.
/// </summary>
public static class GraphCut
{
    /// <summary>
    /// Keeps only what computes <paramref name="outputs"/> from <paramref name="inputs"/> in the main graph of
    /// <paramref name="model"/>: the graph's outputs become <paramref name="outputs"/>, its inputs the values cut at
    /// and whatever else the kept nodes read from outside (see <see cref="GraphCutResult"/>); the other nodes,
    /// initializers and inputs are removed. Computed values that become inputs keep their type when known, else
    /// are declared float tensors of unknown shape (ONNX Runtime takes the shape from the data it is given).
    /// </summary>
    /// <exception cref="ArgumentException">A name is not a value of the main graph, or an output cannot be computed.</exception>
    /// <exception cref="NotSupportedException">A node that must be kept has subgraphs (they may read outer-scope values).</exception>
    public static GraphCutResult Keep(Model model, IReadOnlyList<string> inputs, IReadOnlyList<string> outputs)
    {
        ArgumentNullException.ThrowIfNull(model);
        var graph = model.Graph;
        var byName = new Dictionary<string, Value>(StringComparer.Ordinal);
        foreach (var v in graph.Inputs) byName[v.Name] = v;
        foreach (var v in graph.Initializers) byName[v.Name] = v;
        foreach (var node in graph.Nodes)
            foreach (var v in node.Outputs)
                if (v.Name.Length > 0) byName[v.Name] = v;
        Value Find(string name) => byName.TryGetValue(name, out var v) ? v : throw new ArgumentException($"'{name}' is not a value of the model's main graph.");
        var cutAt = inputs.Select(Find).ToList();
        var cutNames = cutAt.Select(v => v.Name).ToList();
        var results = outputs.Select(Find).ToList();

        // Backwards from the outputs, stopping at the values cut at, the graph's inputs and its initializers.
        var boundary = new HashSet<Value>(cutAt);
        var needed = new HashSet<Node>();
        var seen = new HashSet<Value>();
        var pending = new Stack<Value>(results);
        while (pending.Count > 0)
        {
            var v = pending.Pop();
            if (!seen.Add(v)) continue;
            if (boundary.Contains(v) || v.IsGraphInput) continue;
            if (v.IsInitializer) continue;
            var producer = v.Producer ?? throw new ArgumentException($"'{v.Name}' has no producer in the main graph, so the cut cannot compute it.");
            if (producer.Subgraphs.Any())
                throw new NotSupportedException($"The cut would keep node {producer}, which has subgraphs; cuts through If, Loop or Scan are not supported.");
            if (needed.Add(producer))
                foreach (var input in producer.Inputs)
                    if (input is not null) pending.Push(input);
        }
        var computed = cutAt.Where(v => !v.IsGraphInput).ToList();
        var computedNames = computed.Select(v => v.Name).ToList();

        // Computed values become fresh input values: the kept nodes read those, then everything else goes.
        var replacements = new List<(Value Original, Value Input)>();
        foreach (var v in computed)
        {
            var input = new Value(model.UniqueName(v.Name + ".cut"), v.Type ?? OnnxType.Tensor(v.ElementType ?? DataType.Float));
            foreach (var use in v.Uses.Where(u => needed.Contains(u.Node)).ToList()) use.Node.SetInput(use.InputIndex, input);
            replacements.Add((v, input));
        }
        while (graph.Outputs.Count > 0) graph.Outputs.RemoveAt(graph.Outputs.Count - 1);
        foreach (var node in graph.Nodes.Reverse().Where(n => !needed.Contains(n)).ToList()) graph.Nodes.Remove(node);
        foreach (var v in results) graph.Outputs.Add(v);
        foreach (var v in graph.Inputs.Where(v => v.Uses.Count == 0 && !v.IsGraphOutput).ToList()) graph.Inputs.Remove(v);
        foreach (var v in graph.Initializers.Where(v => v.Uses.Count == 0 && !v.IsGraphOutput).ToList()) graph.Initializers.Remove(v);
        foreach (var (original, input) in replacements)
        {
            string name = original.Name;
            if (original.IsInitializer && original.Uses.Count == 0) graph.Initializers.Remove(original);
            original.Name = name + ".removed";
            input.Name = name;
            graph.Inputs.Add(input);
        }
        graph.ValueInfo.RemoveAll(v => !(v.Producer is { } p && needed.Contains(p)) && !v.IsGraphInput && !v.IsInitializer);

        var order = cutNames.Concat(graph.Inputs.Select(v => v.Name).Where(n => !cutNames.Contains(n))).ToList();
        return new GraphCutResult(order, computedNames);
    }
}
