using System.Collections.Immutable;
using System.Text;

namespace SparseOnnx.GraphRewriter.Ir;

/// <summary>One dimension of a shape: a known size, a named symbol, or unknown.</summary>
/// <param name="Value">The size when known.</param>
/// <param name="Symbol">The symbolic name (ONNX <c>dim_param</c>) when the size is symbolic.</param>
/// <param name="Denotation">Optional semantic denotation (ONNX dimension denotation).</param>
public sealed record Dim(long? Value, string? Symbol, string? Denotation = null)
{
    /// <summary>A dimension of known size.</summary>
    public static Dim Known(long value) => new(value, null);

    /// <summary>A symbolic dimension such as <c>batch_size</c>.</summary>
    public static Dim Symbolic(string symbol) => new(null, symbol);

    /// <summary>A dimension with neither size nor name.</summary>
    public static Dim Unknown { get; } = new(null, null);

    /// <inheritdoc />
    public override string ToString() => Value?.ToString(System.Globalization.CultureInfo.InvariantCulture) ?? Symbol ?? "?";
}

/// <summary>A tensor shape: an ordered list of dimensions (rank 0 for scalars).</summary>
public sealed class Shape : IEquatable<Shape>
{
    /// <summary>The dimensions, outermost first.</summary>
    public ImmutableArray<Dim> Dims { get; }

    /// <summary>Creates a shape from dimensions.</summary>
    public Shape(IEnumerable<Dim> dims) => Dims = dims.ToImmutableArray();

    /// <summary>Creates a fully known shape.</summary>
    public static Shape Of(params long[] dims) => new(dims.Select(Dim.Known));

    /// <summary>Number of dimensions.</summary>
    public int Rank => Dims.Length;

    /// <summary>True when every dimension has a known size.</summary>
    public bool IsFullyKnown => Dims.All(d => d.Value is not null);

    /// <inheritdoc />
    public bool Equals(Shape? other) => other is not null && Dims.SequenceEqual(other.Dims);

    /// <inheritdoc />
    public override bool Equals(object? obj) => Equals(obj as Shape);

    /// <inheritdoc />
    public override int GetHashCode() => Dims.Aggregate(17, (h, d) => h * 31 + d.GetHashCode());

    /// <inheritdoc />
    public override string ToString() => "[" + string.Join(", ", Dims) + "]";
}

/// <summary>
/// The type of a value, as ONNX's <c>TypeProto</c> describes it: a tensor, a sparse tensor, a sequence,
/// a map, an optional, or an opaque type. <see cref="Denotation"/> is ONNX's optional type denotation.
/// </summary>
public abstract record OnnxType(string? Denotation)
{
    /// <summary>A dense tensor type with an element type and an optional shape.</summary>
    public static TensorType Tensor(DataType elementType, Shape? shape = null) => new(elementType, shape, null);
}

/// <summary>A dense tensor: element type and, when known, shape.</summary>
public sealed record TensorType(DataType ElementType, Shape? Shape, string? Denotation = null) : OnnxType(Denotation)
{
    /// <inheritdoc />
    public override string ToString() => ElementType.DisplayName() + (Shape?.ToString() ?? "[?]");
}

/// <summary>A sparse tensor: element type and, when known, shape.</summary>
public sealed record SparseTensorType(DataType ElementType, Shape? Shape, string? Denotation = null) : OnnxType(Denotation)
{
    /// <inheritdoc />
    public override string ToString() => "sparse " + ElementType.DisplayName() + (Shape?.ToString() ?? "[?]");
}

/// <summary>A sequence whose elements all have <see cref="ElementType"/> (null when unspecified).</summary>
public sealed record SequenceType(OnnxType? ElementType, string? Denotation = null) : OnnxType(Denotation)
{
    /// <inheritdoc />
    public override string ToString() => $"seq({ElementType?.ToString() ?? "?"})";
}

/// <summary>An optional value wrapping <see cref="ElementType"/>.</summary>
public sealed record OptionalType(OnnxType? ElementType, string? Denotation = null) : OnnxType(Denotation)
{
    /// <inheritdoc />
    public override string ToString() => $"optional({ElementType?.ToString() ?? "?"})";
}

/// <summary>A map from <see cref="KeyType"/> to <see cref="ValueType"/>.</summary>
public sealed record MapType(DataType KeyType, OnnxType? ValueType, string? Denotation = null) : OnnxType(Denotation)
{
    /// <inheritdoc />
    public override string ToString() => $"map({KeyType.DisplayName()}, {ValueType?.ToString() ?? "?"})";
}

/// <summary>An opaque (onnx-ml) type identified by domain and name.</summary>
public sealed record OpaqueType(string? Domain, string? Name, string? Denotation = null) : OnnxType(Denotation)
{
    /// <inheritdoc />
    public override string ToString() => $"opaque({Domain}.{Name})";
}

/// <summary>A type proto with no value set: only a denotation, or nothing at all.</summary>
public sealed record UnspecifiedType(string? Denotation = null) : OnnxType(Denotation)
{
    /// <inheritdoc />
    public override string ToString() => "?";
}
