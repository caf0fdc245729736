using SparseOnnx.Calibration.Capture;
using SparseOnnx.GraphRewriter.Ir;
using SparseOnnx.GraphRewriter.Sparsify;

namespace SparseOnnx.Calibration.Compensation;

/// <summary>
/// The closed-form compensation of a sparsified projection: sparsifying replaces x by S(x), which moves the
/// output by W·(x − S(x)); its expectation is the constant
/// <code>s = E[x − S(x)] · W   (W: [K, N], so s[n] = Σ_k E[x_k − S(x)_k] · W[k, n])</code>
/// Adding s after the sparse product restores the output's mean. It is only a baseline: the mean of what
/// was dropped is not what minimises the model's loss, which is why calibration keeps a vector only where
/// it improves the held-out loss.
/// </summary>
public static class ClosedFormCompensation
{
    /// <summary>
    /// s for <paramref name="projection"/> from the per-channel means of x − S(x) (length K). Reads the weight (float32,
    /// float16 or bfloat16) band by band, widening a half-precision band to float32; sums in double.
    /// </summary>
    public static float[] Vector(ProbeProjection projection, IReadOnlyList<double> droppedMeans)
    {
        long k = projection.InFeatures, n = projection.OutFeatures;
        if (droppedMeans.Count != k) throw new ArgumentException($"{droppedMeans.Count} means for a projection with {k} inputs.", nameof(droppedMeans));
        var type = projection.Weight.DataType;
        if (!FloatElements.IsSupported(type))
            throw new NotSupportedException($"The weight of {projection.Node} is {type.DisplayName()}; closed-form compensation reads float32, float16 and bfloat16.");
        int size = type == DataType.Float ? 4 : 2;
        var sums = new double[n];
        using var lease = projection.Weight.Data.Acquire();
        var bytes = lease.Span;
        if (bytes.Length != k * n * size) throw new InvalidOperationException($"The weight of {projection.Node} holds {bytes.Length / size} values, not {k} × {n}.");
        // One row (or, stored transposed, one column) of W at a time, as float32.
        ReadOnlySpan<float> Band(ReadOnlySpan<byte> all, long index, long length) => type == DataType.Float
            ? System.Runtime.InteropServices.MemoryMarshal.Cast<byte, float>(all.Slice((int)(index * length * 4), (int)(length * 4)))
            : FloatElements.Decode(all.Slice((int)(index * length * size), (int)(length * size)), type);
        if (!projection.WeightStoredTransposed)
        {
            for (long row = 0; row < k; row++)
            {
                double m = droppedMeans[(int)row];
                if (m == 0) continue;
                var weights = Band(bytes, row, n);
                for (int col = 0; col < n; col++) sums[col] += m * weights[col];
            }
        }
        else
        {
            for (long col = 0; col < n; col++)
            {
                var weights = Band(bytes, col, k);
                double s = 0;
                for (int row = 0; row < k; row++) s += droppedMeans[row] * weights[row];
                sums[col] = s;
            }
        }
        return sums.Select(s => (float)s).ToArray();
    }
}
