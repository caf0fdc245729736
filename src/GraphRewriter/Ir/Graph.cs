namespace SparseOnnx.GraphRewriter.Ir;

/// <summary>A quantization annotation: a tensor and the names of its quantization parameter tensors.</summary>
public sealed record QuantizationAnnotation(string TensorName, IReadOnlyList<KeyValuePair<string, string>> Parameters);

/// <summary>
/// A computation graph: inputs, initializers, nodes (kept in a valid execution order), outputs. A graph
/// held in a node attribute is a subgraph; its nodes may read values of the enclosing graphs.
/// </summary>
public sealed class Graph
{
    /// <summary>Creates an empty graph.</summary>
    public Graph(string? name = null)
    {
        Name = name;
        Inputs = new GraphInputList(this);
        Outputs = new GraphOutputList();
        Initializers = new InitializerCollection(this);
        Nodes = new NodeList(this);
    }

    /// <summary>Graph name.</summary>
    public string? Name { get; set; }

    /// <summary>Documentation string.</summary>
    public string? DocString { get; set; }

    /// <summary>Named metadata, in file order.</summary>
    public List<KeyValuePair<string, string>> MetadataProps { get; } = new();

    /// <summary>Graph inputs, in order.</summary>
    public GraphInputList Inputs { get; }

    /// <summary>Graph outputs, in order. The same value may appear more than once.</summary>
    public GraphOutputList Outputs { get; }

    /// <summary>Dense initializers (constant tensors), in file order.</summary>
    public InitializerCollection Initializers { get; }

    /// <summary>Sparse initializers, in file order.</summary>
    public List<Value> SparseInitializers { get; } = new();

    /// <summary>Nodes in execution order.</summary>
    public NodeList Nodes { get; }

    /// <summary>
    /// Values declared in the file's <c>value_info</c>, in file order. A pass that creates a value with a
    /// known type adds it here so the saved model describes it.
    /// </summary>
    public List<Value> ValueInfo { get; } = new();

    /// <summary>
    /// For outputs that are values of an enclosing graph (a subgraph passing an outer value through): how this
    /// graph declares them, which may differ from the outer declaration. Keyed by the outer value.
    /// </summary>
    internal Dictionary<Value, Value> OuterOutputDeclarations { get; } = new();

    /// <summary>Quantization annotations, carried through as read.</summary>
    public List<QuantizationAnnotation> QuantizationAnnotations { get; } = new();

    /// <summary>The node whose attribute holds this graph, or null for a top-level graph.</summary>
    public Node? ParentNode { get; internal set; }

    /// <summary>The graph enclosing this subgraph, or null.</summary>
    public Graph? ParentGraph => ParentNode?.Graph;

    /// <summary>Protobuf fields this IR does not model, carried through as read.</summary>
    internal Protobuf.GraphProto? Residue { get; set; }

    /// <summary>This graph's nodes and, depth first, the nodes of every nested subgraph.</summary>
    public IEnumerable<Node> AllNodes()
    {
        foreach (var node in Nodes)
        {
            yield return node;
            foreach (var sub in node.Subgraphs)
                foreach (var inner in sub.AllNodes()) yield return inner;
        }
    }

    /// <summary>This graph and every graph nested in it, outermost first.</summary>
    public IEnumerable<Graph> SelfAndSubgraphs()
    {
        yield return this;
        foreach (var node in Nodes)
            foreach (var sub in node.Subgraphs)
                foreach (var g in sub.SelfAndSubgraphs()) yield return g;
    }

    /// <summary>True when <paramref name="value"/> is defined in this graph or an enclosing one.</summary>
    public bool IsInScope(Value value)
    {
        for (Graph? g = this; g is not null; g = g.ParentGraph)
            if (ReferenceEquals(value.Graph, g)) return true;
        return false;
    }

    /// <summary>Values read by this graph's nodes (or nested subgraphs, or outputs) that an enclosing graph defines.</summary>
    public IEnumerable<Value> OuterScopeReads()
    {
        var seen = new HashSet<Value>();
        var inner = new HashSet<Graph>(SelfAndSubgraphs());
        foreach (var g in inner)
        {
            foreach (var node in g.Nodes)
                foreach (var input in node.Inputs)
                    if (input is not null && (input.Graph is null || !inner.Contains(input.Graph)) && seen.Add(input))
                        yield return input;
            foreach (var output in g.Outputs)
                if ((output.Graph is null || !inner.Contains(output.Graph)) && seen.Add(output))
                    yield return output;
        }
    }

    /// <summary>
    /// Reorders <see cref="Nodes"/> into a topological order, keeping the current relative order of nodes
    /// wherever dependencies allow. A node holding subgraphs depends on every value its subgraphs read.
    /// Throws <see cref="InvalidModelException"/> when the graph has a cycle.
    /// </summary>
    public void SortTopologically()
    {
        var order = TopologicalOrder();
        Nodes.Reorder(order);
    }

