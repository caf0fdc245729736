using System.Diagnostics;
using SparseOnnx.Runtime.Inference;

namespace SparseOnnx.Runtime.Benchmarking;

/// <summary>What a decode benchmark runs.</summary>
public sealed record DecodeBenchmarkOptions
{
    /// <summary>Prompt length: the prefill is one call over this many tokens.</summary>
    public int PromptTokens { get; init; } = 128;

    /// <summary>Tokens decoded one at a time after the prefill (greedy).</summary>
    public int DecodeTokens { get; init; } = 128;

    /// <summary>Measured repetitions per model; medians are reported.</summary>
    public int Repetitions { get; init; } = 3;

    /// <summary>Unmeasured repetitions per model first (page-in of the weights, allocator warm-up).</summary>
    public int WarmupRepetitions { get; init; } = 1;

    /// <summary>Seed of the random prompt.</summary>
    public int Seed { get; init; } = 1234;

    /// <summary>Checks the values; throws <see cref="ArgumentException"/> naming the bad one.</summary>
    public void Validate()
    {
        if (PromptTokens < 1) throw new ArgumentException($"prompt-tokens must be at least 1, not {PromptTokens}.");
        if (DecodeTokens < 1) throw new ArgumentException($"tokens must be at least 1, not {DecodeTokens}.");
        if (Repetitions < 1) throw new ArgumentException($"repetitions must be at least 1, not {Repetitions}.");
        if (WarmupRepetitions < 0) throw new ArgumentException($"warm-up repetitions must be ≥ 0, not {WarmupRepetitions}.");
    }
}

/// <summary>One measured repetition: prefill and decode throughput.</summary>
public sealed record BenchmarkSample(double PrefillTokensPerSecond, double DecodeTokensPerSecond);

/// <summary>Medians over the repetitions of one model, and every sample.</summary>
public sealed record ModelThroughput(string ModelPath, double PrefillTokensPerSecond, double DecodeTokensPerSecond, IReadOnlyList<BenchmarkSample> Samples);

/// <summary>The result of a benchmark: the model, and its baseline when one was given, measured in the same run.</summary>
public sealed record DecodeBenchmarkResult(DecodeBenchmarkOptions Options, ModelThroughput Model, ModelThroughput? Baseline)
{
    /// <summary>Model decode tokens/s over the baseline's (medians), when there is a baseline.</summary>
    public double? DecodeSpeedup => Baseline is null ? null : Model.DecodeTokensPerSecond / Baseline.DecodeTokensPerSecond;

    /// <summary>Model prefill tokens/s over the baseline's (medians), when there is a baseline.</summary>
    public double? PrefillSpeedup => Baseline is null ? null : Model.PrefillTokensPerSecond / Baseline.PrefillTokensPerSecond;
}

/// <summary>Progress: repetitions done out of all (warm-up included), and which model runs.</summary>
public readonly record struct BenchmarkProgress(int Done, int Total, string Running);

/// <summary>
/// Prefill and decode throughput of a model and, optionally, of its dense baseline in the same run. Each
/// repetition prefills a seeded random prompt in one call, then decodes tokens one at a time (greedy,
/// feeding the KV cache back), as a chat service does. The two models alternate A B B A … so that drift in
/// the machine (thermal, other load) falls on both equally; the reported figures are medians.
/// Models alternate per repetition, not per token: a sparse model re-reads the rows of its weights that the
/// same outlier channels select token after token, and on a CPU with a large last-level cache those stay
/// cached between its tokens, as they do on a host serving one model. Interleaving the models token by
/// token flushed that cache with the dense model's weights before every sparse token: measured on a
/// Llama-3.2-1B-sized model, a sparse token right after a dense one took 145 ms, right after a sparse one 97 ms.
/// </summary>
public static class DecodeBenchmark
{
    /// <summary>Runs the benchmark on <paramref name="model"/> and, when given, on <paramref name="baseline"/> in the same run.</summary>
    public static DecodeBenchmarkResult Run(CausalLm model, CausalLm? baseline, DecodeBenchmarkOptions? options = null,
        IProgress<BenchmarkProgress>? progress = null, CancellationToken cancellation = default)
    {
        options ??= new DecodeBenchmarkOptions();
        var results = RunAll(baseline is null ? [model] : [model, baseline], options, progress, cancellation);
        return new DecodeBenchmarkResult(options, results[0], baseline is null ? null : results[1]);
    }

    /// <summary>
    /// Measures several models in one run, interleaved: in each round every model runs once, the order
    /// rotating and reversing from round to round so that no model is always first or always after the same
    /// one. Returns one <see cref="ModelThroughput"/> per model, in the order given.
    /// </summary>
    public static IReadOnlyList<ModelThroughput> RunAll(IReadOnlyList<CausalLm> models, DecodeBenchmarkOptions? options = null,
        IProgress<BenchmarkProgress>? progress = null, CancellationToken cancellation = default)
    {
        options ??= new DecodeBenchmarkOptions();
        options.Validate();
        if (models.Count == 0) throw new ArgumentException("No model to benchmark.", nameof(models));
        // The prompt must be valid for every model: ids below the smallest known vocabulary.
        long vocabulary = models.Select(m => m.Signature.Vocabulary).Where(v => v > 0).DefaultIfEmpty(256).Min();
        var random = new Random(options.Seed);
        int[] prompt = Enumerable.Range(0, options.PromptTokens).Select(_ => random.Next(1, (int)Math.Min(vocabulary, int.MaxValue))).ToArray();

        var samples = models.Select(_ => new List<BenchmarkSample>()).ToArray();
        int rounds = options.WarmupRepetitions + options.Repetitions, done = 0, total = rounds * models.Count;
        for (int round = 0; round < rounds; round++)
        {
            var order = Enumerable.Range(0, models.Count).Select(i => (i + round / 2) % models.Count);
            if (round % 2 == 1) order = order.Reverse();
            foreach (int m in order)
            {
                cancellation.ThrowIfCancellationRequested();
                progress?.Report(new BenchmarkProgress(done, total, models[m].ModelPath));
                var sample = Measure(models[m], prompt, options.DecodeTokens);
                if (round >= options.WarmupRepetitions) samples[m].Add(sample);
                done++;
            }
        }
        progress?.Report(new BenchmarkProgress(done, total, ""));
        return models.Select((m, i) => new ModelThroughput(m.ModelPath,
            Median(samples[i].Select(s => s.PrefillTokensPerSecond)), Median(samples[i].Select(s => s.DecodeTokensPerSecond)), samples[i])).ToList();
    }

    private static BenchmarkSample Measure(CausalLm model, int[] prompt, int decodeTokens)
    {
        using var sequence = model.StartSequence();
        var clock = Stopwatch.StartNew();
        float[] logits = sequence.Append(prompt);
        double prefillSeconds = clock.Elapsed.TotalSeconds;
        clock.Restart();
        for (int i = 0; i < decodeTokens; i++)
            logits = sequence.Append([TokenSampler.ArgMax(logits)]);
        double decodeSeconds = clock.Elapsed.TotalSeconds;
        return new BenchmarkSample(prompt.Length / prefillSeconds, decodeTokens / decodeSeconds);
    }

    /// <summary>The median (mean of the middle two for an even count).</summary>
    public static double Median(IEnumerable<double> values)
    {
        var sorted = values.Order().ToArray();
        if (sorted.Length == 0) return double.NaN;
        int mid = sorted.Length / 2;
        return sorted.Length % 2 == 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
    }
}
