namespace SparseOnnx.GraphRewriter.Ir;

/// <summary>
/// A loaded ONNX model: metadata, opset imports, the main graph, model-local functions and training
/// information. A model loaded from a file with external data holds those files open (memory-mapped)
/// until disposed; tensors read from them are invalid afterwards.
/// </summary>
public sealed class Model : IDisposable
{
    private readonly List<IDisposable> _resources = new();
    private HashSet<string>? _usedNames;
    private bool _disposed;

    /// <summary>Creates a model around a graph.</summary>
    public Model(Graph graph)
    {
        Graph = graph;
    }

    /// <summary>IR version the model declares (null when absent, which no valid model is).</summary>
    public long? IrVersion { get; set; }

    /// <summary>Operator sets the model imports: domain ("" for standard ONNX) to version, in file order.</summary>
    public OpsetImports OpsetImports { get; } = new();

    /// <summary>Name of the tool that wrote the model.</summary>
    public string? ProducerName { get; set; }

    /// <summary>Version of the tool that wrote the model.</summary>
    public string? ProducerVersion { get; set; }

    /// <summary>Model domain (reverse-DNS namespace).</summary>
    public string? Domain { get; set; }

    /// <summary>Model version.</summary>
    public long? ModelVersion { get; set; }

    /// <summary>Documentation string.</summary>
    public string? DocString { get; set; }

    /// <summary>The main graph.</summary>
    public Graph Graph { get; set; }

    /// <summary>Model metadata (key/value pairs), in file order.</summary>
    public List<KeyValuePair<string, string>> MetadataProps { get; } = new();

    /// <summary>Model-local functions.</summary>
    public List<Function> Functions { get; } = new();

    /// <summary>Training information (initialization and algorithm graphs).</summary>
    public List<TrainingInfo> TrainingInfo { get; } = new();

    /// <summary>Absolute path of the file the model was loaded from, when it came from a file.</summary>
    public string? SourcePath { get; internal set; }

    /// <summary>Absolute paths of the external data files the model reads (resolved, symlinks followed).</summary>
    public IReadOnlyList<string> ExternalDataPaths { get; internal set; } = Array.Empty<string>();

    /// <summary>Protobuf fields this IR does not model (multi-device configuration, unknown fields).</summary>
    internal Protobuf.ModelProto? Residue { get; set; }

    /// <summary>Every graph of the model: main graph, subgraphs, function bodies, training graphs.</summary>
    public IEnumerable<Graph> AllGraphs()
    {
        foreach (var g in Graph.SelfAndSubgraphs()) yield return g;
        foreach (var f in Functions)
            foreach (var g in f.Body.SelfAndSubgraphs()) yield return g;
        foreach (var t in TrainingInfo)
        {
            if (t.Initialization is not null)
                foreach (var g in t.Initialization.SelfAndSubgraphs()) yield return g;
            if (t.Algorithm is not null)
                foreach (var g in t.Algorithm.SelfAndSubgraphs()) yield return g;
        }
    }

    /// <summary>
    /// A value or node name that nothing in the model uses yet, built from <paramref name="hint"/>. Passes
    /// name everything they create through this, so names stay unique across all graphs.
    /// </summary>
    public string UniqueName(string hint)
    {
        _usedNames ??= CollectNames();
        if (_usedNames.Add(hint)) return hint;
        for (int i = 1; ; i++)
        {
            string candidate = $"{hint}_{i}";
            if (_usedNames.Add(candidate)) return candidate;
        }
    }

    private HashSet<string> CollectNames()
    {
        var names = new HashSet<string>(StringComparer.Ordinal);
        foreach (var g in AllGraphs())
        {
            foreach (var v in g.Inputs) names.Add(v.Name);
            foreach (var v in g.Initializers) names.Add(v.Name);
            foreach (var v in g.SparseInitializers) names.Add(v.Name);
            foreach (var v in g.ValueInfo) names.Add(v.Name);
            foreach (var n in g.Nodes)
            {
                if (n.Name is not null) names.Add(n.Name);
                foreach (var o in n.Outputs) names.Add(o.Name);
            }
        }
        return names;
    }

    internal void AddResource(IDisposable resource) => _resources.Add(resource);

