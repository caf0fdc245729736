namespace SparseOnnx.Calibration.Training;

/// <summary>
/// Adam (Kingma &amp; Ba) over a set of float vectors, state in double: the vectors are few (one per
/// projection or group) and small next to the model, and double moments keep tiny late-stage updates exact.
/// </summary>
public sealed class AdamOptimizer
{
    private readonly double _beta1, _beta2, _epsilon;
    private readonly double[][] _first, _second;
    private int _step;

    /// <summary>State for vectors of the given lengths.</summary>
    public AdamOptimizer(IEnumerable<int> lengths, double beta1 = 0.9, double beta2 = 0.999, double epsilon = 1e-8)
    {
        _beta1 = beta1;
        _beta2 = beta2;
        _epsilon = epsilon;
        _first = lengths.Select(n => new double[n]).ToArray();
        _second = _first.Select(m => new double[m.Length]).ToArray();
    }

    /// <summary>Steps taken.</summary>
    public int StepsTaken => _step;

    /// <summary>One update of <paramref name="parameters"/> from <paramref name="gradients"/> (same order and lengths as constructed).</summary>
    public void Step(IReadOnlyList<float[]> parameters, IReadOnlyList<float[]> gradients, double learningRate)
    {
        if (parameters.Count != _first.Length || gradients.Count != _first.Length) throw new ArgumentException("Parameter count differs from the optimizer's.");
        _step++;
        double correction1 = 1 - Math.Pow(_beta1, _step), correction2 = 1 - Math.Pow(_beta2, _step);
        for (int p = 0; p < _first.Length; p++)
        {
            var x = parameters[p];
            var g = gradients[p];
            var m = _first[p];
            var v = _second[p];
            if (x.Length != m.Length || g.Length != m.Length) throw new ArgumentException($"Vector {p} has {x.Length} values and {g.Length} gradients, not {m.Length}.");
            for (int i = 0; i < m.Length; i++)
            {
                m[i] = _beta1 * m[i] + (1 - _beta1) * g[i];
                v[i] = _beta2 * v[i] + (1 - _beta2) * g[i] * g[i];
                x[i] -= (float)(learningRate * (m[i] / correction1) / (Math.Sqrt(v[i] / correction2) + _epsilon));
            }
        }
    }

    /// <summary>Linear warm-up over the first 5% of the steps, then cosine decay to a tenth of the peak.</summary>
    public static double Schedule(double peak, int step, int steps)
    {
        int warmup = Math.Max(1, steps / 20);
        if (step < warmup) return peak * (step + 1) / warmup;
        double progress = steps <= warmup ? 1 : (double)(step - warmup) / (steps - warmup);
        return peak * (0.1 + 0.9 * 0.5 * (1 + Math.Cos(Math.PI * Math.Min(progress, 1))));
    }
}
