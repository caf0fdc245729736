namespace SparseOnnx.Calibration.Statistics;

/// <summary>
/// A streaming histogram of |x| on a logarithmic grid: <see cref="BinsPerOctave"/> bins per power of two from
/// 2^<see cref="MinExponent"/> to 2^<see cref="MaxExponent"/> (1.1% wide each), plus one bin for magnitudes
/// below the grid (zeros included) and one above. Fixed size (about 33 KB) whatever it has seen, so a
/// calibration pass keeps one per projection input at no cost in memory; quantiles are read back with
/// geometric interpolation inside a bin, a relative error well under the bin width.
/// </summary>
public sealed class MagnitudeHistogram
{
    /// <summary>Bins per octave.</summary>
    public const int BinsPerOctave = 64;
    /// <summary>Lower edge of the grid, as a power of two.</summary>
    public const int MinExponent = -40;
    /// <summary>Upper edge of the grid, as a power of two.</summary>
    public const int MaxExponent = 24;

    private const int GridBins = (MaxExponent - MinExponent) * BinsPerOctave;
    // [0]: below the grid; [1..GridBins]: the grid; [GridBins + 1]: above it.
    private readonly long[] _counts = new long[GridBins + 2];

    /// <summary>Entries counted (NaN excluded).</summary>
    public long Count { get; private set; }

    /// <summary>NaN entries seen and left out.</summary>
    public long NaNs { get; private set; }

    /// <summary>Counts every entry of <paramref name="values"/>.</summary>
    public void Add(ReadOnlySpan<float> values)
    {
        long nans = 0;
        foreach (float v in values)
        {
            float magnitude = MathF.Abs(v);
            if (float.IsNaN(magnitude)) { nans++; continue; }
            _counts[Bin(magnitude)]++;
        }
        NaNs += nans;
        Count += values.Length - nans;
    }

    /// <summary>Adds another histogram's counts.</summary>
    public void Merge(MagnitudeHistogram other)
    {
        for (int i = 0; i < _counts.Length; i++) _counts[i] += other._counts[i];
        Count += other.Count;
        NaNs += other.NaNs;
    }

    private static int Bin(float magnitude)
    {
        if (!(magnitude >= MathF.ScaleB(1f, MinExponent))) return 0;
        if (magnitude >= MathF.ScaleB(1f, MaxExponent)) return GridBins + 1;
        int bin = (int)((MathF.Log2(magnitude) - MinExponent) * BinsPerOctave);
        return 1 + Math.Clamp(bin, 0, GridBins - 1);
    }

    private static double LowerEdge(int gridBin) => Math.Pow(2, MinExponent + (double)gridBin / BinsPerOctave);

    /// <summary>
    /// The magnitude t with a fraction <paramref name="fraction"/> of the entries at or below it: keeping |x| &gt; t
    /// drops that fraction. 0 gives 0 (only zeros drop); throws when nothing was counted.
    /// </summary>
    public float Quantile(double fraction)
    {
        if (!(fraction >= 0 && fraction <= 1)) throw new ArgumentOutOfRangeException(nameof(fraction), $"A fraction in [0, 1], not {fraction}.");
        if (Count == 0) throw new InvalidOperationException("The histogram is empty.");
        if (fraction == 0) return 0f;
        double target = fraction * Count;
        double below = 0;
        for (int i = 0; i < _counts.Length; i++)
        {
            long c = _counts[i];
            if (c == 0 || below + c < target) { below += c; continue; }
            if (i == 0) return (float)LowerEdge(0);
            if (i == GridBins + 1) return MathF.ScaleB(1f, MaxExponent);
            double within = (target - below) / c;
            double lo = LowerEdge(i - 1), hi = LowerEdge(i);
            return (float)(lo * Math.Pow(hi / lo, within));
        }
        return MathF.ScaleB(1f, MaxExponent);
    }

    /// <summary>The fraction of entries with magnitude at or below <paramref name="threshold"/> (what keeping |x| &gt; t drops), interpolated like <see cref="Quantile"/>.</summary>
    public double FractionAtOrBelow(float threshold)
    {
        if (Count == 0) throw new InvalidOperationException("The histogram is empty.");
        if (threshold < 0) return 0;
        int bin = Bin(threshold);
        double below = 0;
        for (int i = 0; i < bin; i++) below += _counts[i];
        if (bin is > 0 and <= GridBins)
        {
            double lo = LowerEdge(bin - 1), hi = LowerEdge(bin);
            below += _counts[bin] * Math.Log(threshold / lo) / Math.Log(hi / lo);
        }
        else below += _counts[bin];
        return below / Count;
    }
}