    /// <summary>The nodes in a topological order (see <see cref="SortTopologically"/>), without reordering.</summary>
    public IReadOnlyList<Node> TopologicalOrder()
    {
        var nodes = Nodes.ToList();
        var position = new Dictionary<Node, int>(nodes.Count);
        for (int i = 0; i < nodes.Count; i++) position[nodes[i]] = i;

        var pending = new int[nodes.Count];
        var dependents = new List<int>[nodes.Count];
        for (int i = 0; i < nodes.Count; i++)
        {
            dependents[i] = new List<int>();
        }
        for (int i = 0; i < nodes.Count; i++)
        {
            var producers = new HashSet<int>();
            foreach (var input in nodes[i].Inputs.Concat(nodes[i].ImplicitInputs()))
                if (input?.Producer is { } producer && position.TryGetValue(producer, out int p)) producers.Add(p);
            foreach (int p in producers)
            {
                pending[i]++;
                dependents[p].Add(i);
            }
        }

        // A min-heap on original position keeps the order stable for nodes that were already sorted.
        var ready = new PriorityQueue<int, int>();
        for (int i = 0; i < nodes.Count; i++)
            if (pending[i] == 0) ready.Enqueue(i, i);
        var result = new List<Node>(nodes.Count);
        while (ready.TryDequeue(out int i, out _))
        {
            result.Add(nodes[i]);
            foreach (int d in dependents[i])
                if (--pending[d] == 0) ready.Enqueue(d, d);
        }
        if (result.Count != nodes.Count)
        {
            var stuck = nodes.Where((_, i) => pending[i] > 0).Take(3).Select(n => n.ToString());
            throw new InvalidModelException(
                $"Graph '{Name}' has a cycle: {nodes.Count - result.Count} nodes depend on each other (e.g. {string.Join(", ", stuck)}).");
        }
        return result;
    }

    /// <inheritdoc />
    public override string ToString() => $"graph '{Name}' ({Nodes.Count} nodes)";
}

/// <summary>A graph's inputs. Adding a value makes the graph its definer.</summary>
public sealed class GraphInputList : IReadOnlyList<Value>
{
    private readonly List<Value> _items = new();
    private readonly Graph _graph;

    internal GraphInputList(Graph graph) => _graph = graph;

    /// <inheritdoc />
    public Value this[int index] => _items[index];

    /// <inheritdoc />
    public int Count => _items.Count;

    /// <summary>Adds an input.</summary>
    public void Add(Value value)
    {
        if (value.Producer is not null)
            throw new InvalidOperationException($"Value '{value.Name}' is produced by a node and cannot be a graph input.");
        value.Graph = _graph;
        _items.Add(value);
    }

    /// <summary>Removes an input (the value must have no readers left unless it stays an initializer).</summary>
    public bool Remove(Value value) => _items.Remove(value);

    /// <summary>True when <paramref name="value"/> is an input.</summary>
    public bool Contains(Value value) => _items.Contains(value);

    /// <inheritdoc />
    public IEnumerator<Value> GetEnumerator() => _items.GetEnumerator();

    System.Collections.IEnumerator System.Collections.IEnumerable.GetEnumerator() => GetEnumerator();
}

/// <summary>A graph's outputs. Keeps each value's "is a graph output" count exact.</summary>
public sealed class GraphOutputList : IReadOnlyList<Value>
{
    private readonly List<Value> _items = new();

    /// <inheritdoc />
    public Value this[int index]
    {
        get => _items[index];
        set
        {
            _items[index].GraphOutputReferences--;
            _items[index] = value;
            value.GraphOutputReferences++;
        }
    }

    /// <inheritdoc />
    public int Count => _items.Count;

    /// <summary>Adds an output.</summary>
    public void Add(Value value)
    {
        _items.Add(value);
        value.GraphOutputReferences++;
    }

    /// <summary>Removes the output at <paramref name="index"/>.</summary>
    public void RemoveAt(int index)
    {
        _items[index].GraphOutputReferences--;
        _items.RemoveAt(index);
    }

    /// <summary>True when <paramref name="value"/> is an output.</summary>
    public bool Contains(Value value) => _items.Contains(value);

    internal void ReplaceAll(Value old, Value replacement)
    {
        for (int i = 0; i < _items.Count; i++)
            if (ReferenceEquals(_items[i], old)) this[i] = replacement;
    }

    /// <inheritdoc />
    public IEnumerator<Value> GetEnumerator() => _items.GetEnumerator();

    System.Collections.IEnumerator System.Collections.IEnumerable.GetEnumerator() => GetEnumerator();
}

