using System.Runtime.InteropServices;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;
using SparseOnnx.GraphRewriter.Sparsify;

namespace SparseOnnx.Calibration.Capture;

/// <summary>
/// The one place where calibration meets a half-precision model's tensors. Every statistic, target and hidden state
/// calibration keeps is float32; a float16 or bfloat16 model's probe outputs are widened as they are read, and the
/// hidden states it is fed are narrowed (round to nearest even) as they go in.
/// </summary>
internal static class ProbeElements
{
    /// <summary>
    /// A float32 view of <paramref name="value"/>: its own buffer when it is float32, else its elements widened into
    /// <paramref name="widened"/> (grown as needed, reused across calls).
    /// </summary>
    public static ReadOnlySpan<float> AsFloats(OrtValue value, ref float[]? widened)
    {
        var info = value.GetTensorTypeAndShape();
        switch (info.ElementDataType)
        {
            case TensorElementType.Float:
                return value.GetTensorDataAsSpan<float>();
            case TensorElementType.Float16:
            {
                var halves = MemoryMarshal.Cast<Float16, Half>(value.GetTensorDataAsSpan<Float16>());
                var target = Buffer(ref widened, halves.Length);
                for (int i = 0; i < halves.Length; i++) target[i] = (float)halves[i];
                return target;
            }
            case TensorElementType.BFloat16:
            {
                var bits = MemoryMarshal.Cast<BFloat16, ushort>(value.GetTensorDataAsSpan<BFloat16>());
                var target = Buffer(ref widened, bits.Length);
                for (int i = 0; i < bits.Length; i++) target[i] = FloatElements.FromBFloat16(bits[i]);
                return target;
            }
            default:
                throw new CalibrationModelException($"a probe output is {info.ElementDataType}; calibration reads float32, float16 and bfloat16");
        }
    }

    /// <summary>
    /// A tensor of <paramref name="type"/> and <paramref name="shape"/> holding <paramref name="values"/>: over the
    /// caller's memory when the type is float32 (keep it alive while the tensor is used), else a narrowed copy.
    /// </summary>
    public static OrtValue Tensor(Memory<float> values, long[] shape, TensorElementType type)
    {
        switch (type)
        {
            case TensorElementType.Float:
                return OrtValue.CreateTensorValueFromMemory(OrtMemoryInfo.DefaultInstance, values, shape);
            case TensorElementType.Float16:
            {
                var span = values.Span;
                var halves = new Float16[span.Length];
                var target = MemoryMarshal.Cast<Float16, Half>(halves.AsSpan());
                for (int i = 0; i < span.Length; i++) target[i] = (Half)span[i];
                return OrtValue.CreateTensorValueFromMemory(halves, shape);
            }
            case TensorElementType.BFloat16:
            {
                var span = values.Span;
                var narrowed = new BFloat16[span.Length];
                var target = MemoryMarshal.Cast<BFloat16, ushort>(narrowed.AsSpan());
                for (int i = 0; i < span.Length; i++) target[i] = FloatElements.ToBFloat16(span[i]);
                return OrtValue.CreateTensorValueFromMemory(narrowed, shape);
            }
            default:
                throw new CalibrationModelException($"a probe input is {type}; calibration feeds float32, float16 and bfloat16");
        }
    }

    private static Span<float> Buffer(ref float[]? buffer, int length)
    {
        if (buffer is null || buffer.Length < length) buffer = new float[length];
        return buffer.AsSpan(0, length);
    }
}
