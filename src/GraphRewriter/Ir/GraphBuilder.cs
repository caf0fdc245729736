namespace SparseOnnx.GraphRewriter.Ir;

/// <summary>
/// Appends nodes to a graph with generated unique names. Passes use it to build replacement subgraphs;
/// tests use it to build models that mimic exporter output.
/// </summary>
public sealed class GraphBuilder
{
    private readonly Func<string, string> _uniqueName;
    private int _counter;

    /// <summary>Builds into <paramref name="graph"/>, naming new values and nodes through <paramref name="uniqueName"/>
    /// (typically <see cref="Model.UniqueName"/>); without one, names are numbered in this builder.</summary>
    public GraphBuilder(Graph graph, Func<string, string>? uniqueName = null)
    {
        Graph = graph;
        _uniqueName = uniqueName ?? (hint => $"{hint}_{_counter++}");
    }

    /// <summary>The graph being built.</summary>
    public Graph Graph { get; }

    /// <summary>Adds a graph input of a tensor type; dims are longs (known) or strings (symbolic).</summary>
    public Value Input(string name, DataType elementType, params object[] dims)
    {
        var value = new Value(name, new TensorType(elementType, ShapeOf(dims)));
        Graph.Inputs.Add(value);
        return value;
    }

    /// <summary>Marks <paramref name="value"/> as a graph output, optionally declaring its type.</summary>
    public Value Output(Value value, DataType? elementType = null, params object[] dims)
    {
        if (elementType is not null) value.Type = new TensorType(elementType.Value, dims.Length == 0 && value.Shape is not null ? value.Shape : ShapeOf(dims));
        Graph.Outputs.Add(value);
        return value;
    }

    /// <summary>Adds an initializer.</summary>
    public Value Initializer(Tensor tensor) => Graph.Initializers.Add(tensor);

    /// <summary>Adds a float32 initializer.</summary>
    public Value Initializer(string name, long[] dims, float[] values) =>
        Graph.Initializers.Add(Tensor.FromElements<float>(name, DataType.Float, dims, values));

    /// <summary>Adds an int64 initializer.</summary>
    public Value Initializer(string name, long[] dims, long[] values) =>
        Graph.Initializers.Add(Tensor.FromElements<long>(name, DataType.Int64, dims, values));

    /// <summary>Appends a standard-domain node with one output and returns that output.</summary>
    public Value Op(string opType, params Value?[] inputs) => Node("", opType, inputs, 1, null, Array.Empty<OnnxAttribute>()).Outputs[0];

    /// <summary>Appends a standard-domain node with one output and attributes.</summary>
    public Value Op(string opType, Value?[] inputs, params OnnxAttribute[] attributes) =>
        Node("", opType, inputs, 1, null, attributes).Outputs[0];

    /// <summary>Appends a node and returns it.</summary>
    public Node Node(string domain, string opType, IEnumerable<Value?> inputs, int outputCount, string? name, params OnnxAttribute[] attributes)
    {
        string baseName = name ?? opType;
        var node = new Node(domain, opType, inputs,
            Enumerable.Range(0, outputCount).Select(i => _uniqueName($"{baseName}_output_{i}")),
            name ?? _uniqueName(opType), attributes);
        Graph.Nodes.Add(node);
        return node;
    }

    /// <summary>A shape from dims given as longs (known) or strings (symbolic).</summary>
    public static Shape ShapeOf(params object[] dims) => new(dims.Select(d => d switch
    {
        long l => Dim.Known(l),
        int i => Dim.Known(i),
        string s => Dim.Symbolic(s),
        null => Dim.Unknown,
        _ => throw new ArgumentException($"A dimension must be a number or a name, not {d.GetType().Name}."),
    }));
}
