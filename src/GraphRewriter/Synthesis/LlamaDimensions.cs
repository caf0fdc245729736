using System.Globalization;
using System.Text;

namespace SparseOnnx.GraphRewriter.Synthesis;

/// <summary>
/// The sizes of a Llama-architecture decoder (Hugging Face <c>LlamaConfig</c>): what
/// <see cref="SyntheticLlama.Build"/> needs to lay out its graph and weights.
/// </summary>
public sealed record LlamaDimensions
{
    /// <summary>Decoder layers (<c>num_hidden_layers</c>).</summary>
    public required int Layers { get; init; }

    /// <summary>Hidden size (<c>hidden_size</c>).</summary>
    public required int Hidden { get; init; }

    /// <summary>Query heads (<c>num_attention_heads</c>).</summary>
    public required int Heads { get; init; }

    /// <summary>Key/value heads (<c>num_key_value_heads</c>); fewer than <see cref="Heads"/> is grouped-query attention.</summary>
    public required int KvHeads { get; init; }

    /// <summary>MLP intermediate size (<c>intermediate_size</c>).</summary>
    public required int Intermediate { get; init; }

    /// <summary>Vocabulary size (<c>vocab_size</c>).</summary>
    public required int Vocab { get; init; }

    /// <summary>RoPE base (<c>rope_theta</c>); Hugging Face's default is 10000.</summary>
    public double RopeTheta { get; init; } = 10000;

    /// <summary>RMSNorm epsilon (<c>rms_norm_eps</c>); Hugging Face's default is 1e-6.</summary>
    public double RmsEps { get; init; } = 1e-6;

    /// <summary>Size of one attention head: <see cref="Hidden"/> / <see cref="Heads"/>.</summary>
    public int HeadDim => Hidden / Heads;

    /// <summary>
    /// Llama-3.2-1B's sizes (untied output head here; the released model ties it to the embeddings). Its
    /// llama3 RoPE frequency scaling is not modelled: it changes constants, not the work per token.
    /// </summary>
    public static LlamaDimensions Llama32_1B { get; } = new()
    {
        Layers = 16, Hidden = 2048, Heads = 32, KvHeads = 8, Intermediate = 8192, Vocab = 128256,
        RopeTheta = 500000, RmsEps = 1e-5,
    };

    /// <summary>
    /// A model small enough for tests, with every feature of the large one: two layers, grouped-query
    /// attention (2 query heads per key/value head), head size 16. Its RoPE base is Hugging Face's default
    /// so that every frequency visibly rotates over a few positions.
    /// </summary>
    public static LlamaDimensions Tiny { get; } = new()
    {
        Layers = 2, Hidden = 64, Heads = 4, KvHeads = 2, Intermediate = 96, Vocab = 128,
        RopeTheta = 10000, RmsEps = 1e-5,
    };

    /// <summary>The names <see cref="Preset"/> accepts.</summary>
    public static IReadOnlyList<string> PresetNames { get; } = ["llama-3.2-1b", "tiny"];

    /// <summary>The preset called <paramref name="name"/> (case-insensitive): one of <see cref="PresetNames"/>.</summary>
    public static LlamaDimensions Preset(string name) => name.ToLowerInvariant() switch
    {
        "llama-3.2-1b" => Llama32_1B,
        "tiny" => Tiny,
        _ => throw new ArgumentException(
            $"Unknown model preset '{name}'; known presets: {string.Join(", ", PresetNames)}.", nameof(name)),
    };

    /// <summary>
    /// Weights of the model <see cref="SyntheticLlama.Build"/> makes: embeddings, per layer the seven
    /// projections and two norm weights, the final norm and the untied output head.
    /// </summary>
    public long ParameterCount
    {
        get
        {
            long hidden = Hidden, kvWidth = (long)KvHeads * HeadDim;
            long perLayer = 2 * hidden * hidden + 2 * hidden * kvWidth + 3 * hidden * Intermediate + 2 * hidden;
            return Layers * perLayer + 2L * Vocab * hidden + hidden;
        }
    }

    /// <summary>Throws <see cref="ArgumentException"/>, naming the field, when these sizes describe no valid model.</summary>
    public void Validate()
    {
        RequirePositive(Layers, nameof(Layers));
        RequirePositive(Hidden, nameof(Hidden));
        RequirePositive(Heads, nameof(Heads));
        RequirePositive(KvHeads, nameof(KvHeads));
        RequirePositive(Intermediate, nameof(Intermediate));
        RequirePositive(Vocab, nameof(Vocab));
        if (!(RopeTheta > 0 && double.IsFinite(RopeTheta)))
            throw new ArgumentException($"{nameof(RopeTheta)} must be a finite number > 0, not {RopeTheta}.", nameof(RopeTheta));
        if (!(RmsEps > 0 && double.IsFinite(RmsEps)))
            throw new ArgumentException($"{nameof(RmsEps)} must be a finite number > 0, not {RmsEps}.", nameof(RmsEps));
        if (Hidden % Heads != 0)
            throw new ArgumentException($"{nameof(Hidden)} ({Hidden}) must be divisible by {nameof(Heads)} ({Heads}).", nameof(Hidden));
        if (Heads % KvHeads != 0)
            throw new ArgumentException(
                $"{nameof(Heads)} ({Heads}) must be divisible by {nameof(KvHeads)} ({KvHeads}): each key/value head serves a whole group of query heads.",
                nameof(KvHeads));
        // RoPE rotates pairs (d, d + HeadDim/2).
        if (HeadDim % 2 != 0)
            throw new ArgumentException(
                $"{nameof(HeadDim)} ({nameof(Hidden)} / {nameof(Heads)} = {HeadDim}) must be even for rotary embeddings.", nameof(HeadDim));
    }

    // The generated ToString would also print the derived HeadDim and ParameterCount, and so throw for
    // Heads = 0: print the stored fields only, so invalid dimensions can still be shown in messages.
    private bool PrintMembers(StringBuilder builder)
    {
        builder.Append(CultureInfo.InvariantCulture,
            $"Layers = {Layers}, Hidden = {Hidden}, Heads = {Heads}, KvHeads = {KvHeads}, Intermediate = {Intermediate}, " +
            $"Vocab = {Vocab}, RopeTheta = {RopeTheta}, RmsEps = {RmsEps}");
        return true;
    }

    private static void RequirePositive(int value, string field)
    {
        if (value <= 0) throw new ArgumentException($"{field} must be > 0, not {value}.", field);
    }
}
