using SparseOnnx.GraphRewriter.Ir;

namespace SparseOnnx.GraphRewriter.Pruning;

/// <summary>
/// A 2-D tensor with some rows and columns removed, computed while it is written: a [rows, columns] source
/// becomes [keptRows, keptColumns] in the same layout. Streaming copies one kept row at a time from the
/// (memory-mapped) source, so a large external weight is never held whole in managed memory.
/// </summary>
internal sealed class SlicedTensorData : TensorData
{
    private readonly TensorData _source;
    private readonly long _columns;
    private readonly int[] _rows;
    private readonly int[]? _keptColumns;
    private readonly int _elementSize;

    /// <param name="source">The source bytes, [rows, columns] row-major.</param>
    /// <param name="rows">Source rows.</param>
    /// <param name="columns">Source columns.</param>
    /// <param name="keptRows">Ascending rows to keep, or null for all.</param>
    /// <param name="keptColumns">Ascending columns to keep, or null for all.</param>
    /// <param name="elementSize">Bytes per element.</param>
    public SlicedTensorData(TensorData source, long rows, long columns, int[]? keptRows, int[]? keptColumns, int elementSize)
    {
        if (source.ByteLength != rows * columns * elementSize)
            throw new ArgumentException("The source's size does not match its shape.", nameof(source));
        Check(keptRows, rows, "row");
        Check(keptColumns, columns, "column");
        _source = source;
        _columns = columns;
        _rows = keptRows ?? Enumerable.Range(0, checked((int)rows)).ToArray();
        _keptColumns = keptColumns;
        _elementSize = elementSize;
    }

    private int OutputColumns => _keptColumns?.Length ?? (int)_columns;

    private int OutputRowBytes => OutputColumns * _elementSize;

    public override long ByteLength => (long)_rows.Length * OutputRowBytes;

    public override Stream OpenRead() => new SliceStream(this);

    public override TensorDataLease Acquire()
    {
        EnsureSpanAddressable(ByteLength, "A pruned weight");
        var bytes = new byte[ByteLength];
        using (var stream = OpenRead()) stream.ReadExactly(bytes);
        return new InMemoryTensorData(bytes).Acquire();
    }

    private static void Check(int[]? kept, long count, string what)
    {
        if (kept is null) return;
        for (int i = 0; i < kept.Length; i++)
            if (kept[i] < 0 || kept[i] >= count || (i > 0 && kept[i] <= kept[i - 1]))
                throw new ArgumentException($"Kept {what}s must be ascending indices below {count}.");
    }

    /// <summary>Produces one kept row at a time.</summary>
    private sealed class SliceStream(SlicedTensorData data) : ChunkedReadStream(data.OutputRowBytes, data.ByteLength)
    {
        private readonly TensorDataLease _source = data._source.Acquire();
        private int _nextRow;

        protected override int FillChunk(byte[] chunk)
        {
            if (_nextRow >= data._rows.Length) return 0;
            int size = data._elementSize;
            long rowBytes = data._columns * size;
            var source = _source.Span.Slice(checked((int)(data._rows[_nextRow] * rowBytes)), (int)rowBytes);
            if (data._keptColumns is not { } columns) source.CopyTo(chunk);
            else
                for (int c = 0; c < columns.Length; c++)
                    source.Slice(columns[c] * size, size).CopyTo(chunk.AsSpan(c * size, size));
            _nextRow++;
            return data.OutputRowBytes;
        }

        protected override void Dispose(bool disposing)
        {
            if (disposing) _source.Dispose();
            base.Dispose(disposing);
        }
    }
}
