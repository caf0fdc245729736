using SparseOnnx.Runtime.Inference;

namespace SparseOnnx.Runtime.Evaluation;

/// <summary>How perplexity is windowed.</summary>
public sealed record PerplexityOptions
{
    /// <summary>Tokens per window (the context the model sees).</summary>
    public int SequenceLength { get; init; } = 128;

    /// <summary>Distance between window starts; equal to <see cref="SequenceLength"/> for non-overlapping windows.</summary>
    public int Stride { get; init; } = 128;

    /// <summary>Windows run together in one call (full-length windows only).</summary>
    public int BatchSize { get; init; } = 8;

    /// <summary>Stop after this many tokens of the stream (0: all).</summary>
    public int MaxTokens { get; init; }

    /// <summary>Checks the values; throws <see cref="ArgumentException"/> naming the bad one.</summary>
    public void Validate()
    {
        if (SequenceLength < 2) throw new ArgumentException($"seq-len must be at least 2, not {SequenceLength}.");
        if (Stride < 1 || Stride > SequenceLength) throw new ArgumentException($"stride must be between 1 and seq-len ({SequenceLength}), not {Stride}.");
        if (BatchSize < 1) throw new ArgumentException($"The batch size must be at least 1, not {BatchSize}.");
        if (MaxTokens < 0) throw new ArgumentException($"max-tokens must be ≥ 0, not {MaxTokens}.");
    }
}

/// <summary>The result of a perplexity run.</summary>
/// <param name="Perplexity">exp(mean negative log-likelihood) over the scored tokens.</param>
/// <param name="Tokens">Number of scored tokens.</param>
/// <param name="MeanNll">Mean negative log-likelihood in nats.</param>
/// <param name="Windows">Number of windows run.</param>
/// <param name="StreamTokens">Length of the token stream evaluated.</param>
public sealed record PerplexityResult(double Perplexity, long Tokens, double MeanNll, int Windows, int StreamTokens);

/// <summary>Progress of a perplexity run: tokens scored so far out of all that will be.</summary>
public readonly record struct PerplexityProgress(long Scored, long Total);

/// <summary>
/// Perplexity of a causal LM over a token stream. Windows of <c>SequenceLength</c> tokens start every
/// <c>Stride</c> tokens (the last one may be shorter, and windows stop once one reaches the end); each
/// window is run from an empty cache, and within it every token but the first is scored from the window's
/// prefix, except tokens an earlier window already scored. With stride = sequence length this is
/// non-overlapping windows with no context across them, the method of the reference model card.
/// NLL is accumulated in double from float32 logits (log-sum-exp in double).
/// </summary>
public static class PerplexityEvaluator
{
    /// <summary>A window: where it starts, how long it is, and the first position it scores.</summary>
    public readonly record struct Window(int Start, int Length, int FirstScored)
    {
        /// <summary>Tokens it scores (positions FirstScored .. Start + Length − 1).</summary>
        public int Scored => Start + Length - FirstScored;
    }

    /// <summary>The windows over a stream of <paramref name="streamLength"/> tokens.</summary>
    public static List<Window> Windows(int streamLength, PerplexityOptions options)
    {
        options.Validate();
        var windows = new List<Window>();
        int scoredUpTo = 0; // positions < scoredUpTo are scored (position 0 never is: it has no prefix)
        for (int start = 0; start + 1 < streamLength; start += options.Stride)
        {
            int end = Math.Min(start + options.SequenceLength, streamLength);
            int first = Math.Max(start + 1, scoredUpTo);
            if (end > first) windows.Add(new Window(start, end - start, first));
            scoredUpTo = Math.Max(scoredUpTo, end);
            if (end == streamLength) break;
        }
        return windows;
    }

    /// <summary>Evaluates <paramref name="model"/> on <paramref name="stream"/>.</summary>
    public static PerplexityResult Evaluate(CausalLm model, IReadOnlyList<int> stream, PerplexityOptions? options = null,
        IProgress<PerplexityProgress>? progress = null, CancellationToken cancellation = default)
    {
        options ??= new PerplexityOptions();
        int length = options.MaxTokens > 0 ? Math.Min(options.MaxTokens, stream.Count) : stream.Count;
        var windows = Windows(length, options);
        if (windows.Count == 0) throw new ArgumentException($"The token stream has {length} tokens; at least 2 are needed to score one.");
        long modelVocabulary = model.Signature.Vocabulary;
        if (modelVocabulary > 0)
            for (int position = 0; position < length; position++)
                if ((uint)stream[position] >= (ulong)modelVocabulary)
                    throw new ArgumentException($"Token id {stream[position]} at position {position} is outside the model's vocabulary of {modelVocabulary}; is the tokenizer the model's own?");
        long total = windows.Sum(w => (long)w.Scored), scored = 0;
        // Bound the logits of one batch to 2^26 floats (256 MB): a 128k vocabulary makes them the largest tensor.
        int batchSize = options.BatchSize;
        if (model.Signature.Vocabulary > 0)
            batchSize = (int)Math.Clamp((1L << 26) / (options.SequenceLength * model.Signature.Vocabulary), 1, batchSize);
        double nll = 0;
        for (int i = 0; i < windows.Count;)
        {
            cancellation.ThrowIfCancellationRequested();
            // Batch consecutive windows of equal length; the shorter last window runs alone.
            int count = 1;
            while (count < batchSize && i + count < windows.Count && windows[i + count].Length == windows[i].Length) count++;
            int windowLength = windows[i].Length;
            var ids = new long[count * windowLength];
            for (int b = 0; b < count; b++)
                for (int t = 0; t < windowLength; t++) ids[b * windowLength + t] = stream[windows[i + b].Start + t];
            float[] logits = model.ForwardWindows(ids, count, windowLength, out int vocabulary);
            for (int b = 0; b < count; b++)
            {
                var window = windows[i + b];
                for (int position = window.FirstScored; position < window.Start + window.Length; position++)
                {
                    // The logits at the previous position predict this one.
                    int row = b * windowLength + (position - 1 - window.Start);
                    int target = stream[position];
                    if ((uint)target >= (uint)vocabulary)
                        throw new ArgumentException($"Token id {target} at position {position} is outside the model's vocabulary of {vocabulary}.");
                    nll += NegativeLogLikelihood(logits.AsSpan(row * vocabulary, vocabulary), target);
                }
                scored += window.Scored;
            }
            progress?.Report(new PerplexityProgress(scored, total));
            i += count;
        }
        double mean = nll / total;
        return new PerplexityResult(Math.Exp(mean), total, mean, windows.Count, length);
    }

    /// <summary>−log softmax(logits)[target], with the log-sum-exp in double.</summary>
    public static double NegativeLogLikelihood(ReadOnlySpan<float> logits, int target)
    {
        double max = double.NegativeInfinity;
        foreach (float l in logits) if (l > max) max = l;
        double sum = 0;
        foreach (float l in logits) sum += Math.Exp(l - max);
        return max + Math.Log(sum) - logits[target];
    }
}
