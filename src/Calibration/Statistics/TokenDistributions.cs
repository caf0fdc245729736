namespace SparseOnnx.Calibration.Statistics;

/// <summary>
/// Next-token distributions and the KL divergence between a reference (the dense model) and a model's logits:
/// the objective of greedy allocation's logits search and of spontaneous-neuron training.
/// </summary>
public static class TokenDistributions
{
    /// <summary>Softmax of each row of <paramref name="logits"/> [rows, V], and each row's Σ p log p.</summary>
    public static (float[] Probabilities, double[] NegativeEntropy) Of(float[] logits, int vocabulary)
    {
        var probabilities = (float[])logits.Clone();
        return (probabilities, IntoProbabilities(probabilities, vocabulary));
    }

    /// <summary>
    /// <see cref="Of"/> in place: each row of <paramref name="logits"/> becomes its softmax; returns each row's Σ p log p.
    /// A large vocabulary's references are gigabytes (16 windows of 128 tokens over 128,256 entries: 1 GB), so they are
    /// not held twice.
    /// </summary>
    public static double[] IntoProbabilities(float[] logits, int vocabulary)
    {
        var negativeEntropy = new double[logits.Length / vocabulary];
        for (int row = 0; row < negativeEntropy.Length; row++)
        {
            var x = logits.AsSpan(row * vocabulary, vocabulary);
            float max = float.NegativeInfinity;
            foreach (float value in x) max = MathF.Max(max, value);
            double total = 0;
            foreach (float value in x) total += Math.Exp(value - max);
            double logTotal = max + Math.Log(total);
            for (int j = 0; j < vocabulary; j++)
            {
                double logP = x[j] - logTotal;
                x[j] = (float)Math.Exp(logP);
                negativeEntropy[row] += Math.Exp(logP) * logP;
            }
        }
        return negativeEntropy;
    }

    /// <summary>
    /// KL(p ‖ q) = Σ p log p − Σ p·z + logsumexp(z) for logits z of q, with p's probabilities and Σ p log p
    /// computed once per reference row: one exponential per entry per candidate instead of two.
    /// </summary>
    public static double KlDivergence(ReadOnlySpan<float> p, double negativeEntropy, ReadOnlySpan<float> logitsQ)
    {
        float max = float.NegativeInfinity;
        foreach (float value in logitsQ) max = MathF.Max(max, value);
        // Double sums: the result is a small difference of terms of order log V.
        double total = 0, dot = 0;
        for (int j = 0; j < logitsQ.Length; j++)
        {
            float shifted = logitsQ[j] - max;
            total += MathF.Exp(shifted);
            dot += p[j] * shifted;
        }
        return negativeEntropy - dot + Math.Log(total);
    }
}
