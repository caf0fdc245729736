using System.Numerics.Tensors;
using SparseOnnx.Calibration.Capture;
using SparseOnnx.GraphRewriter.Sparsify;
using SparseOnnx.Runtime.Inference;

namespace SparseOnnx.Calibration.Sequential;

/// <summary>
/// The full method's logits objective for greedy allocation, in the sequential calibrator: a candidate's cost is the
/// KL divergence of the model's next-token distribution from the dense model's, on the greedy windows, with the block
/// under search set to the candidate, the blocks before it as decided and the blocks after it dense. The block runs
/// alone on its input stream (which carries the earlier decisions) and the rest of the model, the tail, runs from its
/// output. TEAL's block-output objective judges every direction of the residual stream alike and raised the held-out
/// loss on llama-brown at 60–70%; this one sees what the rest of the model makes of a block's error, at the price of
/// running the tail for every candidate (a few times the block objective's cost on a small model, which is where
/// <see cref="Fits"/> lets it run).
/// </summary>
internal sealed class TailObjective
{
    private readonly string _probePath;
    private readonly ProbeLayout _layout;
    private readonly string _logits;
    private readonly CalibrationOptions _options;
    private readonly int[][] _windows;
    private readonly float[] _reference;  // the dense model's next-token probabilities, [windows, length, vocabulary]
    private readonly double[] _negativeEntropy;  // per token, Σ p log p of the dense distribution
    private readonly int _vocabulary;
    private HiddenStates? _outputs;  // the block's outputs on the greedy windows, reused by every candidate

    private TailObjective(string probePath, ProbeLayout layout, string logits, CalibrationOptions options, int[][] windows, float[] reference,
        double[] negativeEntropy, int vocabulary)
    {
        _negativeEntropy = negativeEntropy;
        _probePath = probePath;
        _layout = layout;
        _logits = logits;
        _options = options;
        _windows = windows;
        _reference = reference;
        _vocabulary = vocabulary;
    }

    /// <summary>
    /// Whether the tail passes fit: the largest tail is nearly the whole model, held by one session (taken as twice the
    /// weights, as ONNX Runtime may copy and prepack them) beside the dense reference distributions.
    /// </summary>
    public static bool Fits(long weightBytes, long referenceBytes, long memoryBytes) => 2 * weightBytes + referenceBytes + (1L << 30) <= memoryBytes;

    /// <summary>Bytes of the dense reference for <paramref name="windows"/> windows of <paramref name="length"/> tokens over <paramref name="vocabulary"/> entries.</summary>
    public static long ReferenceBytes(int windows, int length, long vocabulary) => (long)windows * length * vocabulary * sizeof(float);

    /// <summary>Runs the dense model on the first <see cref="CalibrationOptions.GreedySamples"/> calibration windows and keeps its next-token distributions.</summary>
    public static TailObjective Measure(string probePath, ProbeLayout layout, string logits, IReadOnlyList<int[]> calibration, CalibrationOptions options,
        Action<string, double, double> report)
    {
        var windows = calibration.Take(Math.Min(options.GreedySamples, calibration.Count)).ToArray();
        float[]? reference = null;
        int vocabulary = 0;
        const string stage = "dense logits for the greedy search";
        report(stage, 0, windows.Length);
        using var model = ProbeCut.Open(probePath, layout, null, [logits], "dense-logits.onnx", options.Threads, options.Device, options.CudaProviderLibrary,
            prepack: false);
        model.Run(windows, null, 1, new ProbeSettings(layout), [logits], batch =>
        {
            var values = batch.Floats(logits);
            vocabulary = (int)batch.Shape(logits)[2];
            reference ??= new float[windows.Length * batch.Length * vocabulary];
            var row = reference.AsSpan(batch.FirstWindow * batch.Length * vocabulary, batch.Length * vocabulary);
            values.CopyTo(row);
        }, progress: done => report(stage, done, windows.Length));
        // Kept as probabilities with each token's Σ p log p, so a candidate's KL is Σ p log p − (p · x − logsumexp(x)).
        int tokens = reference!.Length / vocabulary;
        var negativeEntropy = new double[tokens];
        for (int t = 0; t < tokens; t++) negativeEntropy[t] = ToReference(reference.AsSpan(t * vocabulary, vocabulary));
        return new TailObjective(probePath, layout, logits, options, windows, reference, negativeEntropy, vocabulary);
    }

