using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;

namespace SparseOnnx.Runtime.Inference;

/// <summary>
/// One call of the decoder: builds its inputs (ids, mask, positions, past key/values or empty ones), runs it,
/// and owns the outputs until disposed, so the present key/values can be fed to the next call without a copy.
/// </summary>
internal sealed class DecoderRun : IDisposable
{
    private readonly IDisposableReadOnlyCollection<OrtValue> _outputs;
    private readonly string[] _outputNames;

    // pastValues: the previous run, whose presents become this run's past; null for an empty cache.
    public DecoderRun(CausalLm model, long[] ids, long[] mask, long[] positions, int batch, int length, DecoderRun? pastValues)
    {
        var signature = model.Signature;
        var names = new List<string>();
        var values = new List<OrtValue>();
        var owned = new List<OrtValue>();
        try
        {
            void Add(string name, OrtValue value, bool own)
            {
                names.Add(name);
                values.Add(value);
                if (own) owned.Add(value);
            }
            DecoderInputs.Add(signature, ids, mask, positions, batch, length, pastValues is null ? null : pastValues.Output, Add);
            _outputNames = [signature.Logits, .. signature.Layers.SelectMany(l => new[] { l.PresentKey, l.PresentValue })];
            using var runOptions = new RunOptions();
            _outputs = model.Session.Run(runOptions, names, values, _outputNames);
        }
        finally
        {
            foreach (var value in owned) value.Dispose();
        }
    }

    /// <summary>An output by name; owned by this run.</summary>
    public OrtValue Output(string name) => _outputs[Array.IndexOf(_outputNames, name)];

    /// <summary>The logits as float32, whatever their stored type; <paramref name="shape"/> receives [batch, length, vocabulary].</summary>
    public float[] LogitsAsFloat(out long[] shape)
    {
        shape = _outputs[0].GetTensorTypeAndShape().Shape;
        return LogitsSlice(0, shape.Aggregate(1L, (a, b) => a * b));
    }

    /// <summary>The logits of the last position of batch row 0, as float32.</summary>
    public float[] LastLogits()
    {
        long[] shape = _outputs[0].GetTensorTypeAndShape().Shape;
        long vocabulary = shape[^1];
        return LogitsSlice((shape[1] - 1) * vocabulary, vocabulary);
    }

    private float[] LogitsSlice(long offset, long count)
    {
        var logits = _outputs[0];
        switch (logits.GetTensorTypeAndShape().ElementDataType)
        {
            case TensorElementType.Float:
                return logits.GetTensorDataAsSpan<float>().Slice((int)offset, (int)count).ToArray();
            case TensorElementType.Float16:
                var values = logits.GetTensorDataAsSpan<Float16>().Slice((int)offset, (int)count);
                var result = new float[values.Length];
                for (int i = 0; i < values.Length; i++) result[i] = (float)values[i];
                return result;
            case var other:
                throw new InvalidOperationException($"Logits of type {other} are not supported.");
        }
    }

    public void Dispose() => _outputs.Dispose();
}
