namespace SparseOnnx.GraphRewriter.Ir;

/// <summary>
/// A forward-only read stream over bytes computed one chunk at a time (a band of a transposed weight, a row of
/// a sliced one), so tensor data derived from a large source is written without materializing it. A subclass
/// fills the chunk buffer; this class serves reads from it.
/// </summary>
internal abstract class ChunkedReadStream : Stream
{
    private readonly byte[] _chunk;
    private readonly long _length;
    private int _chunkLength, _chunkPosition;
    private long _position;

    /// <param name="chunkBytes">The largest chunk <see cref="FillChunk"/> produces.</param>
    /// <param name="length">Total bytes the stream yields.</param>
    protected ChunkedReadStream(int chunkBytes, long length)
    {
        _chunk = new byte[chunkBytes];
        _length = length;
    }

    /// <summary>Writes the next chunk into <paramref name="chunk"/> and returns its length, or 0 at the end.</summary>
    protected abstract int FillChunk(byte[] chunk);

    public override bool CanRead => true;
    public override bool CanSeek => false;
    public override bool CanWrite => false;
    public override long Length => _length;
    public override long Position { get => _position; set => throw new NotSupportedException(); }

    public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

    public override int Read(Span<byte> buffer)
    {
        if (_chunkPosition == _chunkLength)
        {
            _chunkLength = FillChunk(_chunk);
            _chunkPosition = 0;
            if (_chunkLength == 0) return 0;
        }
        int n = Math.Min(buffer.Length, _chunkLength - _chunkPosition);
        _chunk.AsSpan(_chunkPosition, n).CopyTo(buffer);
        _chunkPosition += n;
        _position += n;
        return n;
    }

    public override void Flush() { }
    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
    public override void SetLength(long value) => throw new NotSupportedException();
    public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
}
