using SparseOnnx.Runtime.Evaluation;
using SparseOnnx.Runtime.Tokenization;

namespace SparseOnnx.Calibration.Data;

/// <summary>How calibration windows are cut from a token stream.</summary>
public sealed record CalibrationSetOptions
{
    /// <summary>Tokens per window (every window is a fresh sequence with positions 0..length-1).</summary>
    public int SequenceLength { get; init; } = 128;

    /// <summary>Windows the statistics are measured on.</summary>
    public int Samples { get; init; } = 64;

    /// <summary>Windows held out: decisions (allocation fallback, which compensation to keep) are judged on them, never on the calibration windows.</summary>
    public int ValidationSamples { get; init; } = 16;

    /// <summary>Seed of the shuffle that assigns windows to the two parts; the same seed and text give the same windows.</summary>
    public int Seed { get; init; }

    /// <summary>Throws <see cref="ArgumentException"/> for sizes that cannot work.</summary>
    public void Validate()
    {
        if (SequenceLength < 2) throw new ArgumentException($"The sequence length must be at least 2 tokens, not {SequenceLength}.");
        if (Samples < 1) throw new ArgumentException($"At least one calibration sample is needed, not {Samples}.");
        if (ValidationSamples < 1) throw new ArgumentException($"At least one validation sample is needed, not {ValidationSamples}.");
    }
}

/// <summary>
/// Calibration text cut into windows: <see cref="Calibration"/> for measuring, <see cref="Validation"/> held out
/// for judging. Windows are consecutive, non-overlapping chunks of the token stream; a seeded shuffle
/// (<see cref="Random"/> with a seed is stable across .NET versions) decides which are used for what, so
/// both parts sample the whole text rather than its beginning.
/// </summary>
public sealed class CalibrationSet
{
    private CalibrationSet(int sequenceLength, IReadOnlyList<int[]> calibration, IReadOnlyList<int[]> validation, string source, int streamTokens)
    {
        SequenceLength = sequenceLength;
        Calibration = calibration;
        Validation = validation;
        Source = source;
        StreamTokens = streamTokens;
    }

    /// <summary>Tokens per window.</summary>
    public int SequenceLength { get; }

    /// <summary>The windows statistics are measured on.</summary>
    public IReadOnlyList<int[]> Calibration { get; }

    /// <summary>The held-out windows.</summary>
    public IReadOnlyList<int[]> Validation { get; }

    /// <summary>What the windows came from, for provenance.</summary>
    public string Source { get; }

    /// <summary>Tokens in the stream the windows were cut from.</summary>
    public int StreamTokens { get; }

    /// <summary>Cuts windows from a token stream; throws <see cref="CalibrationDataException"/> when the stream is too short.</summary>
    public static CalibrationSet FromTokens(IReadOnlyList<int> stream, CalibrationSetOptions options, string source)
    {
        options.Validate();
        int length = options.SequenceLength;
        int available = stream.Count / length;
        int needed = options.Samples + options.ValidationSamples;
        if (available < needed)
            throw new CalibrationDataException(
                $"The calibration data ({source}) has {stream.Count} tokens: {available} windows of {length}, but {options.Samples} calibration + " +
                $"{options.ValidationSamples} validation windows were asked for. Give more text, or fewer or shorter samples.");
        var order = Enumerable.Range(0, available).ToArray();
        new Random(options.Seed).Shuffle(order);
        int[] Window(int index)
        {
            var window = new int[length];
            for (int t = 0; t < length; t++) window[t] = stream[index * length + t];
            return window;
        }
        // Each part keeps stream order, so a batch reads text in the order it was written.
        var calibration = order.Take(options.Samples).Order().Select(Window).ToArray();
        var validation = order.Skip(options.Samples).Take(options.ValidationSamples).Order().Select(Window).ToArray();
        return new CalibrationSet(length, calibration, validation,
            $"{source}: {options.Samples} + {options.ValidationSamples} held-out windows × {length} tokens (seed {options.Seed}) of {stream.Count}", stream.Count);
    }

    /// <summary>A text file read into one token stream as evaluation reads it (<see cref="TokenStream.Read"/>: the whole
    /// file as one stream by default, or one document per line), then cut into windows; the source names the convention.</summary>
    public static CalibrationSet FromTextFile(string path, TextTokenizer tokenizer, CalibrationSetOptions options, TextReading? reading = null)
    {
        var text = TokenStream.Read(path, tokenizer, reading);
        return FromTokens(text.Ids, options, $"{Path.GetFileName(path)} ({text.Description})");
    }

    /// <summary>Pre-tokenized ids, whitespace-separated, one sequence per line (<see cref="TokenStream.FromIdsFile"/>).</summary>
    public static CalibrationSet FromIdsFile(string path, CalibrationSetOptions options) =>
        FromTokens(TokenStream.FromIdsFile(path), options, Path.GetFileName(path));
}

/// <summary>The calibration data cannot give what was asked for; the message says why.</summary>
public sealed class CalibrationDataException(string message) : Exception(message);
