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
    private sealed class TransposeStream(TransposedTensorData data)
        : ChunkedReadStream(checked((int)Math.Min(BandRows, Math.Max(1, data._columns)) * (int)data._rows * data._elementSize), data.ByteLength)
    {
        private readonly TensorDataLease _source = data._source.Acquire();
        private long _nextColumn;

        // Transposes source columns [c0, c0 + band) into output rows, reading each source row's slice once.
        protected override int FillChunk(byte[] chunk)
        {
            if (_nextColumn >= data._columns) return 0;
            int size = data._elementSize;
            long rows = data._rows, columns = data._columns;
            int band = (int)Math.Min(BandRows, columns - _nextColumn);
            var source = _source.Span;
            for (long r = 0; r < rows; r++)
            {
                var slice = source.Slice(checked((int)((r * columns + _nextColumn) * size)), band * size);
                for (int c = 0; c < band; c++)
                    slice.Slice(c * size, size).CopyTo(chunk.AsSpan((int)((c * rows + r) * size), size));
            }
            _nextColumn += band;
            return band * (int)rows * size;
        }

        protected override void Dispose(bool disposing)
        {
            if (disposing) _source.Dispose();
            base.Dispose(disposing);
        }
    }
}
