using SparseOnnx.GraphRewriter.Ir;

namespace SparseOnnx.GraphRewriter.Sparsify;

/// <summary>
/// The transpose of a 2-D tensor, computed while it is written: a [rows, columns] source becomes
/// [columns, rows]. Streaming transposes a band of output rows at a time from the mapped source, so memory
/// holds one band, not the matrix (the source's pages are released when the stream is closed).
/// </summary>
internal sealed class TransposedTensorData : TensorData
{
    private const int BandRows = 64;
    private readonly TensorData _source;
    private readonly long _rows, _columns;
    private readonly int _elementSize;

    public TransposedTensorData(TensorData source, long rows, long columns, int elementSize)
    {
        if (source.ByteLength != rows * columns * elementSize)
            throw new ArgumentException("The source's size does not match its shape.", nameof(source));
        _source = source;
        _rows = rows;
        _columns = columns;
        _elementSize = elementSize;
    }

    public override long ByteLength => _source.ByteLength;

    public override Stream OpenRead() => new TransposeStream(this);

    public override TensorDataLease Acquire()
    {
        EnsureSpanAddressable(ByteLength, "A transposed weight");
        var bytes = new byte[ByteLength];
        using (var stream = OpenRead()) stream.ReadExactly(bytes);
        return new InMemoryTensorData(bytes).Acquire();
    }

    /// <summary>Produces output row bands on demand: output row c is source column c.</summary>
    private sealed class TransposeStream : Stream
    {
        private readonly TransposedTensorData _data;
        private readonly TensorDataLease _source;
        private readonly byte[] _band;
        private long _nextColumn;
        private int _bandLength, _bandPosition;
        private long _position;

        public TransposeStream(TransposedTensorData data)
        {
            _data = data;
            _source = data._source.Acquire();
            _band = new byte[checked((int)Math.Min(BandRows, Math.Max(1, data._columns)) * (int)data._rows * data._elementSize)];
        }

        public override bool CanRead => true;
        public override bool CanSeek => false;
        public override bool CanWrite => false;
        public override long Length => _data.ByteLength;
        public override long Position { get => _position; set => throw new NotSupportedException(); }

        public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

        public override int Read(Span<byte> buffer)
        {
            if (_bandPosition == _bandLength && !FillBand()) return 0;
            int n = Math.Min(buffer.Length, _bandLength - _bandPosition);
            _band.AsSpan(_bandPosition, n).CopyTo(buffer);
            _bandPosition += n;
            _position += n;
            return n;
        }

        // Transposes source columns [c0, c0 + band) into output rows, reading each source row's slice once.
        private bool FillBand()
        {
            if (_nextColumn >= _data._columns) return false;
            int size = _data._elementSize;
            long rows = _data._rows, columns = _data._columns;
            int band = (int)Math.Min(BandRows, columns - _nextColumn);
            var source = _source.Span;
            for (long r = 0; r < rows; r++)
            {
                var slice = source.Slice(checked((int)((r * columns + _nextColumn) * size)), band * size);
                for (int c = 0; c < band; c++)
                    slice.Slice(c * size, size).CopyTo(_band.AsSpan((int)((c * rows + r) * size), size));
            }
            _nextColumn += band;
            _bandLength = band * (int)rows * size;
            _bandPosition = 0;
            return true;
        }

        public override void Flush() { }
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();

        protected override void Dispose(bool disposing)
        {
            if (disposing) _source.Dispose();
            base.Dispose(disposing);
        }
    }
}
