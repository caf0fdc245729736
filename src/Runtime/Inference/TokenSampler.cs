namespace SparseOnnx.Runtime.Inference;

/// <summary>How the next token is chosen.</summary>
public sealed record SamplingOptions
{
    /// <summary>Nucleus sampling's probability mass; null means greedy decoding (the most likely token).</summary>
    public double? TopP { get; init; }

    /// <summary>Softmax temperature for sampling (ignored by greedy decoding).</summary>
    public double Temperature { get; init; } = 1.0;

    /// <summary>Seed of the sampler's random stream: the same seed, model and prompt give the same text.</summary>
    public int Seed { get; init; }

    /// <summary>Checks the values; throws <see cref="ArgumentException"/> naming the bad one.</summary>
    public void Validate()
    {
        if (TopP is double p && !(p > 0 && p <= 1)) throw new ArgumentException($"top-p must be in (0, 1], not {p}.");
        if (!(Temperature > 0) || double.IsInfinity(Temperature)) throw new ArgumentException($"The temperature must be a positive number, not {Temperature}.");
    }
}

/// <summary>Picks tokens from logits: greedy (ties to the lower id) or top-p with a seeded random stream. One per request.</summary>
public sealed class TokenSampler
{
    private readonly SamplingOptions _options;
    private readonly Random _random;

    /// <summary>Creates a sampler; its random stream starts from <see cref="SamplingOptions.Seed"/>.</summary>
    public TokenSampler(SamplingOptions options)
    {
        options.Validate();
        _options = options;
        _random = new Random(options.Seed);
    }

    /// <summary>The id of the largest logit (the lowest id among equal ones); NaN logits are never chosen.</summary>
    public static int ArgMax(ReadOnlySpan<float> logits)
    {
        int best = -1;
        float bestValue = float.NegativeInfinity;
        for (int i = 0; i < logits.Length; i++)
            if (logits[i] > bestValue || (best < 0 && !float.IsNaN(logits[i]))) { best = i; bestValue = logits[i]; }
        return best < 0 ? 0 : best;
    }

    /// <summary>Chooses the next token from <paramref name="logits"/>.</summary>
    public int Next(ReadOnlySpan<float> logits)
    {
        if (_options.TopP is not double topP) return ArgMax(logits);
        // Softmax in double at the given temperature, then the smallest set of most likely tokens whose mass
        // reaches top-p (Holtzman et al.), renormalised, sampled with the request's own random stream.
        double max = double.NegativeInfinity;
        foreach (float l in logits) if (l > max) max = l;
        var order = new int[logits.Length];
        var probabilities = new double[logits.Length];
        double sum = 0;
        for (int i = 0; i < logits.Length; i++)
        {
            order[i] = i;
            double p = float.IsNaN(logits[i]) ? 0 : Math.Exp((logits[i] - max) / _options.Temperature);
            probabilities[i] = p;
            sum += p;
        }
        Array.Sort(order, (a, b) => probabilities[b] != probabilities[a] ? probabilities[b].CompareTo(probabilities[a]) : a.CompareTo(b));
        double kept = 0;
        int count = 0;
        while (count < order.Length && (count == 0 || kept < topP * sum))
            kept += probabilities[order[count++]];
        double draw = _random.NextDouble() * kept;
        for (int i = 0; i < count; i++)
        {
            draw -= probabilities[order[i]];
            if (draw < 0) return order[i];
        }
        return order[count - 1];
    }
}
