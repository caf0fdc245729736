namespace SparseOnnx.GraphRewriter.Tests.TestUtil;

/// <summary>Comparisons of float outputs with written-down tolerances, naming the worst mismatches.</summary>
public static class Numerics
{
    /// <summary>
    /// The relative error of <paramref name="actual"/> against <paramref name="expected"/>, element by element:
    /// |a − e| / max(|e|, rms(e)). The floor at the tensor's root-mean-square keeps entries that happen to
    /// be near zero (a logit crossing 0) from turning a 1e-7 rounding difference into a huge ratio, while
    /// every entry of ordinary size is held to the relative bound itself.
    /// </summary>
    public static (double Worst, int Index) WorstRelativeError(ReadOnlySpan<float> expected, ReadOnlySpan<float> actual)
    {
        if (expected.Length != actual.Length) throw new ArgumentException($"{expected.Length} expected values, {actual.Length} actual.");
        double sumSquares = 0;
        foreach (float e in expected) sumSquares += (double)e * e;
        double rms = expected.Length == 0 ? 0 : Math.Sqrt(sumSquares / expected.Length);
        double worst = 0;
        int index = -1;
        for (int i = 0; i < expected.Length; i++)
        {
            double scale = Math.Max(Math.Abs(expected[i]), rms);
            double error = Math.Abs((double)actual[i] - expected[i]);
            double relative = scale == 0 ? (error == 0 ? 0 : double.PositiveInfinity) : error / scale;
            if (double.IsNaN(relative)) relative = double.PositiveInfinity;
            if (relative > worst || index < 0) (worst, index) = (relative, i);
        }
        return (worst, index);
    }

    /// <summary>Asserts <see cref="WorstRelativeError"/> ≤ <paramref name="tolerance"/>, naming the worst entries.</summary>
    public static void AssertRelativelyClose(ReadOnlySpan<float> expected, ReadOnlySpan<float> actual, double tolerance, string what)
    {
        var (worst, index) = WorstRelativeError(expected, actual);
        Assert.True(worst <= tolerance,
            $"{what}: relative error {worst:E2} > {tolerance:E0} at [{index}]: expected {expected[index]:R}, got {actual[index]:R}.");
    }
}
