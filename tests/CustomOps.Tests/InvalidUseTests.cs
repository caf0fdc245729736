using Microsoft.ML.OnnxRuntime;
using SparseOnnx.GraphRewriter.Ir;

namespace SparseOnnx.CustomOps.Tests;

/// <summary>Every invalid use of TopKSparseMatMul fails with an ONNX Runtime error that says what is wrong; none crashes.</summary>
public class InvalidUseTests
{
    private static readonly float[] B8x4 = Enumerable.Range(0, 32).Select(i => i * 0.1f).ToArray();

    private static OnnxRuntimeException SessionFails(byte[] model) =>
        Assert.Throws<OnnxRuntimeException>(() => OpModels.Session(model).Dispose());

    private static OnnxRuntimeException RunFails(byte[] model, DataType type, float[] a, long[] aShape, float[]? b = null, long[]? bShape = null)
    {
        using var session = OpModels.Session(model);
        return Assert.Throws<OnnxRuntimeException>(() => OpModels.Run(session, type, a, aShape, b, bShape));
    }

    private static byte[] Model(OnnxAttribute[] attributes, bool constantB = true, object[]? aDims = null, long[]? bDims = null, DataType type = DataType.Float) =>
        OpModels.Build(SparseOnnxOps.Domain, SparseOnnxOps.TopKSparseMatMul, type, aDims ?? ["m", 8L], bDims ?? [8, 4], constantB ? B8x4 : null, constantB, attributes);

    [Fact]
    public void BothAttributes() =>
        Assert.Contains("exactly one of the attributes 'k' (int) and 'threshold' (float); it has both",
            SessionFails(Model([OnnxAttribute.Int("k", 2), OnnxAttribute.Float("threshold", 0.5f)])).Message);

    [Fact]
    public void NeitherAttribute() =>
        Assert.Contains("it has neither", SessionFails(Model([])).Message);

    [Fact]
    public void KBelowOne() => Assert.Contains("k must be at least 1, got 0", SessionFails(Model([OnnxAttribute.Int("k", 0)])).Message);

    [Fact]
    public void NegativeThreshold() =>
        Assert.Contains("threshold must be a non-negative number", SessionFails(Model([OnnxAttribute.Float("threshold", -1f)])).Message);

    [Fact]
    public void NaNThreshold() =>
        Assert.Contains("threshold must be a non-negative number", SessionFails(Model([OnnxAttribute.Float("threshold", float.NaN)])).Message);

    [Fact]
    public void KAboveKWithConstantBFailsWhenTheSessionIsCreated()
    {
        var error = SessionFails(Model([OnnxAttribute.Int("k", 9)]));
        Assert.Contains("k = 9 exceeds K = 8", error.Message);
        Assert.Contains("TopKSparseMatMul node 'op'", error.Message);
    }

    [Fact]
    public void KAboveKWithRuntimeBFailsWhenRun() =>
        Assert.Contains("k = 9 exceeds K = 8",
            RunFails(Model([OnnxAttribute.Int("k", 9)], constantB: false), DataType.Float, new float[8], [1, 8], B8x4, [8, 4]).Message);

    [Fact]
    public void RankOneA() =>
        Assert.Contains("A must have rank 2 or more",
            RunFails(Model([OnnxAttribute.Int("k", 2)], aDims: [8L]), DataType.Float, new float[8], [8]).Message);

    [Fact]
    public void BNotAMatrix() =>
        Assert.Contains("B must be a matrix [K, N], got shape [2, 4, 4]",
            RunFails(Model([OnnxAttribute.Int("k", 2)], constantB: false, bDims: [2, 4, 4]), DataType.Float, new float[8], [1, 8], B8x4, [2, 4, 4]).Message);

    [Fact]
    public void ConstantBNotAMatrixFailsWhenTheSessionIsCreated()
    {
        var model = OpModels.Build(SparseOnnxOps.Domain, SparseOnnxOps.TopKSparseMatMul, DataType.Float, ["m", 8L], [2, 4, 4], B8x4, true, OnnxAttribute.Int("k", 2));
        Assert.Contains("B must be a matrix", SessionFails(model).Message);
    }

    [Fact]
    public void KMismatch() =>
        Assert.Contains("A's last dimension is 8 but B has 6 rows",
            RunFails(Model([OnnxAttribute.Int("k", 2)], constantB: false, bDims: [6, 4]), DataType.Float, new float[8], [1, 8], new float[24], [6, 4]).Message);

    [Fact]
    public void UnsupportedElementTypeIsRejectedByOnnxRuntime()
    {
        var model = OpModels.Build(SparseOnnxOps.Domain, SparseOnnxOps.TopKSparseMatMul, DataType.Double, ["m", 8L], [8, 4], B8x4, true, OnnxAttribute.Int("k", 2));
        var error = SessionFails(model);
        Assert.Contains("tensor(double)", error.Message);
        Assert.Contains("TopKSparseMatMul", error.Message);
    }

    [Fact]
    public void MixedElementTypesAreRejected()
    {
        var graph = new Graph("op");
        var builder = new GraphBuilder(graph);
        var a = builder.Input("A", DataType.Float, "m", 8);
        var b = builder.Initializer(new Tensor("B", DataType.Float16, [8, 4], new InMemoryTensorData(OpModels.Encode(B8x4, DataType.Float16))));
        var node = builder.Node(SparseOnnxOps.Domain, SparseOnnxOps.TopKSparseMatMul, [a, b], 1, "op", OnnxAttribute.Int("k", 2));
        node.Outputs[0].Name = "Y";
        builder.Output(node.Outputs[0]);
        using var model = new Model(graph) { IrVersion = 8 };
        model.OpsetImports.Set("", 17);
        model.OpsetImports.Set(SparseOnnxOps.Domain, 1);
        Assert.Contains("TopKSparseMatMul", SessionFails(SparseOnnx.GraphRewriter.IO.ModelSaver.ToBytes(model)).Message);
    }

    [Fact]
    public void SessionWithoutTheLibraryNamesTheMissingOp()
    {
        using var options = new SessionOptions();
        var error = Assert.Throws<OnnxRuntimeException>(() => new InferenceSession(Model([OnnxAttribute.Int("k", 2)]), options).Dispose());
        Assert.Contains("TopKSparseMatMul", error.Message);
    }

    [Fact]
    public void MissingLibraryOverrideIsAClearError()
    {
        var previous = Environment.GetEnvironmentVariable(SparseOnnxOps.LibraryPathVariable);
        try
        {
            Environment.SetEnvironmentVariable(SparseOnnxOps.LibraryPathVariable, "/nonexistent/libsparseonnx_ops.so");
            var error = Assert.Throws<FileNotFoundException>(() => SparseOnnxOps.LibraryPath);
            Assert.Contains("/nonexistent/libsparseonnx_ops.so", error.Message);
        }
        finally
        {
            Environment.SetEnvironmentVariable(SparseOnnxOps.LibraryPathVariable, previous);
        }
    }
}
