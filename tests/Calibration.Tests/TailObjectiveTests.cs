using SparseOnnx.Calibration.Sequential;

namespace SparseOnnx.Calibration.Tests;

/// <summary>The per-token KL of the sequential greedy search's logits objective against its definition.</summary>
public class TailObjectiveTests
{
    [Theory]
    [InlineData(7, 1)]
    [InlineData(4096, 2)]
    [InlineData(33, 3)]
    public void TokenDivergenceIsTheKlOfTheSoftmaxes(int vocabulary, int seed)
    {
        var random = new Random(seed);
        var dense = Enumerable.Range(0, vocabulary).Select(_ => (float)(random.NextDouble() * 12 - 6)).ToArray();
        var candidate = dense.Select(x => x + (float)(random.NextDouble() - 0.5)).ToArray();

        var p = Softmax(dense);
        var q = Softmax(candidate);
        double expected = p.Select((pi, i) => pi * (Math.Log(pi) - Math.Log(q[i]))).Sum();

        var reference = (float[])dense.Clone();
        double negativeEntropy = TailObjective.ToReference(reference);
        Assert.Equal(p.Select((pi, _) => pi * Math.Log(pi)).Sum(), negativeEntropy, 1e-5);
        for (int i = 0; i < vocabulary; i++) Assert.Equal(p[i], reference[i], 1e-6);

        double kl = TailObjective.TokenDivergence(reference, negativeEntropy, candidate, new float[vocabulary]);
        Assert.True(expected > 0);
        // float32 sums over the vocabulary: a relative error of a few 1e-5 of the terms' scale (|log p| up to ~20).
        Assert.Equal(expected, kl, 2e-4);
        Assert.Equal(0, TailObjective.TokenDivergence(reference, negativeEntropy, dense, new float[vocabulary]), 2e-4);
    }

    private static double[] Softmax(float[] x)
    {
        double max = x.Max();
        var e = x.Select(v => Math.Exp(v - max)).ToArray();
        double sum = e.Sum();
        return e.Select(v => v / sum).ToArray();
    }
}
