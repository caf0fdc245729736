using System.Diagnostics;
using System.Globalization;
using SparseOnnx.Calibration.Allocation;
using SparseOnnx.Calibration.Capture;
using SparseOnnx.Calibration.Compensation;
using SparseOnnx.Calibration.Data;
using SparseOnnx.Calibration.Sequential;
using SparseOnnx.Calibration.Statistics;
using SparseOnnx.Calibration.Training;
using SparseOnnx.GraphRewriter.Analysis.Projections;
using SparseOnnx.GraphRewriter.Autodiff;
using SparseOnnx.GraphRewriter.IO;
using SparseOnnx.GraphRewriter.Ir;
using SparseOnnx.GraphRewriter.Quantization;
using SparseOnnx.GraphRewriter.Sparsify;
using SparseOnnx.Runtime.Evaluation;
using SparseOnnx.Runtime.Inference;

namespace SparseOnnx.Calibration;

/// <summary>
/// The calibration pass. Runs the model on calibration text through its probe (<see cref="ProbeModelBuilder"/>)
/// and decides, per group of projections sharing an input:
/// <list type="number">
/// <item>the allocation: uniform, or TEAL's block-wise greedy search, sequentially layer by layer (layer l is
/// searched with layers &lt; l already at their allocation);</item>
/// <item>the threshold that drops that fraction of the magnitudes each input takes with the uniform thresholds applied upstream (threshold mode), or k (top-k mode);</item>
/// <item>the closed-form compensation, computed sequentially (layer l with the decisions for layers &lt; l applied)
/// and, in <see cref="CompensationMode.Auto"/>, kept group by group only where it lowers the held-out loss.</item>
/// </list>
/// Greedy is kept only when its held-out loss beats uniform's, so nothing calibration applies makes the
/// held-out loss worse than plain uniform thresholds. Memory: one batch of captured outputs
/// (<see cref="CalibrationOptions.CaptureBudgetBytes"/>) plus, per group, a 33 KB histogram and K doubles of
/// means, plus the greedy search's reference (greedy samples × length floats × hidden size, or × vocabulary
/// for the logits objective).
/// </summary>
public sealed class Calibrator
{
    private readonly CalibrationOptions _options;
    private readonly List<CalibrationStage> _stages = new();
    private readonly IProgress<CalibrationProgress>? _progress;
    private readonly List<string> _notes = new();
    private ProbeSession _session = null!;
    private bool _trainable;
    private IReadOnlyDictionary<string, string> _links = new Dictionary<string, string>();
    private CalibrationSet _data = null!;

    private Calibrator(CalibrationOptions options, IProgress<CalibrationProgress>? progress)
    {
        _options = options;
        _progress = progress;
    }

    /// <summary>
    /// Calibrates the model at <paramref name="modelPath"/> (never modified) on <paramref name="data"/>: loads it
    /// (its external data mapped, not read) and calibrates that, as <see cref="Run(Model, CalibrationSet, CalibrationOptions, string, IProgress{CalibrationProgress}?)"/>.
    /// </summary>
    public static CalibrationResult Run(string modelPath, CalibrationSet data, CalibrationOptions options, string workFolder,
        IProgress<CalibrationProgress>? progress = null)
    {
        options.Validate();
        if (!File.Exists(modelPath)) throw new FileNotFoundException($"The model '{modelPath}' does not exist.", modelPath);
        using var model = ModelLoader.Load(modelPath);
        return Run(model, data, options, workFolder, progress);
    }

    /// <summary>
    /// Calibrates a loaded <paramref name="model"/> on <paramref name="data"/> and returns the plan in memory, with every
    /// stage's time. The model is left as it was (calibration instruments a <see cref="Model.Clone"/> of it, which shares
    /// its tensors), so the caller can rewrite it with the plan next. The probes are written to <paramref name="workFolder"/>
    /// (created, and deleted afterwards when calibration created it, on failure, Ctrl-C and SIGTERM too); the model's
    /// external data files are hard-linked there, not copied, where the file system allows it.
    /// </summary>
    public static CalibrationResult Run(SparseOnnx.GraphRewriter.Ir.Model model, CalibrationSet data, CalibrationOptions options, string workFolder,
        IProgress<CalibrationProgress>? progress = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        options.Validate();
        // Deleted afterwards when this call created it, and on Ctrl-C or SIGTERM through ScratchPaths.
        using var scratch = ScratchFolder.Claim(workFolder);
        return new Calibrator(options, progress).Calibrate(model, data, workFolder);
    }

