namespace SparseOnnx.Calibration.Statistics;

/// <summary>
/// Streaming per-channel means of rows of K values (tokens × features), accumulated in double so that
/// millions of tokens lose nothing to rounding; with <c>squares</c>, also the sums of squares (the channels'
/// L2 norms and variances). Memory: K doubles, or 2K.
/// </summary>
public sealed class ChannelMeans(long channels, bool squares = false)
{
    private readonly double[] _sums = new double[channels];
    private readonly double[]? _squares = squares ? new double[channels] : null;

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
            if (_squares is null)
                for (int c = 0; c < k; c++) _sums[c] += r[c];
            else
                for (int c = 0; c < k; c++)
                {
                    double v = r[c];
                    _sums[c] += v;
                    _squares[c] += v * v;
                }
        }
        Rows += values.Length / k;
    }

    /// <summary>Adds rows of <paramref name="a"/> − <paramref name="b"/> (same shape), e.g. x − S(x): what a sparsifier dropped.</summary>
    public void AddDifference(ReadOnlySpan<float> a, ReadOnlySpan<float> b)
    {
        if (_squares is not null) throw new InvalidOperationException("Differences are accumulated without squares.");
        if (a.Length != b.Length) throw new ArgumentException("The two tensors differ in size.");
        if (a.Length % Channels != 0) throw new ArgumentException($"{a.Length} values are not rows of {Channels}.", nameof(a));
        int k = (int)Channels;
        for (int row = 0; row < a.Length; row += k)
            for (int c = 0; c < k; c++) _sums[c] += a[row + c] - b[row + c];
        Rows += a.Length / k;
    }

    /// <summary>The means (zeros before any row).</summary>
    public double[] Means() => Rows == 0 ? new double[Channels] : _sums.Select(s => s / Rows).ToArray();

    /// <summary>Each channel's L2 norm over the rows, sqrt(Σ x²) (needs <c>squares</c>).</summary>
    public double[] Norms() => Squares().Select(Math.Sqrt).ToArray();

    /// <summary>Each channel's population variance over the rows, E[x²] − E[x]² clamped at 0 (needs <c>squares</c>).</summary>
    public double[] Variances()
    {
        var squares = Squares();
        if (Rows == 0) return new double[Channels];
        return _sums.Select((s, c) => Math.Max(0, squares[c] / Rows - (s / Rows) * (s / Rows))).ToArray();
    }

    private double[] Squares() => _squares ?? throw new InvalidOperationException("These means were accumulated without squares.");
}
