using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;
using Tensor = SparseOnnx.GraphRewriter.Ir.Tensor;
using SparseOnnx.GraphRewriter.IO;
using SparseOnnx.GraphRewriter.Ir;

namespace SparseOnnx.CustomOps.Tests;

/// <summary>Single-node models (TopKSparseMatMul, or MatMul for the reference) built in code, and runners for them.</summary>
public static class OpModels
{
    /// <summary>A model Y = op(A, B) with B a constant initializer (or a graph input when <paramref name="constantB"/> is false).</summary>
    public static byte[] Build(string domain, string opType, DataType type, object[] aDims, long[] bDims, float[]? b,
        bool constantB = true, params OnnxAttribute[] attributes)
    {
        var graph = new Graph("op");
        var builder = new GraphBuilder(graph);
        var a = builder.Input("A", type, aDims);
        var bValue = constantB
            ? builder.Initializer(new Tensor("B", type, bDims, new InMemoryTensorData(Encode(b!, type))))
            : builder.Input("B", type, bDims.Cast<object>().ToArray());
        var node = builder.Node(domain, opType, [a, bValue], 1, "op", attributes);
        node.Outputs[0].Name = "Y";
        builder.Output(node.Outputs[0]);
        node.Outputs[0].Type = new TensorType(type, null);
        using var model = new Model(graph) { IrVersion = 8 };
        model.OpsetImports.Set("", 17);
        model.OpsetImports.Set(SparseOnnxOps.Domain, SparseOnnxOps.OpsetVersion);
        return ModelSaver.ToBytes(model);
    }

    public static byte[] TopK(DataType type, long K, long N, float[] b, long? k = null, float? threshold = null, object[]? aDims = null) =>
        Build(SparseOnnxOps.Domain, SparseOnnxOps.TopKSparseMatMul, type, aDims ?? ["m", K], [K, N], b, true, Attributes(k, threshold));

    public static byte[] MatMul(DataType type, long K, long N, float[] b, object[]? aDims = null) =>
        Build("", "MatMul", type, aDims ?? ["m", K], [K, N], b);

    public static OnnxAttribute[] Attributes(long? k, float? threshold)
    {
        var list = new List<OnnxAttribute>();
        if (k is not null) list.Add(OnnxAttribute.Int("k", k.Value));
        if (threshold is not null) list.Add(OnnxAttribute.Float("threshold", threshold.Value));
        return list.ToArray();
    }

    public static InferenceSession Session(byte[] model, int threads = 2)
    {
        using var options = new SessionOptions { GraphOptimizationLevel = GraphOptimizationLevel.ORT_DISABLE_ALL, IntraOpNumThreads = threads };
        options.RegisterSparseOnnxOps();
        return new InferenceSession(model, options);
    }

    /// <summary>Runs a session on A (given as floats, converted to <paramref name="type"/>) and returns Y as floats.</summary>
    public static float[] Run(InferenceSession session, DataType type, float[] a, long[] aShape, float[]? b = null, long[]? bShape = null)
    {
        var inputs = new Dictionary<string, OrtValue> { ["A"] = Value(type, a, aShape) };
        if (b is not null) inputs["B"] = Value(type, b, bShape!);
        try
        {
            using var runOptions = new RunOptions();
            using var outputs = session.Run(runOptions, inputs, ["Y"]);
            return Decode(outputs[0], type);
        }
        finally
        {
            foreach (var v in inputs.Values) v.Dispose();
        }
    }

    public static OrtValue Value(DataType type, float[] values, long[] shape) => type switch
    {
        DataType.Float => OrtValue.CreateTensorValueFromMemory(values.ToArray(), shape),
        DataType.Float16 => OrtValue.CreateTensorValueFromMemory(values.Select(v => (Float16)v).ToArray(), shape),
        DataType.BFloat16 => OrtValue.CreateTensorValueFromMemory(values.Select(v => (BFloat16)v).ToArray(), shape),
        DataType.Double => OrtValue.CreateTensorValueFromMemory(values.Select(v => (double)v).ToArray(), shape),
        _ => throw new NotSupportedException(type.ToString()),
    };

    public static float[] Decode(OrtValue value, DataType type) => type switch
    {
        DataType.Float => value.GetTensorDataAsSpan<float>().ToArray(),
        DataType.Float16 => value.GetTensorDataAsSpan<Float16>().ToArray().Select(h => (float)h).ToArray(),
        DataType.BFloat16 => value.GetTensorDataAsSpan<BFloat16>().ToArray().Select(h => (float)h).ToArray(),
        _ => throw new NotSupportedException(type.ToString()),
    };

    /// <summary>Values as raw little-endian bytes of <paramref name="type"/>.</summary>
    public static byte[] Encode(float[] values, DataType type) => type switch
    {
        DataType.Float => System.Runtime.InteropServices.MemoryMarshal.AsBytes(values.AsSpan()).ToArray(),
        DataType.Float16 => System.Runtime.InteropServices.MemoryMarshal.AsBytes(values.Select(v => (Float16)v).ToArray().AsSpan()).ToArray(),
        DataType.BFloat16 => System.Runtime.InteropServices.MemoryMarshal.AsBytes(values.Select(v => (BFloat16)v).ToArray().AsSpan()).ToArray(),
        DataType.Double => System.Runtime.InteropServices.MemoryMarshal.AsBytes(values.Select(v => (double)v).ToArray().AsSpan()).ToArray(),
        _ => throw new NotSupportedException(type.ToString()),
    };

    /// <summary>Values rounded to what <paramref name="type"/> can hold.</summary>
    public static float[] RoundTo(float[] values, DataType type) => type switch
    {
        DataType.Float16 => values.Select(v => (float)(Float16)v).ToArray(),
        DataType.BFloat16 => values.Select(v => (float)(BFloat16)v).ToArray(),
        _ => values,
    };
}