    private CalibrationResult Calibrate(SparseOnnx.GraphRewriter.Ir.Model source, CalibrationSet data, string workFolder)
    {
        var clock = Stopwatch.StartNew();
        _data = data;
        // The source's weights are linked into the work folder, not copied, where the file system allows it; the
        // probes saved there reference the links.
        _links = SourceStaging.Link(source.ExternalDataPaths, workFolder, out long linkedBytes);
        // The probe: a copy of the model instrumented in place (the copy shares the source's tensors).
        using var model = source.Clone();
        // A quantized model (MatMulNBits) is calibrated as the float model it computes: its dequantized weights
        // under the same node names, so the plan applies to the quantized model unchanged.
        new DequantizePass().Run(model);
        var layout = ProbeModelBuilder.Instrument(model, new ProbeOptions { Kinds = _options.Kinds, Mode = _options.Mode });
        _trainable = _options.Training is { } asked && TrainingRuns(layout, asked);
        if (_options.Method == CalibrationMethod.Sequential)
        {
            if (SequentialCalibrator.Problem(layout) is { } problem2)
                _notes.Add($"calibrated on the whole model: its blocks cannot be cut one by one ({problem2})");
            else
                return CalibrateSequentially(model, layout, workFolder, linkedBytes, clock);
        }
        if (_options.Allocation == AllocationMethod.Greedy && _options.GreedyObjective == GreedyObjective.BlockOutput && layout.BlockOutputProblem is { } problem)
            throw new CalibrationModelException($"the block objective of greedy allocation measures each block's output, but {problem}; use --greedy-objective logits");
        using var session = ProbeSession.Open(model, layout, workFolder, _options.Threads, device: _options.Device, cudaProviderLibrary: _options.CudaProviderLibrary,
            externalDataLinks: _links);
        _session = session;
        if (_options.Device == ExecutionDevice.Auto)
            _notes.Add(session.Device == ExecutionDevice.Cuda ? "calibrated on CUDA" : "calibrated on the CPU: this ONNX Runtime has no usable CUDA provider");
        if (linkedBytes > 0)
            _notes.Add(string.Create(System.Globalization.CultureInfo.InvariantCulture,
                $"the work folder links the source's {linkedBytes / 1e9:F2} GB of weights instead of copying them (the probe wrote {session.Saved.ExternalBytes / 1e6:F1} MB)"));
        else if (session.Saved.ExternalBytes > 1_000_000_000)
            _notes.Add(string.Create(System.Globalization.CultureInfo.InvariantCulture,
                $"the probe copied {session.Saved.ExternalBytes / 1e9:F2} GB of weights into the work folder: the source's weights are inline, or its data file could not be hard-linked there (another file system); save it with external data on the output's file system to avoid the copy"));

        _stages.Add(new CalibrationStage("opening the probe", clock.Elapsed));
        var dense = new ProbeSettings(layout);
        double denseLoss = Timed("held-out loss, dense", () => Validate(dense, "held-out loss, dense")).Loss;
        var uniform = Enumerable.Repeat(_options.Sparsity, layout.Groups.Count).ToArray();
        MagnitudeHistogram[]? histograms = null;
        if (_options.Mode == SparsityMode.Threshold)
        {
            // Sparsifying q/k/v moves the distribution of o's input, gate/up that of down's, and every layer
            // that of the next ones: thresholds read off the dense model drop more than asked downstream. A
            // second pass measures each input with the first pass's thresholds applied upstream.
            histograms = Timed("magnitude histograms", () =>
            {
                var first = MeasureHistograms(dense, "magnitude histograms, dense");
                return MeasureHistograms(Selection(layout, uniform, first), "magnitude histograms, sparse upstream");
            });
        }
        var uniformSettings = Selection(layout, uniform, histograms);
        var uniformResult = Timed("held-out loss, uniform", () => Validate(uniformSettings, "held-out loss, uniform"));
        double[] allocation = uniform;
        var selection = uniformSettings;
        var chosen = uniformResult;
        var method = AllocationMethod.Uniform;
        double? greedyLoss = null;
        if (_options.Allocation == AllocationMethod.Auto)
            _notes.Add("uniform allocation: on the whole model the greedy search runs the model for every candidate of every layer; --allocation greedy runs it anyway");
        if (_options.Allocation == AllocationMethod.Greedy)
        {
            var greedyClock = Stopwatch.StartNew();
            var greedy = SearchGreedy(layout, histograms);
            var greedyHistograms = histograms;
            if (histograms is not null)
                // The search read thresholds off histograms taken with uniform thresholds upstream; measured again
                // with the greedy ones, they drop what the allocation says, so greedy and uniform compare at equal sparsity.
                greedyHistograms = MeasureHistograms(Selection(layout, greedy, histograms), "magnitude histograms, greedy upstream");
            var greedySettings = Selection(layout, greedy, greedyHistograms);
            var greedyResult = Validate(greedySettings, "held-out loss, greedy");
            greedyLoss = greedyResult.Loss;
            _stages.Add(new CalibrationStage("greedy allocation", greedyClock.Elapsed));
            if (greedyResult.Loss <= uniformResult.Loss)
            {
                (allocation, selection, chosen, method, histograms) = (greedy, greedySettings, greedyResult, AllocationMethod.Greedy, greedyHistograms);
                _notes.Add($"greedy allocation lowers the held-out loss from {uniformResult.Loss:0.0000} to {greedyResult.Loss:0.0000} nats/token");
            }
            else
                _notes.Add($"greedy allocation raised the held-out loss ({greedyResult.Loss:0.0000} against uniform's {uniformResult.Loss:0.0000} nats/token); uniform kept");
        }

        var compensated = new HashSet<ProbeGroup>();
        if (_options.Compensation != CompensationMode.Off)
            (selection, chosen) = Timed("compensation", () => Compensate(layout, selection, chosen, compensated));
        TrainingReport? training = null;
        double? trainedLoss = null;
        if (_options.Training is { } trainingOptions && _trainable)
        {
            try
            {
                var trainingClock = Stopwatch.StartNew();
                (selection, chosen, training, trainedLoss) = Train(model, workFolder, layout, selection, chosen, trainingOptions, allocation);
                _stages.Add(new CalibrationStage("training", trainingClock.Elapsed));
                if (training.Kept) foreach (var g in layout.Groups) compensated.Add(g);
            }
            catch (UnsupportedGradientException e) when (!trainingOptions.Required)
            {
                _notes.Add($"spontaneous neurons not trained, the closed-form result stands: {e.Message}");
            }
        }

        var groups = layout.Groups.Select(g => new GroupCalibration(g.Id, g.Layer, g.KindsName, g.InFeatures, g.Parameters, allocation[g.Index],
            _options.Mode == SparsityMode.Threshold ? selection.Threshold(g) : null,
            _options.Mode == SparsityMode.TopK ? SparsifyOptions.KeptEntries(allocation[g.Index], g.InFeatures) : null,
            1 - chosen.Kept[g.Index], compensated.Contains(g))).ToArray();
        double measured = groups.Sum(g => g.MeasuredSparsity * g.Parameters) / groups.Sum(g => (double)g.Parameters);
        var plan = BuildPlan(layout, groups, selection, method, training);
        clock.Stop();
        return new CalibrationResult(plan, groups, method,
            new ValidationLosses(denseLoss, uniformResult.Loss, greedyLoss, chosen.Loss, trainedLoss), measured, _notes.ToArray(), clock.Elapsed, training)
        {
            Stages = _stages.ToArray(),
        };
    }

