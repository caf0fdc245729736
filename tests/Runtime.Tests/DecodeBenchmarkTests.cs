using SparseOnnx.Runtime.Benchmarking;

namespace SparseOnnx.Runtime.Tests;

public class DecodeBenchmarkTests(ReferenceModel reference) : IClassFixture<ReferenceModel>
{
    [Fact]
    public void ItMeasuresTheModelAndItsBaselineInTheSameRun()
    {
        var progress = new List<BenchmarkProgress>();
        var options = new DecodeBenchmarkOptions { PromptTokens = 16, DecodeTokens = 8, Repetitions = 3, WarmupRepetitions = 1 };
        var result = DecodeBenchmark.Run(reference.Model, reference.Model, options, new SynchronousProgress<BenchmarkProgress>(progress.Add));
        Assert.Equal(3, result.Model.Samples.Count);
        Assert.Equal(3, result.Baseline!.Samples.Count);
        Assert.All(result.Model.Samples.Concat(result.Baseline.Samples), s => Assert.True(s.DecodeTokensPerSecond > 0 && s.PrefillTokensPerSecond > 0));
        Assert.Equal(result.Model.DecodeTokensPerSecond / result.Baseline.DecodeTokensPerSecond, result.DecodeSpeedup);
        Assert.Equal(DecodeBenchmark.Median(result.Model.Samples.Select(s => s.DecodeTokensPerSecond)), result.Model.DecodeTokensPerSecond);
        Assert.Equal(8, progress[^1].Done);
        Assert.Equal(8, progress[^1].Total);
    }

    [Fact]
    public void MedianOfEvenAndOddCounts()
    {
        Assert.Equal(2, DecodeBenchmark.Median([3, 1, 2]));
        Assert.Equal(2.5, DecodeBenchmark.Median([4, 1, 3, 2]));
    }

    [Fact]
    public void BadOptionsAreRefused()
    {
        Assert.Throws<ArgumentException>(() => DecodeBenchmark.Run(reference.Model, null, new DecodeBenchmarkOptions { DecodeTokens = 0 }));
    }

    /// <summary>IProgress that reports on the calling thread (Progress&lt;T&gt; posts to the thread pool).</summary>
    private sealed class SynchronousProgress<T>(Action<T> report) : IProgress<T>
    {
        public void Report(T value) => report(value);
    }
}
