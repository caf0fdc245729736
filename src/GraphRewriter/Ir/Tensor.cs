using System.Collections.Immutable;

namespace SparseOnnx.GraphRewriter.Ir;

/// <summary>
/// A constant tensor: an initializer, or the value of a tensor attribute. Its bytes are a
/// <see cref="TensorData"/>, which may still be on disk.
/// </summary>
public sealed class Tensor
{
    /// <summary>Creates a tensor. The data's size is checked against the type and shape.</summary>
    public Tensor(string name, DataType dataType, IEnumerable<long> dims, TensorData data)
    {
        Name = name;
        DataType = dataType;
        Dims = dims.ToImmutableArray();
        Data = data;
        if (Dims.Any(d => d < 0))
            throw new ArgumentException($"Tensor '{name}' has a negative dimension: [{string.Join(", ", Dims)}].");
        long? expected = ExpectedByteLength;
        if (expected is not null && data is not StringTensorData && data.ByteLength != expected)
            throw new ArgumentException(
                $"Tensor '{name}' of {dataType.DisplayName()} [{string.Join(", ", Dims)}] needs {expected} bytes " +
                $"but its data holds {data.ByteLength}.");
    }

    /// <summary>Creates an in-memory tensor from elements of an unmanaged type.</summary>
    public static Tensor FromElements<T>(string name, DataType dataType, long[] dims, ReadOnlySpan<T> elements)
        where T : unmanaged => new(name, dataType, dims, InMemoryTensorData.FromElements(elements));

    /// <summary>Tensor name (empty for unnamed attribute tensors).</summary>
    public string Name { get; set; }

    /// <summary>Element type.</summary>
    public DataType DataType { get; }

    /// <summary>Shape (empty for scalars).</summary>
    public ImmutableArray<long> Dims { get; }

    /// <summary>The bytes.</summary>
    public TensorData Data { get; }

    /// <summary>Documentation string, when the file had one.</summary>
    public string? DocString { get; set; }

    /// <summary>Named metadata, in file order.</summary>
    public List<KeyValuePair<string, string>> MetadataProps { get; } = new();

    /// <summary>Protobuf fields this IR does not model (segment, unknown fields), carried through as read.</summary>
    internal Protobuf.TensorProto? Residue { get; set; }

    /// <summary>Number of elements (product of the dimensions; 1 for scalars).</summary>
    public long ElementCount => Dims.Aggregate(1L, (acc, d) => checked(acc * d));

    /// <summary>Bytes the elements need in raw layout, or null for strings and unknown types.</summary>
    public long? ExpectedByteLength => DataType.RawByteLength(ElementCount);

    /// <summary>The tensor's type as a value type.</summary>
    public TensorType Type => new(DataType, Shape.Of(Dims.ToArray()));

    /// <inheritdoc />
    public override string ToString() => $"{Name}: {DataType.DisplayName()}[{string.Join(", ", Dims)}]";
}

/// <summary>A sparse tensor in coordinate form, as ONNX's <c>SparseTensorProto</c>.</summary>
/// <param name="Values">The non-default values, shape [NNZ]. Its name names the sparse tensor.</param>
/// <param name="Indices">Linear indices [NNZ] or coordinates [NNZ, rank], int64.</param>
/// <param name="Dims">The dense shape.</param>
public sealed record SparseTensor(Tensor Values, Tensor Indices, ImmutableArray<long> Dims)
{
    /// <summary>The name (that of <see cref="Values"/>).</summary>
    public string Name => Values.Name;

    /// <summary>Protobuf fields this IR does not model, carried through as read.</summary>
    internal Protobuf.SparseTensorProto? Residue { get; init; }
}