    /// <summary>
    /// The steps of the end-to-end phase: as asked, or by default <see cref="SequentialOptions.AutoEndToEndSteps"/>
    /// where the whole-model training fits in this machine's memory (a note says why it was left out otherwise); the
    /// sequential calibrator then also holds them to <see cref="SequentialOptions.EndToEndBudget"/>.
    /// </summary>
    private int EndToEndSteps(long weightBytes, long vocabulary)
    {
        if (!_trainable || _options.Training is not { } training) return 0;
        if (_options.Sequential.EndToEndSteps is { } asked) return asked;
        long memory = GC.GetGCMemoryInfo().TotalAvailableMemoryBytes;
        long vocabularyBytes = SequentialOptions.VocabularyBytes(vocabulary, _data.SequenceLength, _data.Validation.Count, training);
        if (SequentialOptions.EndToEndFits(weightBytes, vocabularyBytes, memory)) return SequentialOptions.AutoEndToEndSteps;
        _notes.Add(string.Create(CultureInfo.InvariantCulture,
            $"no end-to-end training: training the whole model needs about {SequentialOptions.EndToEndBytes(weightBytes, vocabularyBytes) / 1e9:F1} GB ({weightBytes / 1e9:F2} GB of weights, {vocabularyBytes / 1e9:F2} GB of vocabulary-wide distributions and step tensors) and this machine has {memory / 1e9:F1} GB; --end-to-end-steps N runs it anyway"));
        return 0;
    }

