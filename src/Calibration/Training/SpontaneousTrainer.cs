using SparseOnnx.Calibration.Statistics;
using System.Diagnostics;
using SparseOnnx.Calibration.Capture;
using SparseOnnx.Calibration.Compensation;

namespace SparseOnnx.Calibration.Training;

/// <summary>One held-out evaluation during training.</summary>
public sealed record TrainingCheckpoint(int Step, double TrainingLoss, double HeldOutKl);

/// <summary>What training produced: the settings with the trained vectors, and how it went.</summary>
public sealed record TrainingOutcome(ProbeSettings Settings, int Steps, double InitialHeldOutKl, double BestHeldOutKl, int BestStep,
    IReadOnlyList<TrainingCheckpoint> History, string Stopped, TimeSpan Elapsed);

/// <summary>
/// Trains spontaneous-neuron vectors with Adam on KL(dense ‖ sparse) of the next-token distributions over the
/// calibration windows, the thresholds (or k) fixed. Each step runs the training graph (<see cref="TrainingGraph"/>)
/// on a batch of windows; the dense model's distributions come from the probe run dense, kept for all windows
/// when they fit the capture budget and recomputed per batch otherwise. Every few steps the KL on the held-out
/// windows is measured; the best vectors seen are returned, and training stops early after
/// <see cref="SpontaneousTrainingOptions.Patience"/> evaluations without improvement. With a re-thresholding
/// function, each check first re-measures the thresholds with the current vectors (given and returned as plain
/// probe settings), so every checkpoint drops the allocated fraction of each input.
/// </summary>
public sealed class SpontaneousTrainer
{
    private readonly ProbeSession _probe;
    private readonly ProbeSession _training;
    private readonly TrainingGraph _graph;
    private readonly SpontaneousTrainingOptions _options;
    private readonly long _budgetBytes;
    private readonly Action<string, double, double>? _report;
    private readonly Func<ProbeSettings, ProbeSettings>? _rethreshold;
    private Reference? _gathered;

    /// <summary>A trainer over a probe (for references and held-out checks) and its training graph's session.</summary>
    public SpontaneousTrainer(ProbeSession probe, ProbeSession training, TrainingGraph graph, SpontaneousTrainingOptions options, long budgetBytes,
        Action<string, double, double>? report = null, Func<ProbeSettings, ProbeSettings>? rethreshold = null)
    {
        _rethreshold = rethreshold;
        options.Validate();
        _probe = probe;
        _training = training;
        _graph = graph;
        _options = options;
        _budgetBytes = budgetBytes;
        _report = report;
    }

