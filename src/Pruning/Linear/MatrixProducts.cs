using Microsoft.ML.OnnxRuntime;
using SparseOnnx.GraphRewriter.IO;
using SparseOnnx.GraphRewriter.Ir;

namespace SparseOnnx.Pruning.Linear;

/// <summary>
/// The large matrix products of the decompositions (tokens × neurons data times a thin matrix, the ICA
/// iterations over every neuron), run by ONNX Runtime's Gemm: its MLAS kernels are the tuned SGEMM this
/// project already ships, an order of magnitude faster on the development machine than a managed product
/// (about 5 GFLOP/s for MathNet's managed provider). One session per transpose combination used, built on
/// first use.
/// Not thread-safe; dispose after use.
/// </summary>
public sealed class MatrixProducts : IDisposable
{
    private readonly InferenceSession?[] _sessions = new InferenceSession?[3];
    private readonly int _threads;

    /// <summary>Products using <paramref name="threads"/> ONNX Runtime threads (0: all cores).</summary>
    public MatrixProducts(int threads) => _threads = threads;

    /// <summary>A · B.</summary>
    public RowMatrix Multiply(RowMatrix a, RowMatrix b) => Run(a, b, false, false);

    /// <summary>Aᵀ · B.</summary>
    public RowMatrix TransposeAndMultiply(RowMatrix a, RowMatrix b) => Run(a, b, true, false);

    /// <summary>A · Bᵀ.</summary>
    public RowMatrix MultiplyByTranspose(RowMatrix a, RowMatrix b) => Run(a, b, false, true);

    private RowMatrix Run(RowMatrix a, RowMatrix b, bool transA, bool transB)
    {
        int m = transA ? a.Columns : a.Rows, k = transA ? a.Rows : a.Columns;
        int kb = transB ? b.Columns : b.Rows, n = transB ? b.Rows : b.Columns;
        if (k != kb) throw new ArgumentException($"Cannot multiply {m}×{k} by {kb}×{n}.");
        using var inputA = OrtValue.CreateTensorValueFromMemory(a.Data, [a.Rows, a.Columns]);
        using var inputB = OrtValue.CreateTensorValueFromMemory(b.Data, [b.Rows, b.Columns]);
        using var runOptions = new RunOptions();
        using var outputs = Session(transA, transB).Run(runOptions, ["A", "B"], [inputA, inputB], ["Y"]);
        var result = new RowMatrix(m, n);
        outputs[0].GetTensorDataAsSpan<float>().CopyTo(result.Data);
        return result;
    }

    /// <summary>The session of one transpose combination, created on first use.</summary>
    private InferenceSession Session(bool transA, bool transB)
    {
        int variant = transA ? 1 : transB ? 2 : 0; // Aᵀ·Bᵀ is never asked for
        if (_sessions[variant] is { } session) return session;
        using var options = new SessionOptions
        {
            IntraOpNumThreads = _threads,
            InterOpNumThreads = 1,
            ExecutionMode = ExecutionMode.ORT_SEQUENTIAL,
            // Outputs are different sizes every call; the arena would keep the largest of each alive.
            EnableCpuMemArena = false,
        };
        return _sessions[variant] = new InferenceSession(ModelSaver.ToBytes(GemmModel(transA, transB)), options);
    }

    private static Model GemmModel(bool transA, bool transB)
    {
        var model = new Model(new Graph("products"));
        model.IrVersion = 8;
        model.OpsetImports.Set("", 17);
        var builder = new GraphBuilder(model.Graph);
        var a = builder.Input("A", DataType.Float, "a0", "a1");
        var b = builder.Input("B", DataType.Float, "b0", "b1");
        var y = builder.Node("", "Gemm", [a, b], 1, "gemm", OnnxAttribute.Int("transA", transA ? 1 : 0), OnnxAttribute.Int("transB", transB ? 1 : 0)).Outputs[0];
        y.Name = "Y";
        builder.Output(y, DataType.Float, "m", "n");
        return model;
    }

    /// <inheritdoc />
    public void Dispose()
    {
        foreach (var session in _sessions) session?.Dispose();
    }
}