    /// <summary>
    /// Whether the spontaneous neurons can be trained on this model: the backward graph is built in float32, so a
    /// float16 or bfloat16 model keeps its closed-form vectors (a note says so), or fails when training was required.
    /// </summary>
    private bool TrainingRuns(ProbeLayout layout, SpontaneousTrainingOptions training)
    {
        if (layout.Projections.FirstOrDefault(p => p.Weight.DataType != SparseOnnx.GraphRewriter.Ir.DataType.Float) is not { } half) return true;
        string problem = $"training differentiates float32 graphs, and {half.Node} computes in {half.Weight.DataType.DisplayName()}";
        if (training.Required) throw new CalibrationModelException(problem + "; use --spontaneous closed-form, or calibrate the float32 export");
        _notes.Add($"spontaneous neurons not trained, the closed-form result stands: {problem}");
        return false;
    }

    /// <summary>The sequential method (<see cref="SequentialCalibrator"/>) on the instrumented model, and its result.</summary>
    private CalibrationResult CalibrateSequentially(SparseOnnx.GraphRewriter.Ir.Model probe, ProbeLayout layout, string workFolder, long linkedBytes, Stopwatch clock)
    {
        if (_options.Device == ExecutionDevice.Auto)
            _notes.Add("the device is chosen per block session (CUDA when this ONNX Runtime has a usable provider)");
        _stages.Add(new CalibrationStage("loading and instrumenting", clock.Elapsed));
        // A model that cannot be trained (TrainingRuns said why) is calibrated by the blocks without their training stage.
        var blockOptions = _trainable ? _options : _options with { Sequential = _options.Sequential with { TrainingSteps = 0 } };
        var weights = ModelWeights.Of(probe);
        int endToEndSteps = EndToEndSteps(weights.Bytes, SequentialCalibrator.Vocabulary(probe));
        var outcome = SequentialCalibrator.Run(probe, weights, layout, _data, blockOptions, workFolder, Report, _stages, _notes, out var saved, _links,
            endToEnd: _options.Training is not null && endToEndSteps > 0, endToEndAutomatic: _options.Sequential.EndToEndSteps is null);
        if (linkedBytes > 0)
            _notes.Add(string.Create(CultureInfo.InvariantCulture,
                $"the work folder links the source's {linkedBytes / 1e9:F2} GB of weights instead of copying them (the probe wrote {saved.ExternalBytes / 1e6:F1} MB)"));
        var settings = outcome.Settings;
        double finalLoss = outcome.FinalLoss;
        var compensated = outcome.Compensated;
        var kept = outcome.Kept;
        TrainingReport? training = null;
        double? trainedLoss = null;
        // Run only where asked and, for the default steps, within the time budget the blocks' calibrator checked.
        if (outcome.EndToEnd && _options.Training is { } trainingOptions)
        {
            // The optional end-to-end phase: a few steps of the whole-model KL training, from the block-wise result.
            var endClock = Stopwatch.StartNew();
            using var session = ProbeSession.Open(probe, layout, workFolder, _options.Threads, "probe-whole.onnx", device: _options.Device,
                cudaProviderLibrary: _options.CudaProviderLibrary, externalDataLinks: _links);
            _session = session;
            try
            {
                var start = new Evaluation(finalLoss, kept);
                var (trainedSettings, result, report, loss) = Train(probe, workFolder, layout, settings, start,
                    trainingOptions with { Steps = endToEndSteps }, outcome.Allocation);
                (settings, training, trainedLoss) = (trainedSettings, report, loss);
                finalLoss = result.Loss;
                kept = result.Kept;
                if (report.Kept) compensated = layout.Groups.ToHashSet();
            }
            catch (SparseOnnx.GraphRewriter.Autodiff.UnsupportedGradientException e) when (!trainingOptions.Required)
            {
                _notes.Add($"spontaneous neurons not trained, the block-wise result stands: {e.Message}");
            }
            _stages.Add(new CalibrationStage("end-to-end training", endClock.Elapsed));
        }
        var method = outcome.Allocation.Zip(Enumerable.Repeat(_options.Sparsity, outcome.Allocation.Length)).Any(p => p.First != p.Second)
            ? AllocationMethod.Greedy : AllocationMethod.Uniform;
        var groups = layout.Groups.Select(g => new GroupCalibration(g.Id, g.Layer, g.KindsName, g.InFeatures, g.Parameters, outcome.Allocation[g.Index],
            _options.Mode == SparsityMode.Threshold ? settings.Threshold(g) : null,
            _options.Mode == SparsityMode.TopK ? SparsifyOptions.KeptEntries(outcome.Allocation[g.Index], g.InFeatures) : null,
            1 - kept[g.Index], compensated.Contains(g))).ToArray();
        double measured = groups.Sum(g => g.MeasuredSparsity * g.Parameters) / groups.Sum(g => (double)g.Parameters);
        var plan = BuildPlan(layout, groups, settings, method, training, outcome.Ran);
        _notes.Add($"calibrated block by block ({layout.Layers.Count} blocks); {compensated.Count} of {layout.Groups.Count} groups carry vectors");
        clock.Stop();
        return new CalibrationResult(plan, groups, method, new ValidationLosses(outcome.DenseLoss, outcome.UniformLoss, null, finalLoss, trainedLoss), measured,
            _notes.ToArray(), clock.Elapsed, training)
        {
            Stages = _stages.ToArray(),
            Method = CalibrationMethod.Sequential,
        };
    }