/// <summary>A graph's dense initializers, in order, unique by name.</summary>
public sealed class InitializerCollection : IReadOnlyCollection<Value>
{
    private readonly List<Value> _items = new();
    private readonly Dictionary<string, Value> _byName = new(StringComparer.Ordinal);
    private readonly Graph _graph;

    internal InitializerCollection(Graph graph) => _graph = graph;

    /// <inheritdoc />
    public int Count => _items.Count;

    /// <summary>The initializer value named <paramref name="name"/>, or null.</summary>
    public Value? Find(string name) => _byName.GetValueOrDefault(name);

    /// <summary>Adds <paramref name="tensor"/> as an initializer named after it and returns its value.</summary>
    public Value Add(Tensor tensor) => Add(new Value(tensor.Name, tensor.Type), tensor);

    /// <summary>Makes <paramref name="value"/> an initializer holding <paramref name="tensor"/>.</summary>
    public Value Add(Value value, Tensor tensor)
    {
        if (value.Producer is not null)
            throw new InvalidOperationException($"Value '{value.Name}' is produced by a node and cannot be an initializer.");
        if (!_byName.TryAdd(value.Name, value))
            throw new InvalidOperationException($"Graph '{_graph.Name}' already has an initializer named '{value.Name}'.");
        tensor.Name = value.Name;
        value.ConstValue = tensor;
        value.Graph = _graph;
        _items.Add(value);
        return value;
    }

    /// <summary>Removes an initializer. Throws while any node, graph output or graph input still uses it.</summary>
    public void Remove(Value value)
    {
        if (value.Uses.Count > 0 || value.IsGraphOutput)
            throw new InvalidOperationException($"Initializer '{value.Name}' is still used ({value.Uses.Count} readers).");
        if (!_items.Remove(value)) throw new InvalidOperationException($"'{value.Name}' is not an initializer of this graph.");
        _byName.Remove(value.Name);
        value.ConstValue = null;
    }

    /// <inheritdoc />
    public IEnumerator<Value> GetEnumerator() => _items.GetEnumerator();

    System.Collections.IEnumerator System.Collections.IEnumerable.GetEnumerator() => GetEnumerator();
}

/// <summary>A graph's nodes in execution order.</summary>
public sealed class NodeList : IReadOnlyList<Node>
{
    private readonly List<Node> _items = new();
    private readonly Graph _graph;

    internal NodeList(Graph graph) => _graph = graph;

    /// <inheritdoc />
    public Node this[int index] => _items[index];

    /// <inheritdoc />
    public int Count => _items.Count;

    /// <summary>Appends a detached node.</summary>
    public void Add(Node node) => Insert(_items.Count, node);

    /// <summary>Inserts detached nodes right after <paramref name="anchor"/>, in the given order.</summary>
    public void InsertAfter(Node anchor, params Node[] nodes)
    {
        int at = IndexOfOrThrow(anchor) + 1;
        foreach (var node in nodes) Insert(at++, node);
    }

    /// <summary>Inserts detached nodes right before <paramref name="anchor"/>, in the given order.</summary>
    public void InsertBefore(Node anchor, params Node[] nodes)
    {
        int at = IndexOfOrThrow(anchor);
        foreach (var node in nodes) Insert(at++, node);
    }

    /// <summary>
    /// Removes a node whose outputs nobody reads any more, dropping its uses of its inputs (and those of
    /// its subgraphs). Throws when an output is still read.
    /// </summary>
    public void Remove(Node node)
    {
        foreach (var output in node.Outputs)
            if (output.Uses.Count > 0 || output.IsGraphOutput)
                throw new InvalidOperationException(
                    $"Cannot remove node {node}: its output '{output.Name}' is still read.");
        int at = IndexOfOrThrow(node);
        _items.RemoveAt(at);
        node.DetachInputs();
        node.SetGraph(null);
    }

    private void Insert(int index, Node node)
    {
        if (node.Graph is not null)
            throw new InvalidOperationException($"Node {node} already belongs to a graph.");
        _items.Insert(index, node);
        node.SetGraph(_graph);
    }

    private int IndexOfOrThrow(Node node)
    {
        int at = _items.IndexOf(node);
        if (at < 0) throw new InvalidOperationException($"Node {node} is not in graph '{_graph.Name}'.");
        return at;
    }

    internal void Reorder(IReadOnlyList<Node> order)
    {
        if (order.Count != _items.Count) throw new InvalidOperationException("Reorder must keep every node.");
        _items.Clear();
        _items.AddRange(order);
    }

    /// <inheritdoc />
    public IEnumerator<Node> GetEnumerator() => _items.GetEnumerator();

    System.Collections.IEnumerator System.Collections.IEnumerable.GetEnumerator() => GetEnumerator();
}
