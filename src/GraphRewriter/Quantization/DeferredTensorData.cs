using SparseOnnx.GraphRewriter.Ir;

namespace SparseOnnx.GraphRewriter.Quantization;

/// <summary>
/// Tensor bytes computed when they are read (while the model is saved, or by ORT's loader): a quantized
/// weight is produced from its source one tensor at a time, and nothing is kept once the bytes are written,
/// so rewriting a large model holds one weight's worth of memory, not the model's.
/// </summary>
internal sealed class DeferredTensorData(long byteLength, Func<byte[]> produce) : TensorData
{
    public override long ByteLength => byteLength;

    public override Stream OpenRead() => new MemoryStream(Produce(), writable: false);

    public override TensorDataLease Acquire() => new InMemoryTensorData(Produce()).Acquire();

    private byte[] Produce()
    {
        var bytes = produce();
        if (bytes.LongLength != byteLength)
            throw new InvalidOperationException($"A computed tensor produced {bytes.LongLength} bytes where {byteLength} were declared.");
        return bytes;
    }
}