    /// <summary>Runs one stage and records how long it took.</summary>
    private T Timed<T>(string stage, Func<T> work)
    {
        var stageClock = Stopwatch.StartNew();
        T result = work();
        _stages.Add(new CalibrationStage(stage, stageClock.Elapsed));
        return result;
    }

    private sealed record Evaluation(double Loss, double[] Kept);

    /// <summary>Mean next-token NLL over the held-out windows, and the fraction each group kept there.</summary>
    private Evaluation Validate(ProbeSettings settings, string stage)
    {
        var layout = settings.Layout;
        var windows = _data.Validation;
        double nll = 0;
        long scored = 0;
        var kept = new double[layout.Groups.Count];
        var outputs = new List<string> { _session.Logits };
        outputs.AddRange(layout.Groups.Select(g => g.KeptFractionOutput));
        // A symbolic vocabulary is sized as a large one (128 K entries), so the logits always fit the budget.
        int batchSize = BatchFor(_session.Vocabulary > 0 ? _session.Vocabulary : 1 << 17);
        Report(stage, 0, windows.Count);
        _session.Run(windows, batchSize, settings, outputs, batch =>
        {
            var logits = batch.Floats(_session.Logits);
            int v = (int)batch.Shape(_session.Logits)[2];
            for (int b = 0; b < batch.Windows; b++)
            {
                var tokens = windows[batch.FirstWindow + b];
                for (int t = 0; t + 1 < batch.Length; t++)
                {
                    nll += PerplexityEvaluator.NegativeLogLikelihood(logits.Slice(((b * batch.Length) + t) * v, v), tokens[t + 1]);
                    scored++;
                }
            }
            foreach (var g in layout.Groups) kept[g.Index] += batch.Floats(g.KeptFractionOutput)[0] * batch.Windows;
        }, done => Report(stage, done, windows.Count));
        for (int i = 0; i < kept.Length; i++) kept[i] /= windows.Count;
        return new Evaluation(nll / scored, kept);
    }

    /// <summary>Histograms of every group's input magnitudes under <paramref name="settings"/>, over all calibration windows.</summary>
    private MagnitudeHistogram[] MeasureHistograms(ProbeSettings settings, string stage)
    {
        var layout = settings.Layout;
        var histograms = layout.Groups.Select(_ => new MagnitudeHistogram()).ToArray();
        var windows = _data.Calibration;
        Report(stage, 0, windows.Count);
        _session.Run(windows, BatchFor(layout.Groups.Sum(g => g.InFeatures)), settings, layout.Groups.Select(g => g.DenseOutput).ToArray(), batch =>
        {
            foreach (var g in layout.Groups) histograms[g.Index].Add(batch.Floats(g.DenseOutput));
        }, done => Report(stage, done, windows.Count));
        foreach (var g in layout.Groups.Where(g => histograms[g.Index].NaNs > 0))
            _notes.Add($"{g.Id}: {histograms[g.Index].NaNs} NaN inputs were left out of its histogram");
        return histograms;
    }

    private static float ThresholdFor(MagnitudeHistogram[] histograms, ProbeGroup group, double sparsity) =>
        histograms[group.Index].Quantile(sparsity);

    private ProbeSettings Selection(ProbeLayout layout, double[] sparsity, MagnitudeHistogram[]? histograms, ProbeSettings? basis = null)
    {
        var settings = basis?.Clone() ?? new ProbeSettings(layout);
        foreach (var g in layout.Groups) Select(settings, g, sparsity[g.Index], histograms);
        return settings;
    }

