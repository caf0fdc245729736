namespace SparseOnnx.GraphRewriter.Ir;

/// <summary>One use of a value: input <see cref="InputIndex"/> of <see cref="Node"/>.</summary>
public readonly record struct Use(Node Node, int InputIndex);

/// <summary>
/// A named value in a graph: a graph input, an initializer, or a node output. It knows the node that
/// produces it and every node that consumes it, including nodes inside subgraphs that reference it
/// from an enclosing scope.
/// </summary>
public sealed class Value
{
    private readonly List<Use> _uses = new();
    internal int GraphOutputReferences;

    /// <summary>Creates a detached value (not yet an input, initializer or node output).</summary>
    public Value(string name, OnnxType? type = null)
    {
        Name = name;
        Type = type;
    }

    /// <summary>The value's name, unique within the model (empty for an omitted optional node output).</summary>
    public string Name { get; set; }

    /// <summary>The declared or inferred type, when known.</summary>
    public OnnxType? Type { get; set; }

    /// <summary>Documentation string from the value's declaration.</summary>
    public string? DocString { get; set; }

    /// <summary>Named metadata from the value's declaration, in file order.</summary>
    public List<KeyValuePair<string, string>> MetadataProps { get; } = new();

    /// <summary>The node whose output this is, or null for graph inputs and initializers.</summary>
    public Node? Producer { get; internal set; }

    /// <summary>Which output of <see cref="Producer"/> this is.</summary>
    public int ProducerOutputIndex { get; internal set; }

    /// <summary>The graph that defines this value (as input, initializer or through its producer).</summary>
    public Graph? Graph { get; internal set; }

    /// <summary>The constant tensor when this value is an initializer; null otherwise.</summary>
    public Tensor? ConstValue { get; internal set; }

    /// <summary>The sparse constant when this value is a sparse initializer; null otherwise.</summary>
    public SparseTensor? SparseConstValue { get; internal set; }

    /// <summary>Every node input that reads this value, in no particular order.</summary>
    public IReadOnlyList<Use> Uses => _uses;

    /// <summary>True when this value is one of its graph's inputs.</summary>
    public bool IsGraphInput => Graph is not null && Graph.Inputs.Contains(this);

    /// <summary>True when this value is an output of any graph (its own or an enclosing one's subgraph).</summary>
    public bool IsGraphOutput => GraphOutputReferences > 0;

    /// <summary>True when this value is a (dense) initializer.</summary>
    public bool IsInitializer => ConstValue is not null;

    /// <summary>
    /// True when the value is a constant that cannot be overridden at run time: an initializer that is
    /// not also a graph input (IR ≥ 4 lets a graph input with an initializer's name override it).
    /// </summary>
    public bool IsConstant => (ConstValue is not null || SparseConstValue is not null) && !IsGraphInput;

    /// <summary>The element type when the value is a tensor of known element type.</summary>
    public DataType? ElementType => ConstValue?.DataType ?? (Type as TensorType)?.ElementType;

    /// <summary>The shape when known (from the constant, or the declared type).</summary>
    public Shape? Shape => ConstValue is not null ? Shape.Of(ConstValue.Dims.ToArray()) : (Type as TensorType)?.Shape;

    internal void AddUse(Node node, int index) => _uses.Add(new Use(node, index));

    internal void RemoveUse(Node node, int index)
    {
        int at = _uses.FindIndex(u => ReferenceEquals(u.Node, node) && u.InputIndex == index);
        if (at < 0) throw new InvalidOperationException($"Value '{Name}' has no use at input {index} of node '{node}'.");
        _uses.RemoveAt(at);
    }

    /// <summary>
    /// Makes every reader of this value (node inputs anywhere, graph outputs) read <paramref name="replacement"/>
    /// instead.
    /// </summary>
    public void ReplaceAllUsesWith(Value replacement)
    {
        ArgumentNullException.ThrowIfNull(replacement);
        if (ReferenceEquals(replacement, this)) return;
        foreach (var use in _uses.ToArray()) use.Node.SetInput(use.InputIndex, replacement);
        if (GraphOutputReferences > 0)
        {
            for (Graph? g = Graph; g is not null; g = g.ParentGraph) g.Outputs.ReplaceAll(this, replacement);
            foreach (var sub in AllGraphsReading()) sub.Outputs.ReplaceAll(this, replacement);
        }
    }

    // Subgraphs can list an outer value among their outputs; find them through the nodes that own subgraphs.
    private IEnumerable<Graph> AllGraphsReading()
    {
        if (Graph is null) yield break;
        var stack = new Stack<Graph>();
        stack.Push(Graph);
        while (stack.Count > 0)
        {
            var g = stack.Pop();
            foreach (var node in g.Nodes)
                foreach (var sub in node.Subgraphs)
                {
                    yield return sub;
                    stack.Push(sub);
                }
        }
    }

    /// <inheritdoc />
    public override string ToString() => Type is null ? Name : $"{Name}: {Type}";
}
