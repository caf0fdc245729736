namespace SparseOnnx.Runtime.Inference;

/// <summary>
/// One request's decoding state on a <see cref="CausalLm"/>: the tokens consumed so far and their KV cache
/// (the previous call's present tensors, kept in ONNX Runtime's memory and fed back without a copy).
/// Not thread-safe; use one per request. Dispose it to free the cache.
/// </summary>
public sealed class DecoderSequence : IDisposable
{
    private readonly CausalLm _model;
    private readonly List<int> _tokens = new();
    private DecoderRun? _last;
    private bool _disposed;

    internal DecoderSequence(CausalLm model) => _model = model;

    /// <summary>The tokens consumed so far (the KV cache covers all of them).</summary>
    public IReadOnlyList<int> Tokens => _tokens;

    /// <summary>
    /// Feeds <paramref name="tokens"/> (a prompt chunk, or one generated token) and returns the logits for the
    /// token after the last of them, as float32 [vocabulary].
    /// </summary>
    public float[] Append(ReadOnlySpan<int> tokens) => Run(tokens).LastLogits();

    /// <summary>As <see cref="Append"/>, but returns the logits of every fed position, [tokens × vocabulary].</summary>
    public float[] AppendAllLogits(ReadOnlySpan<int> tokens, out int vocabulary)
    {
        var all = Run(tokens).LogitsAsFloat(out var shape);
        vocabulary = (int)shape[2];
        return all;
    }

    /// <summary>Runs the decoder over <paramref name="tokens"/> after the cached ones; the run becomes the new cache.</summary>
    private DecoderRun Run(ReadOnlySpan<int> tokens)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (tokens.IsEmpty) throw new ArgumentException("Append needs at least one token.", nameof(tokens));
        int past = _tokens.Count, length = tokens.Length;
        var ids = new long[length];
        var positions = new long[length];
        for (int i = 0; i < length; i++)
        {
            ids[i] = tokens[i];
            positions[i] = past + i;
        }
        var mask = new long[past + length];
        Array.Fill(mask, 1L);
        var run = new DecoderRun(_model, ids, mask, positions, 1, length, _last);
        _last?.Dispose();
        _last = run;
        foreach (int token in tokens) _tokens.Add(token);
        return run;
    }

    /// <inheritdoc />
    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        _last?.Dispose();
        _last = null;
    }
}
