using System.Collections.Immutable;
using System.Text;

namespace SparseOnnx.GraphRewriter.Ir;

/// <summary>OnnxAttribute value kinds, numbered as ONNX's <c>AttributeProto.AttributeType</c>.</summary>
public enum AttributeKind
{
    Undefined = 0,
    Float = 1,
    Int = 2,
    String = 3,
    Tensor = 4,
    Graph = 5,
    Floats = 6,
    Ints = 7,
    Strings = 8,
    Tensors = 9,
    Graphs = 10,
    SparseTensor = 11,
    SparseTensors = 12,
    TypeProto = 13,
    TypeProtos = 14,
}

/// <summary>
/// A node or function attribute: a name, a kind and a value of that kind, or (inside a function body)
/// a reference to the calling node's attribute.
/// </summary>
public sealed class OnnxAttribute
{
    private OnnxAttribute(string name, AttributeKind kind, object? value)
    {
        Name = name;
        Kind = kind;
        Value = value;
    }

    /// <summary>OnnxAttribute name.</summary>
    public string Name { get; }

    /// <summary>Which kind of value <see cref="Value"/> holds.</summary>
    public AttributeKind Kind { get; }

    /// <summary>
    /// The value: float, long, byte[] (string), <see cref="Tensor"/>, <see cref="Ir.Graph"/>,
    /// <see cref="Ir.SparseTensor"/>, <see cref="OnnxType"/>, or an <see cref="ImmutableArray{T}"/> of one of these.
    /// Null for references and undefined attributes.
    /// </summary>
    public object? Value { get; }

    /// <summary>Inside a function body: the name of the caller's attribute this one refers to.</summary>
    public string? RefAttrName { get; init; }

    /// <summary>Documentation string.</summary>
    public string? DocString { get; set; }

    /// <summary>Protobuf fields this IR does not model, carried through as read.</summary>
    internal Protobuf.AttributeProto? Residue { get; set; }

    /// <summary>A float attribute.</summary>
    public static OnnxAttribute Float(string name, float value) => new(name, AttributeKind.Float, value);

    /// <summary>An int attribute.</summary>
    public static OnnxAttribute Int(string name, long value) => new(name, AttributeKind.Int, value);

    /// <summary>A string attribute from UTF-8 text.</summary>
    public static OnnxAttribute String(string name, string value) => new(name, AttributeKind.String, Encoding.UTF8.GetBytes(value));

    /// <summary>A string attribute from raw bytes.</summary>
    public static OnnxAttribute Bytes(string name, byte[] value) => new(name, AttributeKind.String, value);

    /// <summary>A tensor attribute.</summary>
    public static OnnxAttribute FromTensor(string name, Tensor value) => new(name, AttributeKind.Tensor, value);

    /// <summary>A graph attribute (a subgraph, e.g. an If branch).</summary>
    public static OnnxAttribute FromGraph(string name, Graph value) => new(name, AttributeKind.Graph, value);

    /// <summary>A sparse tensor attribute.</summary>
    public static OnnxAttribute FromSparseTensor(string name, SparseTensor value) => new(name, AttributeKind.SparseTensor, value);

    /// <summary>A type attribute.</summary>
    public static OnnxAttribute FromType(string name, OnnxType value) => new(name, AttributeKind.TypeProto, value);

    /// <summary>A list-of-floats attribute.</summary>
    public static OnnxAttribute Floats(string name, IEnumerable<float> values) => new(name, AttributeKind.Floats, values.ToImmutableArray());

    /// <summary>A list-of-ints attribute.</summary>
    public static OnnxAttribute Ints(string name, IEnumerable<long> values) => new(name, AttributeKind.Ints, values.ToImmutableArray());

    /// <summary>A list-of-strings attribute from raw bytes.</summary>
    public static OnnxAttribute StringsFromBytes(string name, IEnumerable<byte[]> values) => new(name, AttributeKind.Strings, values.ToImmutableArray());

    /// <summary>A list-of-strings attribute from UTF-8 text.</summary>
    public static OnnxAttribute Strings(string name, IEnumerable<string> values) =>
        StringsFromBytes(name, values.Select(Encoding.UTF8.GetBytes));

    /// <summary>A list-of-tensors attribute.</summary>
    public static OnnxAttribute Tensors(string name, IEnumerable<Tensor> values) => new(name, AttributeKind.Tensors, values.ToImmutableArray());

    /// <summary>A list-of-graphs attribute.</summary>
    public static OnnxAttribute Graphs(string name, IEnumerable<Graph> values) => new(name, AttributeKind.Graphs, values.ToImmutableArray());

