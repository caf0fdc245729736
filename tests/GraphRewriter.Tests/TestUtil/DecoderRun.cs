using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;
using SparseOnnx.GraphRewriter.Synthesis;

namespace SparseOnnx.GraphRewriter.Tests.TestUtil;

/// <summary>
/// One forward pass of a decoder with Optimum's or onnxruntime-genai's KV-cache I/O, on inputs [batch, ·] given
/// row-major (position_ids only when the model has that input); the past is the previous pass's present.*
/// outputs, or empty ([batch, kvHeads, 0, headDim]) without one. Returns every output by name, a float16 model's widened to float32.
/// </summary>
public static class DecoderRun
{
    public static Dictionary<string, FloatTensor> Step(InferenceSession session, LlamaDimensions dims, int batch, long[] inputIds, long[] attentionMask,
        long[] positionIds, IReadOnlyDictionary<string, FloatTensor>? past = null)
    {
        var inputs = new Dictionary<string, OrtValue>();
        try
        {
            inputs["input_ids"] = OrtValue.CreateTensorValueFromMemory(inputIds, [batch, inputIds.Length / batch]);
            inputs["attention_mask"] = OrtValue.CreateTensorValueFromMemory(attentionMask, [batch, attentionMask.Length / batch]);
            if (session.InputNames.Contains("position_ids"))
                inputs["position_ids"] = OrtValue.CreateTensorValueFromMemory(positionIds, [batch, positionIds.Length / batch]);
            for (int layer = 0; layer < dims.Layers; layer++)
                foreach (string kv in new[] { "key", "value" })
                {
                    var cache = past?[$"present.{layer}.{kv}"] ?? new FloatTensor([], [batch, dims.KvHeads, 0, dims.HeadDim]);
                    string name = $"past_key_values.{layer}.{kv}";
                    inputs[name] = session.InputMetadata[name].ElementDataType == TensorElementType.Float16
                        ? OrtValue.CreateTensorValueFromMemory(cache.Data.Select(v => (Float16)v).ToArray(), cache.Shape)
                        : OrtValue.CreateTensorValueFromMemory(cache.Data, cache.Shape);
                }
            var outputNames = session.OutputNames.ToArray();
            using var runOptions = new RunOptions();
            using var outputs = session.Run(runOptions, inputs, outputNames);
            var result = new Dictionary<string, FloatTensor>();
            for (int i = 0; i < outputNames.Length; i++)
            {
                var info = outputs[i].GetTensorTypeAndShape();
                var values = info.ElementDataType == TensorElementType.Float16
                    ? outputs[i].GetTensorDataAsSpan<Float16>().ToArray().Select(h => (float)h).ToArray()
                    : outputs[i].GetTensorDataAsSpan<float>().ToArray();
                result[outputNames[i]] = new FloatTensor(values, info.Shape);
            }
            return result;
        }
        finally
        {
            foreach (var value in inputs.Values) value.Dispose();
        }
    }
}
