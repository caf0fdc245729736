using System.Buffers;
using System.IO.MemoryMappedFiles;
using SparseOnnx.GraphRewriter.Ir;

namespace SparseOnnx.GraphRewriter.IO;

/// <summary>
/// An external data file opened read-only and memory-mapped once; tensors are ranges of it. Mapping
/// reserves address space only: pages are read when a pass touches them, and a streamed copy
/// (<see cref="OpenRange"/>) bypasses the mapping so it does not grow this process's resident memory.
/// </summary>
internal sealed class ExternalDataFile : IDisposable
{
    private readonly MemoryMappedFile? _map;
    private bool _disposed;

    public ExternalDataFile(string fullPath)
    {
        FullPath = fullPath;
        Length = new FileInfo(fullPath).Length;
        // A zero-length file cannot be mapped; it can only back zero-length tensors.
        if (Length > 0)
            _map = MemoryMappedFile.CreateFromFile(fullPath, FileMode.Open, mapName: null, 0, MemoryMappedFileAccess.Read);
    }

    /// <summary>Absolute, symlink-resolved path.</summary>
    public string FullPath { get; }

    /// <summary>File size in bytes when opened.</summary>
    public long Length { get; }

    /// <summary>A stream over [offset, offset + length) that reads through the file, not the mapping.</summary>
    public Stream OpenRange(long offset, long length)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        // A zero-length range needs no file access (and must not block on a FIFO posing as a data file).
        if (length == 0) return new MemoryStream(Array.Empty<byte>(), writable: false);
        var stream = new FileStream(FullPath, FileMode.Open, FileAccess.Read, FileShare.Read, bufferSize: 1, FileOptions.SequentialScan);
        stream.Position = offset;
        return new RangeReadStream(stream, length);
    }

    /// <summary>Maps [offset, offset + length) and returns it as a lease that unmaps on dispose.</summary>
    public unsafe TensorDataLease Map(long offset, long length)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (length == 0) return new TensorDataLease(ReadOnlyMemory<byte>.Empty, null);
        var view = _map!.CreateViewAccessor(offset, length, MemoryMappedFileAccess.Read);
        byte* pointer = null;
        view.SafeMemoryMappedViewHandle.AcquirePointer(ref pointer);
        var manager = new MappedViewMemory(view, pointer + view.PointerOffset, checked((int)length));
        return new TensorDataLease(manager.Memory, manager);
    }

    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        _map?.Dispose();
    }

    /// <summary>Exposes a mapped view as <see cref="Memory{T}"/>; disposing it unmaps the view.</summary>
    private sealed unsafe class MappedViewMemory : MemoryManager<byte>
    {
        private readonly MemoryMappedViewAccessor _view;
        private readonly byte* _pointer;
        private readonly int _length;
        private bool _released;

        public MappedViewMemory(MemoryMappedViewAccessor view, byte* pointer, int length)
        {
            _view = view;
            _pointer = pointer;
            _length = length;
        }

        public override Span<byte> GetSpan()
        {
            ObjectDisposedException.ThrowIf(_released, this);
            return new Span<byte>(_pointer, _length);
        }

        public override MemoryHandle Pin(int elementIndex = 0) => new(_pointer + elementIndex);

        public override void Unpin() { }

        protected override void Dispose(bool disposing)
        {
            if (_released) return;
            _released = true;
            _view.SafeMemoryMappedViewHandle.ReleasePointer();
            _view.Dispose();
        }
    }
}

/// <summary>A read-only stream over a fixed-length range of another stream, which it owns.</summary>
internal sealed class RangeReadStream : Stream
{
    private readonly Stream _inner;
    private readonly long _start;
    private readonly long _length;

    public RangeReadStream(Stream inner, long length)
    {
        _inner = inner;
        _start = inner.Position;
        _length = length;
    }

    public override bool CanRead => true;
    public override bool CanSeek => true;
    public override bool CanWrite => false;
    public override long Length => _length;

    public override long Position
    {
        get => _inner.Position - _start;
        set => _inner.Position = _start + Math.Clamp(value, 0, _length);
    }

    public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

    public override int Read(Span<byte> buffer)
    {
        long remaining = _length - Position;
        if (remaining <= 0) return 0;
        if (buffer.Length > remaining) buffer = buffer[..(int)remaining];
        int read = _inner.Read(buffer);
        // The range was checked against the file size at load; a short read means the file shrank since.
        if (read == 0) throw new IOException($"External data ends early: the file was truncated after the model was loaded.");
        return read;
    }

    public override long Seek(long offset, SeekOrigin origin)
    {
        Position = origin switch
        {
            SeekOrigin.Begin => offset,
            SeekOrigin.Current => Position + offset,
            _ => _length + offset,
        };
        return Position;
    }

    public override void Flush() { }
    public override void SetLength(long value) => throw new NotSupportedException();
    public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();

    protected override void Dispose(bool disposing)
    {
        if (disposing) _inner.Dispose();
        base.Dispose(disposing);
    }
}
