namespace SparseOnnx.GraphRewriter.Ir;

/// <summary>
/// One operator invocation: domain, op type, attributes, input values and output values. Setting an
/// input keeps the values' use lists exact, so "who reads this value" is always one lookup away.
/// </summary>
public sealed class Node
{
    private readonly List<Value?> _inputs = new();
    private readonly List<Value> _outputs = new();

    /// <summary>
    /// Creates a node. <paramref name="outputNames"/> become new values produced by this node (an empty
    /// name marks an omitted optional output). The node belongs to no graph until added to one.
    /// </summary>
    public Node(string domain, string opType, IEnumerable<Value?> inputs, IEnumerable<string> outputNames,
        string? name = null, IEnumerable<OnnxAttribute>? attributes = null)
    {
        Domain = domain;
        OpType = opType;
        Name = name;
        Attributes = new AttributeMap(this);
        foreach (var input in inputs) AppendInput(input);
        foreach (var outputName in outputNames) AddOutput(outputName);
        if (attributes is not null)
            foreach (var attribute in attributes) Attributes.Set(attribute);
    }

    /// <summary>Node name (optional in ONNX; exporters usually set it to the module path).</summary>
    public string? Name { get; set; }

    /// <summary>Operator set domain: "" (or "ai.onnx") for standard ops.</summary>
    public string Domain { get; set; }

    /// <summary>Operator type, e.g. <c>MatMul</c>.</summary>
    public string OpType { get; set; }

    /// <summary>Overload identifier selecting a model-local function.</summary>
    public string? Overload { get; set; }

    /// <summary>Documentation string.</summary>
    public string? DocString { get; set; }

    /// <summary>Named metadata, in file order (provenance of rewrites is recorded here).</summary>
    public List<KeyValuePair<string, string>> MetadataProps { get; } = new();

    /// <summary>The node's attributes, in file order.</summary>
    public AttributeMap Attributes { get; }

    /// <summary>Inputs; null marks an omitted optional input.</summary>
    public IReadOnlyList<Value?> Inputs => _inputs;

    /// <summary>Outputs; a value with an empty name marks an omitted optional output.</summary>
    public IReadOnlyList<Value> Outputs => _outputs;

    /// <summary>The graph this node belongs to, or null while detached.</summary>
    public Graph? Graph { get; internal set; }

    /// <summary>Protobuf fields this IR does not model (device configurations, unknown fields).</summary>
    internal Protobuf.NodeProto? Residue { get; set; }

    /// <summary>True for operators of the standard ONNX domain.</summary>
    public bool IsStandardDomain => Domain is "" or "ai.onnx";

    /// <summary>True when this is the standard-domain operator <paramref name="opType"/>.</summary>
    public bool Is(string opType) => IsStandardDomain && OpType == opType;

    /// <summary>Every graph held in this node's attributes (If branches, Loop and Scan bodies).</summary>
    public IEnumerable<Graph> Subgraphs => Attributes.SelectMany(a => a.Subgraphs);

    /// <summary>Input <paramref name="index"/>, or null when absent or omitted.</summary>
    public Value? InputOrNull(int index) => index < _inputs.Count ? _inputs[index] : null;

    /// <summary>Replaces input <paramref name="index"/>, updating both values' use lists.</summary>
    public void SetInput(int index, Value? value)
    {
        var old = _inputs[index];
        if (ReferenceEquals(old, value)) return;
        old?.RemoveUse(this, index);
        _inputs[index] = value;
        value?.AddUse(this, index);
    }

    /// <summary>Appends an input.</summary>
    public void AppendInput(Value? value)
    {
        _inputs.Add(value);
        value?.AddUse(this, _inputs.Count - 1);
    }

    /// <summary>Removes the trailing inputs beyond <paramref name="count"/>.</summary>
    public void TruncateInputs(int count)
    {
        for (int i = _inputs.Count - 1; i >= count; i--)
        {
            _inputs[i]?.RemoveUse(this, i);
            _inputs.RemoveAt(i);
        }
    }

    /// <summary>Adds an output value produced by this node.</summary>
    public Value AddOutput(string name, OnnxType? type = null)
    {
        var value = new Value(name, type) { Producer = this, ProducerOutputIndex = _outputs.Count, Graph = Graph };
        _outputs.Add(value);
        return value;
    }

    /// <summary>Drops this node's uses of its inputs, in this node and all its subgraphs.</summary>
    internal void DetachInputs()
    {
        TruncateInputs(0);
        foreach (var sub in Subgraphs)
            foreach (var inner in sub.Nodes) inner.DetachInputs();
    }

    internal void SetGraph(Graph? graph)
    {
        Graph = graph;
        foreach (var output in _outputs) output.Graph = graph;
    }

    /// <summary>Values read by nodes in this node's subgraphs that are defined outside those subgraphs.</summary>
    public IEnumerable<Value> ImplicitInputs()
    {
        var seen = new HashSet<Value>();
        foreach (var sub in Subgraphs)
            foreach (var value in sub.OuterScopeReads())
                if (seen.Add(value)) yield return value;
    }

    /// <inheritdoc />
    public override string ToString() =>
        $"{(string.IsNullOrEmpty(Name) ? "<unnamed>" : Name)} ({(IsStandardDomain ? "" : Domain + "::")}{OpType})";
}

/// <summary>A node's attributes, ordered as in the file, unique by name.</summary>
public sealed class AttributeMap : IEnumerable<OnnxAttribute>
{
    private readonly List<OnnxAttribute> _items = new();
    private readonly Node _owner;

    internal AttributeMap(Node owner) => _owner = owner;

    /// <summary>Number of attributes.</summary>
    public int Count => _items.Count;

    /// <summary>The attribute named <paramref name="name"/>, or null.</summary>
    public OnnxAttribute? this[string name] => _items.Find(a => a.Name == name);

    /// <summary>Adds or replaces an attribute (keeping its position when replacing).</summary>
    public void Set(OnnxAttribute attribute)
    {
        int at = _items.FindIndex(a => a.Name == attribute.Name);
        if (at >= 0)
        {
            foreach (var g in _items[at].Subgraphs) g.ParentNode = null;
            _items[at] = attribute;
        }
        else
        {
            _items.Add(attribute);
        }
        foreach (var g in attribute.Subgraphs) g.ParentNode = _owner;
    }

    /// <summary>Removes an attribute; returns whether it existed.</summary>
    public bool Remove(string name)
    {
        int at = _items.FindIndex(a => a.Name == name);
        if (at < 0) return false;
        foreach (var g in _items[at].Subgraphs) g.ParentNode = null;
        _items.RemoveAt(at);
        return true;
    }

    /// <summary>The int attribute's value, or <paramref name="defaultValue"/> when absent.</summary>
    public long GetInt(string name, long defaultValue) => this[name] is { } a ? a.AsInt() : defaultValue;

    /// <summary>The float attribute's value, or <paramref name="defaultValue"/> when absent.</summary>
    public float GetFloat(string name, float defaultValue) => this[name] is { } a ? a.AsFloat() : defaultValue;

    /// <inheritdoc />
    public IEnumerator<OnnxAttribute> GetEnumerator() => _items.GetEnumerator();

    System.Collections.IEnumerator System.Collections.IEnumerable.GetEnumerator() => GetEnumerator();
}
