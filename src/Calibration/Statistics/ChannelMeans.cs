namespace SparseOnnx.Calibration.Statistics;

/// <summary>
/// Streaming per-channel means of rows of K values (tokens × features), accumulated in double so that
/// millions of tokens lose nothing to rounding. Memory: K doubles.
/// </summary>
public sealed class ChannelMeans(long channels)
{
    private readonly double[] _sums = new double[channels];

    /// <summary>K.</summary>
    public long Channels { get; } = channels;

    /// <summary>Rows accumulated.</summary>
    public long Rows { get; private set; }

    /// <summary>Adds rows of <paramref name="values"/> ([rows, K] row-major).</summary>
    public void Add(ReadOnlySpan<float> values)
    {
        if (values.Length % Channels != 0) throw new ArgumentException($"{values.Length} values are not rows of {Channels}.", nameof(values));
        int k = (int)Channels;
        for (int row = 0; row < values.Length; row += k)
        {
            var r = values.Slice(row, k);
            for (int c = 0; c < k; c++) _sums[c] += r[c];
        }
        Rows += values.Length / k;
    }

    /// <summary>Adds rows of <paramref name="a"/> − <paramref name="b"/> (same shape), e.g. x − S(x): what a sparsifier dropped.</summary>
    public void AddDifference(ReadOnlySpan<float> a, ReadOnlySpan<float> b)
    {
        if (a.Length != b.Length) throw new ArgumentException("The two tensors differ in size.");
        if (a.Length % Channels != 0) throw new ArgumentException($"{a.Length} values are not rows of {Channels}.", nameof(a));
        int k = (int)Channels;
        for (int row = 0; row < a.Length; row += k)
            for (int c = 0; c < k; c++) _sums[c] += a[row + c] - b[row + c];
        Rows += a.Length / k;
    }

    /// <summary>The means (zeros before any row).</summary>
    public double[] Means() => Rows == 0 ? new double[Channels] : _sums.Select(s => s / Rows).ToArray();
}
