using SparseOnnx.Calibration.Capture;
using SparseOnnx.GraphRewriter.Ir;

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
    /// <summary>s for <paramref name="projection"/> from the per-channel means of x − S(x) (length K). Reads the weight band by band.</summary>
    public static float[] Vector(ProbeProjection projection, IReadOnlyList<double> droppedMeans)
    {
        long k = projection.InFeatures, n = projection.OutFeatures;
        if (droppedMeans.Count != k) throw new ArgumentException($"{droppedMeans.Count} means for a projection with {k} inputs.", nameof(droppedMeans));
        if (projection.Weight.DataType != DataType.Float)
            throw new NotSupportedException($"The weight of {projection.Node} is {projection.Weight.DataType.DisplayName()}; closed-form compensation reads float32.");
        var sums = new double[n];
        using var lease = projection.Weight.Data.Acquire();
        var w = lease.AsSpan<float>();
        if (w.Length != k * n) throw new InvalidOperationException($"The weight of {projection.Node} holds {w.Length} values, not {k} × {n}.");
        if (!projection.WeightStoredTransposed)
        {
            for (long row = 0; row < k; row++)
            {
                double m = droppedMeans[(int)row];
                if (m == 0) continue;
                var weights = w.Slice((int)(row * n), (int)n);
                for (int col = 0; col < n; col++) sums[col] += m * weights[col];
            }
        }
        else
        {
            for (long col = 0; col < n; col++)
            {
                var weights = w.Slice((int)(col * k), (int)k);
                double s = 0;
                for (int row = 0; row < k; row++) s += droppedMeans[row] * weights[row];
                sums[col] = s;
            }
        }
        return sums.Select(s => (float)s).ToArray();
    }
}