    /// <summary>
    /// Trains from <paramref name="start"/> (its thresholds or k, and its compensation vectors as the starting
    /// point when warm-starting) on <paramref name="calibration"/>, stopping on <paramref name="heldOut"/>.
    /// </summary>
    public TrainingOutcome Train(ProbeSettings start, IReadOnlyList<int[]> calibration, IReadOnlyList<int[]> heldOut)
    {
        var clock = Stopwatch.StartNew();
        var layout = start.Layout;
        int vocabulary = _probe.Vocabulary > 0 ? (int)_probe.Vocabulary
            : throw new CalibrationModelException("the logits' vocabulary size is symbolic; training spontaneous neurons needs it fixed");
        long referenceBytes = (long)vocabulary * calibration[0].Length * sizeof(float);
        var dense = new ProbeSettings(layout);

        // Base vectors: what the Adds hold before training (warm start) or zero. In the input space they stay
        // fixed and W·α is added on top; in the output space they are where the trained vectors start.
        var basis = start.Clone();
        foreach (var p in layout.Projections) if (!_options.WarmStart) basis.SetCompensation(p, null);
        var parameters = _graph.Parameters.Select(t => t.Projection is { } p && basis.Compensation(p) is { } initial
            ? (float[])initial.Clone() : new float[t.Length]).ToArray();

        var heldOutReference = References(heldOut, dense, vocabulary);
        double Evaluate()
        {
            if (_rethreshold is not null) basis = basis.WithSelectionOf(_rethreshold(CompensatedSettings(basis, parameters)));
            return HeldOutKl(CompensatedSettings(basis, parameters), heldOut, heldOutReference, vocabulary);
        }
        var cached = ReferencesCached(vocabulary, calibration[0].Length, calibration.Count, _budgetBytes) ? References(calibration, dense, vocabulary) : null;

        var optimizer = new AdamOptimizer(parameters.Select(p => p.Length));
        var order = new Random(_options.Seed);
        var queue = new Queue<int>();
        double initial = Evaluate(), best = initial;
        int bestStep = 0, sinceBest = 0, step = 0;
        var bestParameters = parameters.Select(p => (float[])p.Clone()).ToArray();
        var bestBasis = basis;
        var history = new List<TrainingCheckpoint> { new(0, double.NaN, initial) };
        string stopped = $"ran all {_options.Steps} steps";
        double recentLoss = 0;
        int recentSteps = 0;
        int batchWindows = Math.Min(_options.BatchWindows, calibration.Count);
        for (; step < _options.Steps; step++)
        {
            _report?.Invoke($"training spontaneous neurons (held-out KL {best:0.0000})", step, _options.Steps);
            if (queue.Count < batchWindows)
                foreach (int i in Enumerable.Range(0, calibration.Count).OrderBy(_ => order.Next())) queue.Enqueue(i);
            var indices = Enumerable.Range(0, batchWindows).Select(_ => queue.Dequeue()).ToArray();
            var windows = indices.Select(i => calibration[i]).ToArray();
            var reference = cached is null ? References(windows, dense, vocabulary) : Gather(cached, indices, referenceBytes / sizeof(float));
            var (loss, gradients) = Gradients(basis, parameters, windows, reference, vocabulary);
            optimizer.Step(parameters, gradients, AdamOptimizer.Schedule(_options.LearningRate, step, _options.Steps));
            recentLoss += loss;
            recentSteps++;
            if ((step + 1) % _options.EvaluateEvery != 0 && step + 1 != _options.Steps) continue;
            double heldOutKl = Evaluate();
            history.Add(new TrainingCheckpoint(step + 1, recentLoss / recentSteps, heldOutKl));
            recentLoss = 0;
            recentSteps = 0;
            bool improved = heldOutKl < best;
            if (improved) best = heldOutKl;
            // Without early stopping the last vectors are kept, better or not (the paper's protocol).
            if (improved || _options.Patience == 0)
            {
                bestStep = step + 1;
                bestBasis = basis;
                for (int p = 0; p < parameters.Length; p++) parameters[p].CopyTo(bestParameters[p], 0);
                sinceBest = 0;
            }
            else if (++sinceBest >= _options.Patience)
            {
                stopped = $"stopped early after {step + 1} steps ({_options.Patience} held-out checks without improvement)";
                step++;
                break;
            }
        }
        _report?.Invoke("training spontaneous neurons", _options.Steps, _options.Steps);
        double final = _options.Patience == 0 ? history[^1].HeldOutKl : best;
        return new TrainingOutcome(CompensatedSettings(bestBasis, bestParameters), step, initial, final, bestStep, history, stopped, clock.Elapsed);
    }

    /// <summary>The plain probe's settings with the vectors <paramref name="parameters"/> describe (W·α added to the basis in the input space).</summary>
    private ProbeSettings CompensatedSettings(ProbeSettings basis, float[][] parameters)
    {
        var settings = basis.Clone();
        for (int i = 0; i < _graph.Parameters.Count; i++)
        {
            var parameter = _graph.Parameters[i];
            if (parameter.Projection is { } projection)
            {
                settings.SetCompensation(projection, (float[])parameters[i].Clone());
                continue;
            }
            var alpha = parameters[i].Select(v => (double)v).ToArray();
            foreach (var member in parameter.Group.Members)
            {
                var vector = ClosedFormCompensation.Vector(member, alpha);
                if (basis.Compensation(member) is { } baseVector)
                    for (int n = 0; n < vector.Length; n++) vector[n] += baseVector[n];
                settings.SetCompensation(member, vector);
            }
        }
        return settings;
    }

