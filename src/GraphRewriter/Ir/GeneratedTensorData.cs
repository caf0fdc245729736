using System.Buffers.Binary;
namespace SparseOnnx.GraphRewriter.Ir;

/// <summary>
/// Deterministic pseudo-random weights generated while streaming, so benchmarks and tests can write
/// gigabytes of weights without holding them in memory. Values are uniform in [-scale, scale), stored as
/// float32, float16 or bfloat16; the same seed always gives the same bytes.
/// </summary>
public sealed class GeneratedTensorData : TensorData
{
    private readonly DataType _type;
    private readonly long _elements;
    private readonly ulong _seed;
    private readonly float _scale;

    /// <summary>Creates <paramref name="elements"/> values of <paramref name="type"/> from <paramref name="seed"/>.</summary>
    public GeneratedTensorData(DataType type, long elements, ulong seed, float scale)
    {
        if (type is not (DataType.Float or DataType.Float16 or DataType.BFloat16))
            throw new ArgumentException($"Cannot generate {type} weights.", nameof(type));
        _type = type;
        _elements = elements;
        _seed = seed;
        _scale = scale;
    }

    private int ElementSize => _type == DataType.Float ? 4 : 2;

    /// <inheritdoc />
    public override long ByteLength => _elements * ElementSize;

    /// <inheritdoc />
    public override Stream OpenRead() => new GeneratorStream(this);

    /// <inheritdoc />
    public override TensorDataLease Acquire()
    {
        EnsureSpanAddressable(ByteLength, "Generated tensor data");
        var bytes = new byte[ByteLength];
        using (var stream = OpenRead()) stream.ReadExactly(bytes);
        return new InMemoryTensorData(bytes).Acquire();
    }

    private sealed class GeneratorStream(GeneratedTensorData data) : Stream
    {
        private ulong _state = data._seed * 0x9E3779B97F4A7C15UL + 1;
        private long _position;

        public override bool CanRead => true;
        public override bool CanSeek => false;
        public override bool CanWrite => false;
        public override long Length => data.ByteLength;
        public override long Position { get => _position; set => throw new NotSupportedException(); }

        public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

        public override int Read(Span<byte> buffer)
        {
            int size = data.ElementSize;
            long remaining = data.ByteLength - _position;
            int elements = (int)Math.Min(buffer.Length / size, remaining / size);
            for (int i = 0; i < elements; i++)
            {
                _state ^= _state << 13;
                _state ^= _state >> 7;
                _state ^= _state << 17;
                float value = ((_state >> 40) / (float)(1 << 24) * 2f - 1f) * data._scale;
                var slot = buffer.Slice(i * size, size);
                switch (data._type)
                {
                    case DataType.Float: BinaryPrimitives.WriteSingleLittleEndian(slot, value); break;
                    case DataType.Float16: BinaryPrimitives.WriteHalfLittleEndian(slot, (Half)value); break;
                    default: BinaryPrimitives.WriteUInt16LittleEndian(slot, (ushort)(BitConverter.SingleToUInt32Bits(value) >> 16)); break;
                }
            }
            _position += (long)elements * size;
            return elements * size;
        }

        public override void Flush() { }
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }
}