    /// <summary>
    /// A copy of the model to rewrite while this one stays as it is: new graphs, nodes, values and attributes over the
    /// same (immutable) tensor data, so copying a model whose weights are mapped from external data costs only its
    /// graph. The copy owns no file: dispose this model only after the copy is no longer used.
    /// </summary>
    public Model Clone() => ModelCloner.Clone(this);

    /// <summary>Closes the external data files.</summary>
    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        foreach (var r in _resources) r.Dispose();
        _resources.Clear();
    }
}

/// <summary>Operator set imports: domain to version, in insertion order.</summary>
public sealed class OpsetImports : IEnumerable<KeyValuePair<string, long>>
{
    private readonly List<KeyValuePair<string, long>> _items = new();

    /// <summary>Number of imports.</summary>
    public int Count => _items.Count;

    /// <summary>The version imported for <paramref name="domain"/>, or null ("ai.onnx" and "" are the same domain).</summary>
    public long? this[string domain]
    {
        get
        {
            int at = IndexOf(domain);
            return at < 0 ? null : _items[at].Value;
        }
    }

    /// <summary>Adds or updates the import of <paramref name="domain"/>.</summary>
    public void Set(string domain, long version)
    {
        int at = IndexOf(domain);
        if (at < 0) _items.Add(new(domain, version));
        else _items[at] = new(_items[at].Key, version);
    }

    private int IndexOf(string domain) =>
        _items.FindIndex(i => i.Key == domain || (IsStandard(i.Key) && IsStandard(domain)));

    private static bool IsStandard(string domain) => domain is "" or "ai.onnx";

    /// <inheritdoc />
    public IEnumerator<KeyValuePair<string, long>> GetEnumerator() => _items.GetEnumerator();

    System.Collections.IEnumerator System.Collections.IEnumerable.GetEnumerator() => GetEnumerator();
}

/// <summary>
/// A model-local function: a body of nodes with named inputs, outputs and attribute parameters,
/// identified by (domain, name, overload).
/// </summary>
public sealed class Function
{
    /// <summary>Creates a function.</summary>
    public Function(string domain, string name, Graph body)
    {
        Domain = domain;
        Name = name;
        Body = body;
    }

    /// <summary>Function domain.</summary>
    public string Domain { get; set; }

    /// <summary>Function name (the op type nodes call it by).</summary>
    public string Name { get; set; }

    /// <summary>Overload identifier.</summary>
    public string? Overload { get; set; }

    /// <summary>The body: inputs, outputs, nodes and value_info (functions have no initializers).</summary>
    public Graph Body { get; }

    /// <summary>Names of attribute parameters without defaults.</summary>
    public List<string> AttributeNames { get; } = new();

    /// <summary>OnnxAttribute parameters with default values.</summary>
    public List<OnnxAttribute> AttributeDefaults { get; } = new();

    /// <summary>Operator sets the body imports.</summary>
    public OpsetImports OpsetImports { get; } = new();

    /// <summary>Documentation string.</summary>
    public string? DocString { get; set; }

    /// <summary>Named metadata, in file order.</summary>
    public List<KeyValuePair<string, string>> MetadataProps { get; } = new();

    /// <summary>Protobuf fields this IR does not model, carried through as read.</summary>
    internal Protobuf.FunctionProto? Residue { get; set; }

    /// <inheritdoc />
    public override string ToString() => $"function {Domain}::{Name}{(Overload is null ? "" : ":" + Overload)}";
}

/// <summary>ONNX training information: an initialization graph, an algorithm graph, and their bindings.</summary>
public sealed class TrainingInfo
{
    /// <summary>Graph that initializes training state.</summary>
    public Graph? Initialization { get; set; }

    /// <summary>Graph of one training step.</summary>
    public Graph? Algorithm { get; set; }

    /// <summary>Initializer name to initialization-graph output name.</summary>
    public List<KeyValuePair<string, string>> InitializationBinding { get; } = new();

    /// <summary>Initializer name to algorithm-graph output name.</summary>
    public List<KeyValuePair<string, string>> UpdateBinding { get; } = new();

    /// <summary>Protobuf fields this IR does not model, carried through as read.</summary>
    internal Protobuf.TrainingInfoProto? Residue { get; set; }
}