    private void Select(ProbeSettings settings, ProbeGroup g, double sparsity, MagnitudeHistogram[]? histograms)
    {
        if (_options.Mode == SparsityMode.Threshold) settings.SetThreshold(g, ThresholdFor(histograms!, g, sparsity));
        else settings.SetK(g, SparsifyOptions.KeptEntries(sparsity, g.InFeatures));
    }

    /// <summary>
    /// Greedy allocation, layer by layer: each block's search runs with the earlier blocks at their chosen
    /// allocation and the later ones dense, and scores a candidate by <see cref="CalibrationOptions.GreedyObjective"/>:
    /// the relative squared error of the block's output against the same block run dense on the same input
    /// (TEAL), or the KL divergence of the model's next-token distribution from the dense model's.
    /// </summary>
    private double[] SearchGreedy(ProbeLayout layout, MagnitudeHistogram[]? histograms)
    {
        var allocation = Enumerable.Repeat(_options.Sparsity, layout.Groups.Count).ToArray();
        var settings = new ProbeSettings(layout);
        var windows = _data.Calibration.Take(_options.GreedySamples).ToArray();
        var layers = layout.Layers;
        foreach (var g in layout.Groups.Where(g => g.Layer is null)) Select(settings, g, _options.Sparsity, histograms);
        bool logits = _options.GreedyObjective == GreedyObjective.Logits;
        // The dense model's next-token distributions: the logits objective's reference, the same for every block.
        var dense = logits ? TokenDistributions.Of(Capture(windows, new ProbeSettings(layout), _session.Logits), Vocabulary()) : default;
        for (int i = 0; i < layers.Count; i++)
        {
            int layer = layers[i];
            var block = layout.Groups.Where(g => g.Layer == layer).ToArray();
            string output = logits ? _session.Logits : layout.BlockOutputs[layer];
            string stage = $"greedy allocation, layer {layer + 1} of {layers.Count}";
            Report(stage, i, layers.Count);
            var reference = logits ? null : Capture(windows, settings, output);
            double referenceEnergy = reference?.Sum(v => (double)v * v) ?? 0;
            double Error(double[] sparsity)
            {
                var trial = settings.Clone();
                for (int j = 0; j < block.Length; j++) Select(trial, block[j], sparsity[j], histograms);
                double sum = 0;
                long offset = 0, rows = 0;
                _session.Run(windows, BatchFor(logits ? Math.Max(_session.Vocabulary, 1) : layout.Groups.Max(g => g.InFeatures)), trial, [output], batch =>
                {
                    var y = batch.Floats(output);
                    if (logits)
                    {
                        int v = (int)batch.Shape(output)[2];
                        for (int row = 0; row < y.Length / v; row++)
                        {
                            long start = offset + (long)row * v;
                            sum += TokenDistributions.KlDivergence(dense.Probabilities.AsSpan((int)start, v), dense.NegativeEntropy[start / v], y.Slice(row * v, v));
                        }
                        rows += y.Length / v;
                    }
                    else
                        for (int e = 0; e < y.Length; e++)
                        {
                            double d = y[e] - reference![offset + e];
                            sum += d * d;
                        }
                    offset += y.Length;
                });
                return logits ? sum / rows : sum / Math.Max(referenceEnergy, double.Epsilon);
            }
            var chosen = GreedyAllocator.Allocate(block.Select(g => new AllocationCandidate(g.Parameters, _options.GreedyMaxSparsity)).ToArray(),
                _options.Sparsity, _options.GreedyStep, Error, search: _options.GreedySearch);
            for (int j = 0; j < block.Length; j++)
            {
                allocation[block[j].Index] = chosen[j];
                Select(settings, block[j], chosen[j], histograms);
            }
            Report(stage, i + 1, layers.Count);
        }
        _notes.Add("greedy allocation searched: " + string.Join(", ", layout.Groups.Select(g => $"{g.Id} {allocation[g.Index]:0.###}")));
        return allocation;
    }

    private int Vocabulary() => _session.Vocabulary > 0 ? (int)_session.Vocabulary
        : throw new CalibrationModelException("the logits' vocabulary size is symbolic; the greedy logits objective needs it fixed (use --greedy-objective block)");

    /// <summary>One output over <paramref name="windows"/>, concatenated.</summary>
    private float[] Capture(IReadOnlyList<int[]> windows, ProbeSettings settings, string output) =>
        _session.Capture(windows, BatchFor(_session.Layout.Groups.Max(g => g.InFeatures)), settings, output);

