using System.Buffers;
using System.Runtime.InteropServices;

namespace SparseOnnx.GraphRewriter.Ir;

/// <summary>
/// Where a tensor's bytes live. Data is read lazily: a weight in an external file stays on disk until a
/// pass asks for it, and copying it to a new file streams it through a small buffer.
/// </summary>
/// <remarks>
/// Every implementation exposes the bytes in ONNX raw layout (little-endian, fixed width, 4-bit types
/// packed two per byte), whatever form the model file stored them in.
/// </remarks>
public abstract class TensorData
{
    /// <summary>Size of the data in raw layout, in bytes.</summary>
    public abstract long ByteLength { get; }

    /// <summary>
    /// A read-only stream over the raw bytes. Streaming does not map the data into this process's
    /// memory, so copying a multi-gigabyte weight costs only the stream's buffer.
    /// </summary>
    public abstract Stream OpenRead();

    /// <summary>
    /// Gives direct access to the raw bytes for the lifetime of the returned lease (memory-mapped for
    /// external data). Throws for data of 2 GiB or more, which no span can address: use <see cref="OpenRead"/>.
    /// </summary>
    public abstract TensorDataLease Acquire();

    /// <summary>Copies the raw bytes into a new array (for small tensors: shapes, biases, constants).</summary>
    public byte[] ToArray()
    {
        using var lease = Acquire();
        return lease.Span.ToArray();
    }

    /// <summary>Throws when a span cannot address <paramref name="length"/> bytes.</summary>
    protected static void EnsureSpanAddressable(long length, string what)
    {
        if (length > Array.MaxLength)
            throw new InvalidOperationException(
                $"{what} is {length} bytes, more than one span can address; read it with OpenRead() instead.");
    }
}

/// <summary>A view of tensor bytes that stays valid until disposed.</summary>
public sealed class TensorDataLease : IDisposable
{
    private readonly ReadOnlyMemory<byte> _memory;
    private readonly IDisposable? _owner;
    private bool _disposed;

    internal TensorDataLease(ReadOnlyMemory<byte> memory, IDisposable? owner)
    {
        _memory = memory;
        _owner = owner;
    }

    /// <summary>The raw bytes.</summary>
    public ReadOnlySpan<byte> Span
    {
        get
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            return _memory.Span;
        }
    }

    /// <summary>The raw bytes as memory (valid only while the lease is).</summary>
    public ReadOnlyMemory<byte> Memory
    {
        get
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            return _memory;
        }
    }

    /// <summary>Reinterprets the bytes as elements of <typeparamref name="T"/> (little-endian hosts).</summary>
    public ReadOnlySpan<T> AsSpan<T>() where T : unmanaged => MemoryMarshal.Cast<byte, T>(Span);

    /// <inheritdoc />
    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        _owner?.Dispose();
    }
}

/// <summary>Tensor bytes held in managed memory: inline <c>raw_data</c>, or data a pass computed.</summary>
public sealed class InMemoryTensorData : TensorData
{
    private readonly ReadOnlyMemory<byte> _bytes;

    /// <summary>Wraps raw bytes (not copied: the caller must not mutate them afterwards).</summary>
    public InMemoryTensorData(ReadOnlyMemory<byte> bytes) => _bytes = bytes;

    /// <summary>Wraps elements of an unmanaged type as raw little-endian bytes (copied).</summary>
    public static InMemoryTensorData FromElements<T>(ReadOnlySpan<T> elements) where T : unmanaged =>
        new(MemoryMarshal.AsBytes(elements).ToArray());

    /// <inheritdoc />
    public override long ByteLength => _bytes.Length;

    /// <inheritdoc />
    public override Stream OpenRead() =>
        MemoryMarshal.TryGetArray(_bytes, out ArraySegment<byte> segment)
            ? new MemoryStream(segment.Array!, segment.Offset, segment.Count, writable: false)
            : new MemoryStream(_bytes.ToArray(), writable: false);

    /// <inheritdoc />
    public override TensorDataLease Acquire() => new(_bytes, null);
}

/// <summary>
/// The elements of a STRING tensor. Strings have no raw layout, so this data has no byte view;
/// <see cref="TensorData.ByteLength"/> is the sum of the strings' UTF-8 lengths.
/// </summary>
public sealed class StringTensorData : TensorData
{
    /// <summary>Creates string tensor data.</summary>
    public StringTensorData(IReadOnlyList<byte[]> strings) => Strings = strings;

    /// <summary>The strings, UTF-8 encoded, in row-major order.</summary>
    public IReadOnlyList<byte[]> Strings { get; }

    /// <inheritdoc />
    public override long ByteLength => Strings.Sum(s => (long)s.Length);

    /// <inheritdoc />
    public override Stream OpenRead() => throw new NotSupportedException("String tensors have no raw byte layout.");

    /// <inheritdoc />
    public override TensorDataLease Acquire() => throw new NotSupportedException("String tensors have no raw byte layout.");
}

/// <summary>
/// Elements that the model file stored in ONNX's typed fields (<c>float_data</c>, <c>int64_data</c>, ...).
/// They are converted to raw layout on first access, and written back in their original typed form when
/// the tensor stays inline, so a round trip does not change how the file stores them.
/// </summary>
public sealed class TypedFieldTensorData : TensorData
{
    private readonly Lazy<byte[]> _raw;

    internal TypedFieldTensorData(Protobuf.TensorProto typedFields, Func<byte[]> toRaw)
    {
        TypedFields = typedFields;
        _raw = new Lazy<byte[]>(toRaw, LazyThreadSafetyMode.ExecutionAndPublication);
    }

    /// <summary>The typed fields exactly as read (only data fields are set).</summary>
    internal Protobuf.TensorProto TypedFields { get; }

    /// <inheritdoc />
    public override long ByteLength => _raw.Value.LongLength;

    /// <inheritdoc />
    public override Stream OpenRead() => new MemoryStream(_raw.Value, writable: false);

    /// <inheritdoc />
    public override TensorDataLease Acquire() => new(_raw.Value, null);
}

/// <summary>A range of bytes in an external data file, read lazily.</summary>
public sealed class ExternalTensorData : TensorData
{
    internal ExternalTensorData(IO.ExternalDataFile file, long offset, long length)
    {
        File = file;
        Offset = offset;
        Length = length;
    }

    internal IO.ExternalDataFile File { get; }

    /// <summary>Absolute path of the file holding the bytes.</summary>
    public string FilePath => File.FullPath;

    /// <summary>Byte offset of the data within the file.</summary>
    public long Offset { get; }

    /// <summary>Number of bytes.</summary>
    public long Length { get; }

    /// <inheritdoc />
    public override long ByteLength => Length;

    /// <inheritdoc />
    public override Stream OpenRead() => File.OpenRange(Offset, Length);

    /// <inheritdoc />
    public override TensorDataLease Acquire()
    {
        EnsureSpanAddressable(Length, $"External tensor data at offset {Offset} of '{FilePath}'");
        return File.Map(Offset, Length);
    }
}