    /// <summary>
    /// The step's loss and gradients over <paramref name="windows"/>: one run, or where the batch's vocabulary-wide tensors
    /// exceed <see cref="SpontaneousTrainingOptions.StepMemoryBytes"/>, micro-batches whose shares of the mean are summed.
    /// </summary>
    private (double Loss, float[][] Gradients) Gradients(ProbeSettings basis, float[][] parameters, int[][] windows, Reference reference, int vocabulary)
    {
        int length = windows[0].Length;
        int microBatch = MicroBatch(_options, vocabulary, length, windows.Length);
        long positions = (long)windows.Length * length;
        long floatsPerWindow = (long)length * vocabulary;
        double loss = 0;
        float[][]? gradients = null;
        var outputs = new List<string> { _graph.LossOutput };
        outputs.AddRange(_graph.Parameters.Select(p => p.GradientOutput));
        _training.Run(windows, microBatch, _graph.Settings(basis, parameters), outputs, batch =>
        {
            loss += batch.Floats(_graph.LossOutput)[0];
            if (gradients is null)
            {
                gradients = _graph.Parameters.Select(p => batch.Floats(p.GradientOutput).ToArray()).ToArray();
                return;
            }
            for (int i = 0; i < gradients.Length; i++)
            {
                var share = batch.Floats(_graph.Parameters[i].GradientOutput);
                var sum = gradients[i];
                for (int j = 0; j < sum.Length; j++) sum[j] += share[j];
            }
        }, batchInputs: (first, count) => _graph.BatchInputs(
            reference.Probabilities.AsMemory(checked((int)(first * floatsPerWindow)), checked((int)(count * floatsPerWindow))),
            Sum(reference.NegativeEntropy.AsSpan(first * length, count * length)), count, length, parameters, positions));
        return (loss, gradients!);
    }

    /// <summary>
    /// Whether the dense references of all <paramref name="windows"/> calibration windows are computed once and kept
    /// (they fit <paramref name="budgetBytes"/>), rather than recomputed for each step's windows.
    /// </summary>
    internal static bool ReferencesCached(long vocabulary, int length, int windows, long budgetBytes) =>
        vocabulary * length * sizeof(float) * windows <= budgetBytes;

    /// <summary>Windows per run of a training step: the whole batch where its vocabulary-wide tensors fit the step's memory.</summary>
    internal static int MicroBatch(SpontaneousTrainingOptions options, long vocabulary, int length, int batch) =>
        (int)Math.Clamp(options.StepMemoryBytes / TrainingGraph.StepBytesPerWindow(vocabulary, length), 1, batch);

    private static double Sum(ReadOnlySpan<double> values)
    {
        double sum = 0;
        foreach (double value in values) sum += value;
        return sum;
    }

    private sealed record Reference(float[] Probabilities, double[] NegativeEntropy);

    /// <summary>The dense model's distributions over <paramref name="windows"/>, window after window.</summary>
    private Reference References(IReadOnlyList<int[]> windows, ProbeSettings dense, int vocabulary)
    {
        int batch = (int)Math.Clamp(_budgetBytes / ((long)vocabulary * windows[0].Length * sizeof(float)), 1, 64);
        var probabilities = _probe.Capture(windows, batch, dense, _probe.Logits);
        return new Reference(probabilities, TokenDistributions.IntoProbabilities(probabilities, vocabulary));
    }

    /// <summary>The cached references of <paramref name="windows"/>, copied into one buffer reused across steps (a batch's probabilities are megabytes).</summary>
    private Reference Gather(Reference all, int[] windows, long floatsPerWindow)
    {
        int rowsPerWindow = (int)(all.NegativeEntropy.Length / (all.Probabilities.Length / floatsPerWindow));
        if (_gathered is null || _gathered.Probabilities.Length != windows.Length * floatsPerWindow)
            _gathered = new Reference(new float[windows.Length * floatsPerWindow], new double[windows.Length * rowsPerWindow]);
        var (probabilities, negativeEntropy) = (_gathered.Probabilities, _gathered.NegativeEntropy);
        for (int i = 0; i < windows.Length; i++)
        {
            Array.Copy(all.Probabilities, windows[i] * floatsPerWindow, probabilities, i * floatsPerWindow, floatsPerWindow);
            Array.Copy(all.NegativeEntropy, windows[i] * rowsPerWindow, negativeEntropy, i * rowsPerWindow, rowsPerWindow);
        }
        return _gathered;
    }

    /// <summary>Mean KL(dense ‖ sparse) per position over <paramref name="windows"/> under <paramref name="settings"/>.</summary>
    private double HeldOutKl(ProbeSettings settings, IReadOnlyList<int[]> windows, Reference reference, int vocabulary)
    {
        double sum = 0;
        long row = 0;
        int batch = (int)Math.Clamp(_budgetBytes / ((long)vocabulary * windows[0].Length * sizeof(float)), 1, 64);
        _probe.Run(windows, batch, settings, [_probe.Logits], b =>
        {
            var logits = b.Floats(_probe.Logits);
            for (int r = 0; r < logits.Length / vocabulary; r++, row++)
                sum += TokenDistributions.KlDivergence(reference.Probabilities.AsSpan((int)(row * vocabulary), vocabulary), reference.NegativeEntropy[row],
                    logits.Slice(r * vocabulary, vocabulary));
        });
        return sum / row;
    }
}
