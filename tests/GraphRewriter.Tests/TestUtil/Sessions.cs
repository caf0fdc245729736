using Microsoft.ML.OnnxRuntime;
using SparseOnnx.CustomOps;

namespace SparseOnnx.GraphRewriter.Tests.TestUtil;

/// <summary>ONNX Runtime sessions for numerics tests: graph optimizations off (what runs is what the file says), the SparseOnnx ops registered.</summary>
public static class Sessions
{
    public static InferenceSession Open(string modelPath)
    {
        using var options = new SessionOptions { GraphOptimizationLevel = GraphOptimizationLevel.ORT_DISABLE_ALL }.RegisterSparseOnnxOps();
        return new InferenceSession(modelPath, options);
    }

    public static InferenceSession Open(byte[] model)
    {
        using var options = new SessionOptions { GraphOptimizationLevel = GraphOptimizationLevel.ORT_DISABLE_ALL }.RegisterSparseOnnxOps();
        return new InferenceSession(model, options);
    }
}