    /// <summary>
    /// Closed-form compensation, layer by layer: the means of x − S(x) of layer l's groups are measured over the
    /// calibration windows with every decision for earlier layers applied; each group's vectors are then tried on
    /// the held-out windows and kept when they lower the loss (or always, in <see cref="CompensationMode.On"/>).
    /// </summary>
    private (ProbeSettings, Evaluation) Compensate(ProbeLayout layout, ProbeSettings selection, Evaluation current, HashSet<ProbeGroup> compensated)
    {
        var settings = selection.Clone();
        var byLayer = layout.Groups.GroupBy(g => g.Layer ?? int.MaxValue).OrderBy(g => g.Key).ToArray();
        for (int i = 0; i < byLayer.Length; i++)
        {
            var block = byLayer[i].ToArray();
            string stage = $"compensation, layer {(block[0].Layer is { } l ? (l + 1).ToString(CultureInfo.InvariantCulture) : "-")} of {byLayer.Length}";
            var means = block.Select(g => new ChannelMeans(g.InFeatures)).ToArray();
            var outputs = block.SelectMany(g => new[] { g.DenseOutput, g.SparseOutput }).ToArray();
            Report(stage, 0, _data.Calibration.Count);
            _session.Run(_data.Calibration, BatchFor(2 * block.Sum(g => g.InFeatures)), settings, outputs, batch =>
            {
                for (int j = 0; j < block.Length; j++) means[j].AddDifference(batch.Floats(block[j].DenseOutput), batch.Floats(block[j].SparseOutput));
            }, done => Report(stage, done, _data.Calibration.Count));
            for (int j = 0; j < block.Length; j++)
            {
                var g = block[j];
                var dropped = means[j].Means();
                var trial = settings.Clone();
                foreach (var p in g.Members) trial.SetCompensation(p, ClosedFormCompensation.Vector(p, dropped));
                if (_options.Compensation == CompensationMode.On)
                {
                    settings = trial;
                    compensated.Add(g);
                    continue;
                }
                var result = Validate(trial, stage + ", held-out check");
                if (result.Loss < current.Loss)
                {
                    settings = trial;
                    current = result;
                    compensated.Add(g);
                }
            }
        }
        if (_options.Compensation == CompensationMode.On) current = Validate(settings, "held-out loss, compensated");
        _notes.Add(_options.Compensation == CompensationMode.On
            ? $"closed-form compensation applied to all {compensated.Count} groups"
            : $"closed-form compensation kept for {compensated.Count} of {layout.Groups.Count} groups (where it lowered the held-out loss)");
        return (settings, current);
    }

    /// <summary>
    /// Trains the spontaneous neurons (<see cref="SpontaneousTrainer"/>) with the thresholds decided so far, from
    /// the closed-form vectors kept (warm start) or from zero, on the instrumented model extended by its training
    /// graph (in place: the probe sessions were opened from their saved files, so the model is not read again);
    /// keeps the result when its held-out loss is lower (or always, when so configured).
    /// </summary>
    private (ProbeSettings, Evaluation, TrainingReport, double) Train(SparseOnnx.GraphRewriter.Ir.Model probe, string workFolder, ProbeLayout layout, ProbeSettings selection,
        Evaluation current, SpontaneousTrainingOptions options, double[] allocation)
    {
        var clock = Stopwatch.StartNew();
        Report("building the training graph", 0, 1);
        ProbeSession session;
        TrainingGraph graph;
        {
            graph = TrainingGraph.Build(probe, layout, _session.Logits, options.Space);
            session = ProbeSession.Open(probe, layout, workFolder, _options.Threads, "training.onnx", memoryArena: false,
                _options.Device, _options.CudaProviderLibrary, _links);
        }
        TrainingOutcome outcome;
        using (session)
        {
            // Trained vectors move the inputs of every later projection, and with them the fraction a fixed
            // threshold drops (trained 70% plans measured 69% without this). In threshold
            // mode the trainer re-measures the thresholds with its current vectors applied at every held-out
            // check, so each checkpoint, and the result, runs at the allocated sparsity.
            Func<ProbeSettings, ProbeSettings>? rethreshold = _options.Mode == SparsityMode.Threshold
                ? vectors => Selection(layout, allocation, MeasureHistograms(vectors, "training: thresholds with the current vectors"), basis: vectors)
                : null;
            var trainer = new SpontaneousTrainer(_session, session, graph, options, _options.CaptureBudgetBytes, Report, rethreshold);
            outcome = trainer.Train(selection, _data.Calibration, _data.Validation);
        }
        var result = Validate(outcome.Settings, "held-out loss, trained spontaneous neurons");
        // Best at step 0 means nothing was learnt: the "trained" vectors are the start's, with thresholds measured
        // again (on llama-brown at 40% that alone moved the held-out loss by 0.0009 nats, and was reported as kept).
        bool keep = !options.KeepOnlyIfBetter || (result.Loss < current.Loss && outcome.BestStep > 0);
        string how = $"{options.Space.ToString().ToLowerInvariant()} space, {(options.WarmStart ? "from the closed form" : "from zero")}";
        _notes.Add(FormattableString.Invariant(
            $"spontaneous neurons trained ({how}): {outcome.Stopped}; held-out KL {outcome.InitialHeldOutKl:0.0000} -> {outcome.BestHeldOutKl:0.0000} (step {outcome.BestStep}), held-out loss {current.Loss:0.0000} -> {result.Loss:0.0000} nats/token; ")
            + (keep ? "trained vectors kept" : outcome.BestStep == 0 && options.KeepOnlyIfBetter ? "not kept (no step lowered the held-out KL)" : "not kept (no lower held-out loss)"));
        var report = new TrainingReport(keep, outcome.Steps, outcome.BestStep, outcome.InitialHeldOutKl, outcome.BestHeldOutKl, outcome.History,
            outcome.Stopped, clock.Elapsed);
        return keep ? (outcome.Settings, result, report, result.Loss) : (selection, current, report, result.Loss);
    }