    /// <summary>A list-of-sparse-tensors attribute.</summary>
    public static OnnxAttribute SparseTensors(string name, IEnumerable<SparseTensor> values) => new(name, AttributeKind.SparseTensors, values.ToImmutableArray());

    /// <summary>A list-of-types attribute.</summary>
    public static OnnxAttribute Types(string name, IEnumerable<OnnxType> values) => new(name, AttributeKind.TypeProtos, values.ToImmutableArray());

    /// <summary>A reference to the calling node's attribute <paramref name="refAttrName"/> (function bodies only).</summary>
    public static OnnxAttribute Reference(string name, AttributeKind kind, string refAttrName) =>
        new(name, kind, null) { RefAttrName = refAttrName };

    /// <summary>An attribute whose kind the file did not state; carried as read.</summary>
    internal static OnnxAttribute Undefined(string name, Protobuf.AttributeProto residue) =>
        new(name, AttributeKind.Undefined, null) { Residue = residue };

    internal static OnnxAttribute Create(string name, AttributeKind kind, object? value) => new(name, kind, value);

    /// <summary>The int value; throws when the attribute is not an int.</summary>
    public long AsInt() => Kind == AttributeKind.Int ? (long)Value! : throw WrongKind(AttributeKind.Int);

    /// <summary>The float value; throws when the attribute is not a float.</summary>
    public float AsFloat() => Kind == AttributeKind.Float ? (float)Value! : throw WrongKind(AttributeKind.Float);

    /// <summary>The string value decoded as UTF-8; throws when the attribute is not a string.</summary>
    public string AsString() => Kind == AttributeKind.String ? Encoding.UTF8.GetString((byte[])Value!) : throw WrongKind(AttributeKind.String);

    /// <summary>The ints; throws when the attribute is not a list of ints.</summary>
    public ImmutableArray<long> AsInts() => Kind == AttributeKind.Ints ? (ImmutableArray<long>)Value! : throw WrongKind(AttributeKind.Ints);

    /// <summary>The floats; throws when the attribute is not a list of floats.</summary>
    public ImmutableArray<float> AsFloats() => Kind == AttributeKind.Floats ? (ImmutableArray<float>)Value! : throw WrongKind(AttributeKind.Floats);

    /// <summary>The tensor; throws when the attribute is not a tensor.</summary>
    public Tensor AsTensor() => Kind == AttributeKind.Tensor ? (Tensor)Value! : throw WrongKind(AttributeKind.Tensor);

    /// <summary>The graph; throws when the attribute is not a graph.</summary>
    public Graph AsGraph() => Kind == AttributeKind.Graph ? (Graph)Value! : throw WrongKind(AttributeKind.Graph);

    /// <summary>Every graph this attribute holds (none, one, or a list).</summary>
    public IEnumerable<Graph> Subgraphs => Kind switch
    {
        AttributeKind.Graph when Value is Graph g => new[] { g },
        AttributeKind.Graphs when Value is ImmutableArray<Graph> gs => gs,
        _ => Array.Empty<Graph>(),
    };

    /// <summary>Every tensor this attribute holds, including the parts of sparse tensors.</summary>
    public IEnumerable<Tensor> TensorsHeld => Kind switch
    {
        AttributeKind.Tensor when Value is Tensor t => new[] { t },
        AttributeKind.Tensors when Value is ImmutableArray<Tensor> ts => ts,
        AttributeKind.SparseTensor when Value is SparseTensor s => new[] { s.Values, s.Indices },
        AttributeKind.SparseTensors when Value is ImmutableArray<SparseTensor> ss => ss.SelectMany(s => new[] { s.Values, s.Indices }),
        _ => Array.Empty<Tensor>(),
    };

    private InvalidOperationException WrongKind(AttributeKind expected) =>
        new($"OnnxAttribute '{Name}' is {(RefAttrName is null ? Kind.ToString() : $"a reference to '{RefAttrName}'")}, not {expected}.");

    /// <inheritdoc />
    public override string ToString() => RefAttrName is not null ? $"{Name}=@{RefAttrName}" : Kind switch
    {
        AttributeKind.Int or AttributeKind.Float => $"{Name}={Value}",
        AttributeKind.String => $"{Name}=\"{AsString()}\"",
        AttributeKind.Ints => $"{Name}=[{string.Join(", ", AsInts())}]",
        AttributeKind.Floats => $"{Name}=[{string.Join(", ", AsFloats())}]",
        _ => $"{Name}:{Kind}",
    };
}
