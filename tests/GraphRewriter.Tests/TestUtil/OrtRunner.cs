using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;

namespace SparseOnnx.GraphRewriter.Tests.TestUtil;

/// <summary>
/// Runs a model file in ONNX Runtime (graph optimizations off, so what runs is what the file says; the
/// SparseOnnx ops registered) on seeded random inputs and returns every output's raw bytes.
/// </summary>
public static class OrtRunner
{
    /// <param name="dims">Values for symbolic input dimensions, by name; unnamed dynamic dimensions get 1.</param>
    /// <param name="intUpperBound">Integer inputs are drawn from [0, intUpperBound).</param>
    public static Dictionary<string, byte[]> Run(string modelPath, int seed, IReadOnlyDictionary<string, long>? dims = null, long intUpperBound = 8)
    {
        using var session = Sessions.Open(modelPath);
        var random = new Random(seed);
        var inputs = new Dictionary<string, OrtValue>();
        try
        {
            foreach (var (name, meta) in session.InputMetadata.OrderBy(kv => kv.Key, StringComparer.Ordinal))
            {
                long[] shape = meta.Dimensions.Select((d, i) => d >= 0 ? d
                    : dims is not null && meta.SymbolicDimensions[i] is { Length: > 0 } s && dims.TryGetValue(s, out long v) ? v : 1L).ToArray();
                inputs[name] = RandomTensor(meta.ElementDataType, shape, random, intUpperBound);
            }
            using var runOptions = new RunOptions();
            var outputNames = session.OutputNames.ToArray();
            using var outputs = session.Run(runOptions, inputs, outputNames);
            var result = new Dictionary<string, byte[]>();
            for (int i = 0; i < outputNames.Length; i++)
                result[outputNames[i]] = outputs[i].GetTensorMutableRawData().ToArray();
            return result;
        }
        finally
        {
            foreach (var value in inputs.Values) value.Dispose();
        }
    }

    private static OrtValue RandomTensor(TensorElementType type, long[] shape, Random random, long intUpperBound)
    {
        long count = shape.Aggregate(1L, (a, b) => a * b);
        return type switch
        {
            TensorElementType.Float => OrtValue.CreateTensorValueFromMemory(
                Enumerable.Range(0, (int)count).Select(_ => (float)(random.NextDouble() * 2 - 1)).ToArray(), shape),
            TensorElementType.Int64 => OrtValue.CreateTensorValueFromMemory(
                Enumerable.Range(0, (int)count).Select(_ => random.NextInt64(intUpperBound)).ToArray(), shape),
            TensorElementType.Int32 => OrtValue.CreateTensorValueFromMemory(
                Enumerable.Range(0, (int)count).Select(_ => (int)random.NextInt64(intUpperBound)).ToArray(), shape),
            TensorElementType.Bool => OrtValue.CreateTensorValueFromMemory(
                Enumerable.Range(0, (int)count).Select(_ => random.Next(2) == 1).ToArray(), shape),
            TensorElementType.Float16 => OrtValue.CreateTensorValueFromMemory(
                Enumerable.Range(0, (int)count).Select(_ => (Float16)(float)(random.NextDouble() * 2 - 1)).ToArray(), shape),
            TensorElementType.BFloat16 => OrtValue.CreateTensorValueFromMemory(
                Enumerable.Range(0, (int)count).Select(_ => (BFloat16)(float)(random.NextDouble() * 2 - 1)).ToArray(), shape),
            _ => throw new NotSupportedException($"No random input generator for {type}."),
        };
    }

    /// <summary>Asserts two output sets are bitwise identical, naming the first differing output and byte.</summary>
    public static void AssertBitwiseEqual(Dictionary<string, byte[]> expected, Dictionary<string, byte[]> actual)
    {
        Assert.Equal(expected.Keys.Order(), actual.Keys.Order());
        foreach (var (name, bytes) in expected)
        {
            var other = actual[name];
            Assert.True(bytes.Length == other.Length, $"Output '{name}': {bytes.Length} bytes expected, got {other.Length}.");
            int mismatch = bytes.AsSpan().CommonPrefixLength(other);
            Assert.True(mismatch == bytes.Length, $"Output '{name}' differs first at byte {mismatch} of {bytes.Length}.");
        }
    }
}
