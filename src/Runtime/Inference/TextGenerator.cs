using SparseOnnx.Runtime.Tokenization;

namespace SparseOnnx.Runtime.Inference;

/// <summary>What to generate.</summary>
public sealed record GenerationOptions
{
    /// <summary>Most new tokens to produce.</summary>
    public int MaxTokens { get; init; } = 64;

    /// <summary>How tokens are chosen; greedy by default.</summary>
    public SamplingOptions Sampling { get; init; } = new();

    /// <summary>Stop at the tokenizer's end-of-sequence token.</summary>
    public bool StopAtEos { get; init; } = true;

    /// <summary>Put the tokenizer's BOS in front of the prompt; null: when it has one distinct from EOS.</summary>
    public bool? AddBos { get; init; }
}

/// <summary>One generated token and the text it completes (empty while it ends inside a multi-byte character).</summary>
public sealed record GeneratedToken(int Id, string Text);

/// <summary>The whole result of a generation.</summary>
public sealed record GenerationResult(IReadOnlyList<int> PromptIds, IReadOnlyList<int> Ids, string Text, bool StoppedAtEos);

/// <summary>Generates text from a prompt with a <see cref="CausalLm"/> and a <see cref="TextTokenizer"/>, streaming tokens.</summary>
public static class TextGenerator
{
    /// <summary>
    /// Yields tokens as they are produced. The sequence's KV cache is freed when the enumeration ends
    /// (also when it is abandoned, as <c>foreach</c> disposes the enumerator).
    /// </summary>
    public static IEnumerable<GeneratedToken> Stream(CausalLm model, TextTokenizer tokenizer, string prompt, GenerationOptions? options = null)
    {
        options ??= new GenerationOptions();
        return StreamIterator(model, tokenizer, CheckedPromptIds(tokenizer, prompt, options), options);
    }

    /// <summary>Generates to the end and returns the prompt ids, the new ids and the new text.</summary>
    public static GenerationResult Generate(CausalLm model, TextTokenizer tokenizer, string prompt, GenerationOptions? options = null, Action<GeneratedToken>? onToken = null)
    {
        options ??= new GenerationOptions();
        int[] promptIds = CheckedPromptIds(tokenizer, prompt, options);
        var ids = new List<int>();
        var text = new System.Text.StringBuilder();
        foreach (var token in StreamIterator(model, tokenizer, promptIds, options))
        {
            ids.Add(token.Id);
            text.Append(token.Text);
            onToken?.Invoke(token);
        }
        bool stopped = options.StopAtEos && ids.Count > 0 && ids[^1] == tokenizer.EosId;
        return new GenerationResult(promptIds, ids, text.ToString(), stopped);
    }

    // Checks the options and encodes the prompt before any generation starts, so that bad input fails the
    // call itself rather than the first step of a lazy enumeration.
    private static int[] CheckedPromptIds(TextTokenizer tokenizer, string prompt, GenerationOptions options)
    {
        options.Sampling.Validate();
        if (options.MaxTokens < 0) throw new ArgumentException($"max-tokens must be ≥ 0, not {options.MaxTokens}.");
        bool addBos = options.AddBos ?? (tokenizer.BosId is not null && tokenizer.BosId != tokenizer.EosId);
        int[] ids = tokenizer.Encode(prompt, addBos);
        if (ids.Length == 0) throw new ArgumentException("The prompt encodes to no tokens; give a non-empty prompt.");
        return ids;
    }

    private static IEnumerable<GeneratedToken> StreamIterator(CausalLm model, TextTokenizer tokenizer, int[] promptIds, GenerationOptions options)
    {
        using var sequence = model.StartSequence();
        var sampler = new TokenSampler(options.Sampling);
        // Texts are decoded with the prompt in front so that word boundaries (SentencePiece's leading space,
        // byte-level merges) come out as in the whole text; the prompt's own text is then cut off.
        var generated = new List<int>(promptIds);
        string promptText = tokenizer.Decode(promptIds);
        string emitted = promptText;
        float[] logits = sequence.Append(promptIds);
        for (int step = 0; step < options.MaxTokens; step++)
        {
            int next = sampler.Next(logits);
            generated.Add(next);
            bool end = options.StopAtEos && next == tokenizer.EosId;
            // Decode everything generated so far and emit what is new, holding back a trailing partial
            // character (U+FFFD from an incomplete byte sequence) until the bytes that finish it arrive.
            var newIds = generated.Skip(promptIds.Length).Take(generated.Count - promptIds.Length - (end ? 1 : 0)).ToList();
            string text = tokenizer.Decode(promptIds.Concat(newIds));
            if (!text.StartsWith(promptText, StringComparison.Ordinal)) text = promptText + tokenizer.Decode(newIds);
            string delta = "";
            if (!text.EndsWith('\uFFFD') || end || step == options.MaxTokens - 1)
            {
                delta = text.StartsWith(emitted, StringComparison.Ordinal) ? text[emitted.Length..] : text[Math.Min(promptText.Length, text.Length)..];
                emitted = text;
            }
            yield return new GeneratedToken(next, delta);
            if (end || step == options.MaxTokens - 1) yield break;
            logits = sequence.Append([next]);
        }
    }
}