    private SparsityPlan BuildPlan(ProbeLayout layout, IReadOnlyList<GroupCalibration> groups, ProbeSettings settings, AllocationMethod method,
        TrainingReport? training, CalibrationOptions? sequentialRan = null)
    {
        var entries = new List<PlanEntry>();
        foreach (var g in layout.Groups)
        {
            var decided = groups[g.Index];
            foreach (var p in g.Members)
                entries.Add(new PlanEntry
                {
                    Node = p.Node,
                    Graph = p.GraphPath,
                    Kind = p.Kind.ToShortName(),
                    Layer = p.Layer,
                    InFeatures = p.InFeatures,
                    OutFeatures = p.OutFeatures,
                    K = decided.K,
                    Threshold = decided.Threshold,
                    Spontaneous = settings.Compensation(p),
                });
        }
        string source = string.Create(CultureInfo.InvariantCulture,
            $"{_data.Source}; {(_options.Mode == SparsityMode.Threshold ? "threshold" : "topk")} sparsity {_options.Sparsity}, " +
            $"{method.ToString().ToLowerInvariant()} allocation{(_options.Allocation == AllocationMethod.Greedy && method != AllocationMethod.Greedy ? " (greedy lost on held-out data)" : "")}, " +
            $"compensation {_options.Compensation.ToString().ToLowerInvariant()} (closed form)") +
            (training is null ? "" : training.Kept
                ? $", spontaneous neurons trained by KL to the dense model ({_options.Training!.Space.ToString().ToLowerInvariant()} space, " +
                  $"{(_options.Training.WarmStart ? "warm start" : "from zero")}, the vectors of step {training.BestStep} of {training.Steps})"
                : ", trained spontaneous neurons not kept (no held-out gain)");
        if (sequentialRan is not null)
            source = FormattableString.Invariant(
                $"{_data.Source}; {(_options.Mode == SparsityMode.Threshold ? "threshold" : "topk")} sparsity {_options.Sparsity}, calibrated block by block: ") +
                FormattableString.Invariant($"{method.ToString().ToLowerInvariant()} allocation, compensation {sequentialRan.Compensation.ToString().ToLowerInvariant()} (closed form)") +
                (_options.Training is not null && _options.Sequential.TrainingSteps > 0
                    ? FormattableString.Invariant($", spontaneous neurons trained against each dense block's output ({_options.Training.Space.ToString().ToLowerInvariant()} space, up to {_options.Sequential.TrainingSteps} steps, kept where they lower the block's error)")
                    : "") +
                (training is null ? "" : training.Kept
                    ? FormattableString.Invariant($", then trained end to end by KL to the dense model (the vectors of step {training.BestStep} of {training.Steps})")
                    : ", end-to-end trained vectors not kept (no held-out gain)");
        return new SparsityPlan(entries, source);
    }

    /// <summary>Windows per batch so that one batch's captured outputs stay within the budget.</summary>
    private int BatchFor(long floatsPerToken)
    {
        long perWindow = Math.Max(1, floatsPerToken) * _data.SequenceLength * sizeof(float);
        return (int)Math.Clamp(_options.CaptureBudgetBytes / perWindow, 1, 64);
    }

    private void Report(string stage, double done, double total) => _progress?.Report(new CalibrationProgress(stage, done, total));
}