    /// <summary>The model from <paramref name="block"/>'s output to the logits, every later block dense, for the block's search.</summary>
    public ProbeCut OpenTail(BlockContext block) =>
        ProbeCut.Open(_probePath, _layout, block.Output, [_logits], "tail.onnx", _options.Threads, _options.Device, _options.CudaProviderLibrary, prepack: false);

    /// <summary>
    /// The mean over tokens of KL(dense ‖ candidate) of the next-token distributions, with <paramref name="block"/> under
    /// <paramref name="settings"/> and <paramref name="tail"/> (<see cref="OpenTail"/>) after it.
    /// </summary>
    public double Divergence(BlockContext block, ProbeCut tail, ProbeSettings settings)
    {
        int n = _windows.Length;
        if (_outputs is null || _outputs.Hidden != block.Calibration.Hidden || _outputs.Length != block.Calibration.Length)
            _outputs = HiddenStates.Create(n, block.Calibration.Length, block.Calibration.Hidden, long.MaxValue, "", "");
        var outputs = _outputs;
        block.Cut.Run(block.Data.Calibration, block.Calibration, block.BatchFor(block.Calibration.Hidden), settings, [block.Output],
            batch => outputs.WriteBatch(batch.FirstWindow, batch.Floats(block.Output)), count: n);
        double sum = 0;
        long tokens = 0;
        var scratch = new float[_vocabulary];
        // One batch's logits within the capture budget.
        int batchSize = (int)Math.Clamp(_options.CaptureBudgetBytes / ((long)block.Calibration.Length * _vocabulary * sizeof(float)), 1, n);
        tail.Run(_windows, outputs, batchSize, new ProbeSettings(_layout), [_logits], batch =>
        {
            var values = batch.Floats(_logits);
            for (int b = 0; b < batch.Windows; b++)
                for (int t = 0; t < batch.Length; t++)
                {
                    var x = values.Slice(((b * batch.Length) + t) * _vocabulary, _vocabulary);
                    int token = ((batch.FirstWindow + b) * batch.Length) + t;
                    sum += TokenDivergence(_reference.AsSpan(token * _vocabulary, _vocabulary), _negativeEntropy[token], x, scratch);
                    tokens++;
                }
        });
        return sum / Math.Max(tokens, 1);
    }

    /// <summary>Turns one token's <paramref name="logits"/> into its probabilities, in place, and returns Σ p log p.</summary>
    internal static double ToReference(Span<float> logits)
    {
        float max = TensorPrimitives.Max(logits);
        double total = 0;
        foreach (float x in logits) total += Math.Exp(x - max);
        float logSumExp = max + (float)Math.Log(total);
        double negativeEntropy = 0;
        for (int v = 0; v < logits.Length; v++)
        {
            float logP = logits[v] - logSumExp;
            logits[v] = MathF.Exp(logP);
            negativeEntropy += logits[v] * (double)logP;
        }
        return negativeEntropy;
    }

    /// <summary>
    /// KL(p ‖ softmax(<paramref name="logits"/>)) for a reference made by <see cref="ToReference"/>: Σ p log p − Σ p log q,
    /// where Σ p log q = p · x − logsumexp(x) because the probabilities sum to one. <paramref name="scratch"/>: as long as the row.
    /// </summary>
    internal static double TokenDivergence(ReadOnlySpan<float> probabilities, double negativeEntropy, ReadOnlySpan<float> logits, Span<float> scratch)
    {
        float max = TensorPrimitives.Max(logits);
        TensorPrimitives.Subtract(logits, max, scratch);
        TensorPrimitives.Exp(scratch, scratch);
        double logSumExp = max + Math.Log(TensorPrimitives.Sum<float>(scratch));
        return negativeEntropy - (TensorPrimitives.Dot(probabilities, logits) - logSumExp);
    }
}
