using SparseOnnx.Calibration.Allocation;
using SparseOnnx.Calibration.Capture;
using SparseOnnx.Calibration.Statistics;
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
        double[] negativeEntropy, int vocabulary, TimeSpan densePass, TimeSpan divergence)
    {
        DensePass = densePass;
        DivergenceCost = divergence;
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
        var clock = new System.Diagnostics.Stopwatch();
        using var model = ProbeCut.Open(probePath, layout, null, [logits], "dense-logits.onnx", options.Threads, options.Device, options.CudaProviderLibrary,
            prepack: false);
        clock.Start();
        model.Run(windows, null, 1, new ProbeSettings(layout), [logits], batch =>
        {
            var values = batch.Floats(logits);
            vocabulary = (int)batch.Shape(logits)[2];
            reference ??= new float[windows.Length * batch.Length * vocabulary];
            var row = reference.AsSpan(batch.FirstWindow * batch.Length * vocabulary, batch.Length * vocabulary);
            values.CopyTo(row);
        }, progress: done => report(stage, done, windows.Length));
        clock.Stop();
        // As the full method's search keeps them: probabilities with each token's Σ p log p (TokenDistributions).
        var (probabilities, negativeEntropy) = TokenDistributions.Of(reference!, vocabulary);
        // What a candidate's KL costs, timed on the dense logits themselves (whose KL from their own distributions is 0).
        var divergenceClock = System.Diagnostics.Stopwatch.StartNew();
        for (int token = 0; token < negativeEntropy.Length; token++)
            TokenDistributions.KlDivergence(probabilities.AsSpan(token * vocabulary, vocabulary), negativeEntropy[token], reference.AsSpan(token * vocabulary, vocabulary));
        divergenceClock.Stop();
        return new TailObjective(probePath, layout, logits, options, windows, probabilities, negativeEntropy, vocabulary, clock.Elapsed, divergenceClock.Elapsed);
    }

    /// <summary>How long the dense model took over the search windows (the session's opening not counted).</summary>
    public TimeSpan DensePass { get; }

    /// <summary>How long one KL over the search windows' tokens takes (timed on the dense logits): what each candidate adds to its passes.</summary>
    public TimeSpan DivergenceCost { get; }

    /// <summary>
    /// About how long the search will take over <paramref name="layout"/>'s blocks. A candidate of block b runs the block
    /// on its own, then blocks b+1.. and the head, about (L − b + 1) / L of <paramref name="densePass"/>, and its KL
    /// (<paramref name="perCandidate"/>); a lazy step measures about two candidates, an exhaustive one every group, and a
    /// block takes about groups × (target − start) / step steps (<see cref="GreedyAllocator"/>).
    /// </summary>
    public static TimeSpan EstimatedSearch(TimeSpan densePass, TimeSpan perCandidate, ProbeLayout layout, CalibrationOptions options)
    {
        int blocks = layout.Layers.Count;
        if (blocks == 0) return TimeSpan.Zero;
        double groups = (double)layout.Groups.Count / blocks;
        double steps = groups * Math.Ceiling((options.Sparsity - options.GreedySearch.Start) / options.GreedyStep - 1e-9);
        double perStep = options.GreedyLazy ? Math.Min(2, groups) : groups;
        double candidatesPerBlock = groups + (perStep * steps);
        // Σ over blocks of (L − b + 1) / L, b = 0 .. L − 1.
        double passesPerCandidate = ((blocks + 1) / 2.0) + 1;
        return candidatesPerBlock * ((densePass * passesPerCandidate) + (perCandidate * blocks));
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
                    sum += TokenDistributions.KlDivergence(_reference.AsSpan(token * _vocabulary, _vocabulary), _negativeEntropy[token], x);
                    tokens++;
                }
        });
        return sum / Math.Max(tokens, 1);
    }
}
