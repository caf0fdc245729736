using SparseOnnx.GraphRewriter.Ir;

namespace SparseOnnx.GraphRewriter.Quantization;

/// <summary>
/// The quantized weight of a MatMulNBits projection: its constant inputs and attributes, read into
/// <see cref="NBitsBlocks"/> on demand (never kept: a large model's weights are read one at a time).
/// </summary>
public sealed class MatMulNBitsWeight
{
    internal MatMulNBitsWeight(Node node, Value b, Value scales, Value? zeroPoints, int bits, long k, long n, int blockSize, int accuracyLevel, string? problem)
    {
        Node = node;
        B = b;
        Scales = scales;
        ZeroPoints = zeroPoints;
        Bits = bits;
        K = k;
        N = n;
        BlockSize = blockSize;
        AccuracyLevel = accuracyLevel;
        Problem = problem;
    }

    public Node Node { get; }
    public Value B { get; }
    public Value Scales { get; }
    public Value? ZeroPoints { get; }
    public int Bits { get; }
    public long K { get; }
    public long N { get; }
    public int BlockSize { get; }
    public int AccuracyLevel { get; }

    /// <summary>Why SparseOnnx cannot read this weight (g_idx, 3 bits, ...), or null.</summary>
    public string? Problem { get; }

    /// <summary>A short description: <c>int4 b32</c>, with <c>zp</c> when it has zero points.</summary>
    public string Description => $"int{Bits} b{BlockSize}{(ZeroPoints is null ? "" : " zp")} level {AccuracyLevel}";

    /// <summary>True when every scale is a float16 number, so storing them as float16 changes no weight.</summary>
    public bool ScalesFitFloat16()
    {
        if (Scales.ConstValue is not { } tensor) return false;
        if (tensor.DataType == DataType.Float16) return true;
        if (tensor.DataType != DataType.Float) return false;
        using var lease = tensor.Data.Acquire();
        foreach (float s in lease.AsSpan<float>())
            if ((float)(Half)s != s) return false;
        return true;
    }

    /// <summary>Reads the codes, scales and zero points.</summary>
    public NBitsBlocks Read() => Reader()();

    /// <summary>
    /// A function reading this weight from the tensors it has now, independent of the node and the graph
    /// afterwards (a rewrite may retype the node and drop the old initializers before the model is saved).
    /// </summary>
    public Func<NBitsBlocks> Reader()
    {
        if (Problem is not null) throw new InvalidModelException($"MatMulNBits node '{Node.Name}': {Problem}.");
        static Tensor Constant(Value v) => v.ConstValue ?? throw new InvalidModelException($"'{v.Name}' is not a constant.");
        var (b, scales, zeros) = (Constant(B), Constant(Scales), ZeroPoints is null ? null : Constant(ZeroPoints));
        var (name, bits, k, n, blockSize) = (Node.Name ?? "", Bits, K, N, BlockSize);
        return () => MatMulNBitsFormat.Read(name, bits, k, n, blockSize, b, scales, zeros);
    }
}
