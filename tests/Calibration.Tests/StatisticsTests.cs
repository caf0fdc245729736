using SparseOnnx.Calibration.Statistics;

namespace SparseOnnx.Calibration.Tests;

public class MagnitudeHistogramTests
{
    private static float[] HeavyTailed(int count, int seed)
    {
        var random = new Random(seed);
        // Products of normals and a log-normal scale: magnitudes spanning several decades, like activations.
        return Enumerable.Range(0, count).Select(_ =>
            (float)(Normal(random) * Math.Exp(1.5 * Normal(random)))).ToArray();
    }

    private static double Normal(Random random) =>
        Math.Sqrt(-2 * Math.Log(1 - random.NextDouble())) * Math.Cos(2 * Math.PI * random.NextDouble());

    [Theory]
    [InlineData(0.1)]
    [InlineData(0.4)]
    [InlineData(0.5)]
    [InlineData(0.7)]
    [InlineData(0.95)]
    public void Quantile_MatchesTheExactQuantileWithinTheBinWidth(double fraction)
    {
        var values = HeavyTailed(200_000, 7);
        var histogram = new MagnitudeHistogram();
        // Fed in uneven chunks, as batches arrive.
        histogram.Add(values.AsSpan(0, 12_345));
        histogram.Add(values.AsSpan(12_345));
        var sorted = values.Select(MathF.Abs).Order().ToArray();
        float exact = sorted[(int)(fraction * sorted.Length) - 1];

        float t = histogram.Quantile(fraction);

        Assert.InRange(t / exact, 0.989, 1.011);
        double dropped = sorted.Count(m => m <= t) / (double)sorted.Length;
        Assert.InRange(dropped, fraction - 0.002, fraction + 0.002);
        Assert.InRange(histogram.FractionAtOrBelow(t), fraction - 1e-6, fraction + 1e-6);
    }

    [Fact]
    public void ZerosAndNaNs_ZerosCountBelowEveryThreshold_NaNsAreLeftOut()
    {
        var histogram = new MagnitudeHistogram();
        histogram.Add([0f, -0f, 0f, 0f, float.NaN, 1f, 2f, 3f, 4f]);
        Assert.Equal(8, histogram.Count);
        Assert.Equal(1, histogram.NaNs);
        Assert.Equal(0f, histogram.Quantile(0));
        // Half the entries are zeros: dropping half needs only a threshold below 1.
        Assert.True(histogram.Quantile(0.5) < 1e-6f);
        Assert.InRange(histogram.Quantile(0.75), 1.9f, 2.03f);
    }

    [Fact]
    public void Quantile_OfAnEmptyHistogram_Throws()
    {
        Assert.Throws<InvalidOperationException>(() => new MagnitudeHistogram().Quantile(0.5));
        Assert.Throws<ArgumentOutOfRangeException>(() => { var h = new MagnitudeHistogram(); h.Add([1f]); h.Quantile(1.5); });
    }

    [Fact]
    public void Merge_EqualsOneHistogramOfEverything()
    {
        var values = HeavyTailed(10_000, 3);
        var whole = new MagnitudeHistogram();
        whole.Add(values);
        var a = new MagnitudeHistogram();
        var b = new MagnitudeHistogram();
        a.Add(values.AsSpan(0, 4_000));
        b.Add(values.AsSpan(4_000));
        a.Merge(b);
        Assert.Equal(whole.Count, a.Count);
        Assert.Equal(whole.Quantile(0.37), a.Quantile(0.37));
    }
}

public class ChannelMeansTests
{
    [Fact]
    public void Means_AndDifferences_MatchANaiveSum()
    {
        var random = new Random(1);
        const int k = 7, rows = 50;
        var x = Enumerable.Range(0, k * rows).Select(_ => (float)random.NextDouble() - 0.5f).ToArray();
        var kept = x.Select(v => MathF.Abs(v) > 0.2f ? v : 0f).ToArray();
        var means = new ChannelMeans(k);
        var dropped = new ChannelMeans(k);
        means.Add(x.AsSpan(0, k * 20));
        means.Add(x.AsSpan(k * 20));
        dropped.AddDifference(x, kept);

        for (int c = 0; c < k; c++)
        {
            double expected = Enumerable.Range(0, rows).Average(r => (double)x[r * k + c]);
            double expectedDropped = Enumerable.Range(0, rows).Average(r => MathF.Abs(x[r * k + c]) > 0.2f ? 0 : (double)x[r * k + c]);
            Assert.Equal(expected, means.Means()[c], 12);
            Assert.Equal(expectedDropped, dropped.Means()[c], 12);
        }
        Assert.Equal(rows, means.Rows);
        Assert.Throws<ArgumentException>(() => means.Add(new float[k + 1]));
    }

    [Fact]
    public void WithSquares_NormsAndVariancesMatchANaiveSum_AndWithoutThemTheyAreRefused()
    {
        var random = new Random(2);
        const int k = 5, rows = 40;
        var x = Enumerable.Range(0, k * rows).Select(_ => (float)random.NextDouble() * 3 - 1f).ToArray();
        var statistics = new ChannelMeans(k, squares: true);
        statistics.Add(x.AsSpan(0, k * 15));
        statistics.Add(x.AsSpan(k * 15));
        for (int c = 0; c < k; c++)
        {
            var column = Enumerable.Range(0, rows).Select(r => (double)x[r * k + c]).ToArray();
            double mean = column.Average();
            Assert.Equal(mean, statistics.Means()[c], 12);
            Assert.Equal(Math.Sqrt(column.Sum(v => v * v)), statistics.Norms()[c], 10);
            Assert.Equal(column.Average(v => (v - mean) * (v - mean)), statistics.Variances()[c], 10);
        }
        Assert.Throws<InvalidOperationException>(() => statistics.AddDifference(x, x));
        Assert.Throws<InvalidOperationException>(() => new ChannelMeans(k).Norms());
    }
}
