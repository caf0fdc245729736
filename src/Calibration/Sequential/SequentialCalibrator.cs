using System.Diagnostics;
using System.Globalization;
using SparseOnnx.Calibration.Capture;
using SparseOnnx.Calibration.Data;
using SparseOnnx.GraphRewriter.IO;
using SparseOnnx.GraphRewriter.Ir;
using SparseOnnx.GraphRewriter.Sparsify;
using SparseOnnx.Runtime.Evaluation;

namespace SparseOnnx.Calibration.Sequential;

/// <summary>
/// Sequential calibration, the method GPTQ, SparseGPT and Wanda use to calibrate 70B models on one GPU. The
/// probe is cut into its embedding, one model per decoder block (the residual stream before it to the one after
/// it, by <see cref="GraphCut"/>) and its head. The calibration and held-out windows go through the embedding
/// once; then, block after block:
/// <list type="number">
/// <item>targets: the dense block's output on the block's input (which carries every earlier decision), with the
/// histograms of its group inputs taken on the way;</item>
/// <item>the stages, in this order: <see cref="BlockThresholds"/>, <see cref="BlockAllocation"/> (greedy only),
/// <see cref="BlockCompensation"/>, <see cref="BlockTraining"/>, each judged by the block's output error against
/// the target;</item>
/// <item>propagation: the block with its decisions runs on its input, and that output is the next block's input.</item>
/// </list>
/// The held-out windows also go through the dense blocks and the plain uniform ones, and the head turns the three
/// streams into the dense, uniform and final held-out losses. Each forward pass runs one block, so a candidate
/// costs a block, not the model, and the whole calibration is a few dozen block passes per block: linear in
/// the depth where the full method's greedy search is quadratic. Memory: one block's session and the residual
/// streams (<see cref="SequentialOptions.HiddenStateBudgetBytes"/>, then files in the work folder).
/// </summary>
internal sealed class SequentialCalibrator
{
    private static readonly IBlockStage[] Stages = [new BlockThresholds(), new BlockAllocation(), new BlockCompensation(), new BlockTraining()];

    private CalibrationOptions _options;  // as asked, then as run (ResolveAllocation)
    private readonly CalibrationSet _data;
    private readonly ProbeLayout _layout;
    private readonly string _probePath;
    private readonly string _workFolder;
    private readonly string _logits;
    private readonly Action<string, double, double> _report;
    private readonly List<CalibrationStage> _stages;
    private readonly List<string> _notes;
    private readonly Dictionary<string, TimeSpan> _stageTotals = new();
    private bool _trainingUnsupported;
    private readonly Dictionary<string, HiddenStates> _spares = new();
    private readonly bool _tailObjective;
    private bool _endToEnd;  // an end-to-end phase follows: as the caller decided, then within its time budget (EndToEndMayFit)
    private readonly bool _endToEndAutomatic;
    private readonly long _vocabulary;
    private readonly ModelWeights _weights;

    private SequentialCalibrator(CalibrationOptions options, CalibrationSet data, ProbeLayout layout, string probePath, string workFolder, string logits,
        Action<string, double, double> report, List<CalibrationStage> stages, List<string> notes, bool tailObjective, bool endToEnd, bool endToEndAutomatic,
        long vocabulary, ModelWeights weights)
    {
        _endToEndAutomatic = endToEndAutomatic;
        _vocabulary = vocabulary;
        _weights = weights;
        _tailObjective = tailObjective;
        _endToEnd = endToEnd;
        _logits = logits;
        _options = options;
        _data = data;
        _layout = layout;
        _probePath = probePath;
        _workFolder = workFolder;
        _report = report;
        _stages = stages;
        _notes = notes;
    }

    /// <summary>Why <paramref name="layout"/>'s blocks cannot be cut one by one, or null when they can.</summary>
    public static string? Problem(ProbeLayout layout)
    {
        if (layout.Groups.FirstOrDefault(g => g.Layer is null) is { } loose) return $"projection group {loose.Id} has no layer";
        if (layout.BlockOutputProblem is { } problem) return problem;
        var layers = layout.Layers;
        foreach (int layer in layers)
        {
            if (!layout.BlockInputs.ContainsKey(layer)) return $"the residual stream entering layer {layer} was not found (no attention output projection feeding a residual Add)";
            if (!layout.BlockOutputs.ContainsKey(layer)) return $"layer {layer} has no block output";
        }
        for (int i = 1; i < layers.Count; i++)
            if (layout.BlockInputs[layers[i]] != layout.BlockOutputs[layers[i - 1]])
                return $"layer {layers[i]} does not read layer {layers[i - 1]}'s output as its residual stream";
        return null;
    }

    /// <summary>
    /// What the run decided: the final settings, the allocation, the compensated groups, the held-out losses and kept
    /// fractions, the options as the blocks ran them (the allocation and compensation that <see cref="AllocationMethod.Auto"/> chose),
    /// and whether the end-to-end phase is to run (false where it was not asked for or its estimate exceeded its budget).
    /// </summary>
    public sealed record Outcome(ProbeSettings Settings, double[] Allocation, HashSet<ProbeGroup> Compensated, double DenseLoss, double UniformLoss,
        double FinalLoss, double[] Kept, CalibrationOptions Ran, bool EndToEnd);

    /// <summary>
    /// Calibrates the instrumented <paramref name="probe"/> (layout <paramref name="layout"/>, for which <see cref="Problem"/>
    /// is null, weights <paramref name="weights"/>): saves it as <c>probe.onnx</c> in <paramref name="workFolder"/> and runs
    /// its parts from there. <paramref name="endToEnd"/> says whether an end-to-end phase will train the vectors after the blocks;
    /// where its steps are <paramref name="endToEndAutomatic"/>, it runs only within its time budget (<see cref="Outcome.EndToEnd"/> says).
    /// </summary>
    public static Outcome Run(Model probe, ModelWeights weights, ProbeLayout layout, CalibrationSet data, CalibrationOptions options, string workFolder,
        Action<string, double, double> report, List<CalibrationStage> stages, List<string> notes, out SaveResult saved,
        IReadOnlyDictionary<string, string>? externalDataLinks = null, bool endToEnd = false, bool endToEndAutomatic = false)
    {
        string logits = probe.Graph.Outputs.Select(o => o.Name).FirstOrDefault(n => n == "logits")
            ?? throw new CalibrationModelException("it has no output named 'logits'");
        string probePath = Path.Combine(workFolder, "probe.onnx");
        saved = ModelSaver.Save(probe, probePath, ProbeSession.SaveOptionsFor(externalDataLinks));
        long vocabulary = Vocabulary(probe);
        return new SequentialCalibrator(options, data, layout, probePath, workFolder, logits, report, stages, notes,
            TailObjectiveRuns(weights.Bytes, vocabulary, data, options, notes), endToEnd, endToEndAutomatic, vocabulary, weights).Calibrate();
    }

    /// <summary>The size of <paramref name="probe"/>'s logits' last axis (its output named "logits"), or 0 where it is not fixed in the graph.</summary>
    public static long Vocabulary(Model probe) =>
        probe.Graph.Outputs.FirstOrDefault(o => o.Name == "logits")?.Type is TensorType { Shape: { Dims.Length: 3 } shape } && shape.Dims[2].Value is { } v ? v : 0;

    /// <summary>
    /// Whether greedy allocation searches with the logits objective (<see cref="TailObjective"/>): asked for (the default
    /// objective, and always with <see cref="AllocationMethod.Auto"/>) and its tail sessions and dense reference fit in
    /// this machine's memory; otherwise the block objective, or uniform allocation for Auto, with a note saying why.
    /// </summary>
    private static bool TailObjectiveRuns(long weightBytes, long vocabulary, CalibrationSet data, CalibrationOptions options, List<string> notes)
    {
        bool auto = options.Allocation == AllocationMethod.Auto;
        if (!auto && (options.Allocation != AllocationMethod.Greedy || options.GreedyObjective != GreedyObjective.Logits)) return false;
        long reference = TailObjective.ReferenceBytes(Math.Min(options.GreedySamples, data.Calibration.Count), data.SequenceLength, vocabulary);
        long memory = GC.GetGCMemoryInfo().TotalAvailableMemoryBytes;
        if (vocabulary > 0 && TailObjective.Fits(weightBytes, reference, memory)) return true;
        string outcome = auto ? "uniform allocation" : "greedy allocation judged by each block's output error";
        notes.Add(vocabulary == 0
            ? $"{outcome}: the logits' vocabulary size is not fixed in the graph"
            : string.Create(CultureInfo.InvariantCulture,
                $"{outcome}: the greedy search's logits objective runs the rest of the model for every candidate and needs about {(2 * weightBytes + reference + (1L << 30)) / 1e9:F1} GB, this machine has {memory / 1e9:F1} GB"));
        return false;
    }

    private Outcome Calibrate()
    {
        var layers = _layout.Layers;
        var settings = new ProbeSettings(_layout);
        var uniform = settings.Clone();     // the block's thresholds (or k) at the target, no vectors
        var plainPlan = settings.Clone();   // every block's: the plan without vectors that the uniform stream runs
        var plainKept = new double[_layout.Groups.Count];
        var allocatedPlan = settings.Clone();
        var allocatedKept = new double[_layout.Groups.Count];
        var allocation = Enumerable.Repeat(_options.Sparsity, _layout.Groups.Count).ToArray();
        var compensated = new HashSet<ProbeGroup>();
        var kept = new double[_layout.Groups.Count];
        long budget = _options.Sequential.HiddenStateBudgetBytes / 8;  // up to eight streams are alive at once

        var clock = Stopwatch.StartNew();
        HiddenStates calibration, heldOut, heldOutDense, heldOutUniform;
        HiddenStates? heldOutAllocated = null;
        HiddenStates? calibrationTarget = null, heldOutTarget = null, calibrationDense = null;
        bool denseModel = _options.Sequential.Target == BlockTarget.DenseModel;
        using (var embedding = ProbeCut.Open(_probePath, _layout, null, [_layout.BlockInputs[layers[0]]], "embedding.onnx",
            _options.Threads, _options.Device, _options.CudaProviderLibrary))
        {
            calibration = Embed(embedding, _data.Calibration, budget, "calibration");
            heldOut = Embed(embedding, _data.Validation, budget, "held-out");
            heldOutDense = Copy(heldOut, budget, "held-out-dense");
            heldOutUniform = Copy(heldOut, budget, "held-out-uniform");
        }
        _stages.Add(new CalibrationStage("embedding", clock.Elapsed));
        if (_endToEnd && _endToEndAutomatic && _options.Training is not null) _endToEnd = EndToEndMayFit(calibration);
        TailObjective? tailObjective = null;
        if (_tailObjective && SearchMayFit(calibration))
        {
            var referenceClock = Stopwatch.StartNew();
            tailObjective = TailObjective.Measure(_probePath, _layout, _logits, _data.Calibration, _options, _report);
            _stages.Add(new CalibrationStage("dense logits for the greedy search", referenceClock.Elapsed));
        }
        tailObjective = ResolveAllocation(tailObjective);
        // With greedy allocation, the chosen allocation without vectors is a third candidate, run on a stream of its own.
        bool searched = _options.Allocation == AllocationMethod.Greedy;
        if (searched) heldOutAllocated = Copy(heldOut, budget, "held-out-allocated");
        try
        {
            calibrationTarget = HiddenStates.Create(Math.Min(_options.Sequential.TargetWindows, calibration.Windows), calibration.Length, calibration.Hidden,
                budget, _workFolder, "target-calibration.bin");
            heldOutTarget = HiddenStates.Create(heldOut.Windows, heldOut.Length, heldOut.Hidden, budget, _workFolder, "target-held-out.bin");
            if (denseModel) calibrationDense = Copy(calibration, budget, "calibration-dense", calibrationTarget.Windows);
            var blocksClock = Stopwatch.StartNew();
            for (int position = 0; position < layers.Count; position++)
            {
                var blockClock = Stopwatch.StartNew();
                int layer = layers[position];
                string eta = position == 0 ? "" : string.Create(CultureInfo.InvariantCulture,
                    $" (about {Minutes(blocksClock.Elapsed.TotalSeconds / position * (layers.Count - position))} left)");
                _report($"block {position + 1} of {layers.Count}{eta}", position, layers.Count);
                var groups = _layout.Groups.Where(g => g.Layer == layer).ToArray();
                string output = _layout.BlockOutputs[layer];
                var outputs = new List<string> { output };
                outputs.AddRange(groups.SelectMany(g => new[] { g.DenseOutput, g.SparseOutput, g.KeptFractionOutput }));
                using var cut = ProbeCut.Open(_probePath, _layout, _layout.BlockInputs[layer], outputs, "block.onnx",
                    _options.Threads, _options.Device, _options.CudaProviderLibrary);
                var stageClock = Stopwatch.StartNew();
                var block = new BlockContext(layer, position, layers.Count, cut, output, groups, _data, calibration, heldOut, calibrationTarget, heldOutTarget,
                    settings, allocation, _options, _options.Sequential, _report, _notes);
                Targets(block, calibrationDense, heldOutDense);
                Count("targets", stageClock);
                // The rest of the model after this block, for the greedy search's logits objective.
                using var tail = tailObjective?.OpenTail(block);
                if (tail is not null) block.LogitsDivergence = candidate => tailObjective!.Divergence(block, tail, candidate);
                foreach (var stage in Stages)
                {
                    if (!stage.Enabled(block) || (stage is BlockTraining && _trainingUnsupported)) continue;
                    try
                    {
                        stage.Run(block);
                    }
                    catch (SparseOnnx.GraphRewriter.Autodiff.UnsupportedGradientException e) when (stage is BlockTraining && !_options.Training!.Required)
                    {
                        _trainingUnsupported = true;
                        _notes.Add($"spontaneous neurons not trained, the closed-form result stands: {e.Message}");
                    }
                    if (stage is BlockThresholds) uniform = block.Settings.Clone();
                    Count(stage.Name, stageClock);
                }
                settings = block.Settings;
                foreach (var g in block.Compensated) compensated.Add(g);

                // The next block's inputs: this block with its decisions on the calibration and held-out streams,
                // dense on the dense stream, uniform without vectors on the uniform one.
                calibration = Propagate(cut, output, groups, _data.Calibration, calibration, settings, budget, "calibration", null);
                heldOut = Propagate(cut, output, groups, _data.Validation, heldOut, settings, budget, "held-out", kept);
                if (denseModel)
                {
                    // The dense model's next hidden states are this block's targets: the buffers swap.
                    (heldOutDense, heldOutTarget) = (heldOutTarget, heldOutDense);
                    (calibrationDense, calibrationTarget) = (calibrationTarget, calibrationDense);
                }
                else
                    heldOutDense = Propagate(cut, output, groups, _data.Validation, heldOutDense, new ProbeSettings(_layout), budget, "held-out-dense", null);
                heldOutUniform = Propagate(cut, output, groups, _data.Validation, heldOutUniform, uniform, budget, "held-out-uniform", plainKept);
                foreach (var g in groups)
                {
                    plainPlan.CopySelection(g, uniform);
                    allocatedPlan.CopySelection(g, settings);
                }
                if (heldOutAllocated is not null)
                    heldOutAllocated = Propagate(cut, output, groups, _data.Validation, heldOutAllocated, allocatedPlan, budget, "held-out-allocated", allocatedKept);
                Count("propagation", stageClock);
                _stages.Add(new CalibrationStage($"block {position + 1} of {layers.Count} (layer {layer})", blockClock.Elapsed));
            }
            foreach (var (name, elapsed) in _stageTotals) _stages.Add(new CalibrationStage($"blocks: {name}", elapsed));

            var headClock = Stopwatch.StartNew();
            double dense, plain, final, allocated = double.NaN;
            double[] plainWindows, finalWindows, allocatedWindows = [];
            using (var head = ProbeCut.Open(_probePath, _layout, _layout.BlockOutputs[layers[^1]], [_logits], "head.onnx",
                _options.Threads, _options.Device, _options.CudaProviderLibrary, memoryArena: false, prepack: false))
            {
                (dense, _) = Loss(head, heldOutDense, "held-out loss, dense");
                (plain, plainWindows) = Loss(head, heldOutUniform, "held-out loss, uniform");
                (final, finalWindows) = Loss(head, heldOut, "held-out loss, calibrated");
                if (heldOutAllocated is not null) (allocated, allocatedWindows) = Loss(head, heldOutAllocated, "held-out loss, allocation without vectors");
            }
            _stages.Add(new CalibrationStage("held-out losses", headClock.Elapsed));
            for (int i = 0; i < kept.Length; i++)
            {
                kept[i] /= _data.Validation.Count;
                plainKept[i] /= _data.Validation.Count;
                allocatedKept[i] /= _data.Validation.Count;
            }
            // Only where vectors are kept by measurement: --compensation on and --train-keep always ask for them regardless.
            bool checkedKeep = _options.Compensation != CompensationMode.On && _options.Training?.KeepOnlyIfBetter != false;
            // Without vectors, the searched allocation stands where it beats uniform on the held-out loss (as the full method keeps greedy).
            bool allocationHelps = searched && allocated < plain;
            double withoutVectors = allocationHelps ? allocated : plain;
            if (searched)
                _notes.Add(allocationHelps
                    ? FormattableString.Invariant($"the block-wise greedy allocation lowers the held-out loss without vectors from {plain:0.0000} to {allocated:0.0000} nats/token")
                    : FormattableString.Invariant($"the block-wise greedy allocation raised the held-out loss without vectors ({allocated:0.0000} against uniform's {plain:0.0000} nats/token); uniform kept"));
            if (checkedKeep && compensated.Count > 0 && !ClearlyLower(finalWindows, allocationHelps ? allocatedWindows : plainWindows))
            {
                // Each block's vectors lowered its own output error, but not clearly the model's held-out loss: the
                // plan without them is one a stream ran (uniform, or the searched allocation), so its loss is measured.
                _notes.Add(final > withoutVectors
                    ? FormattableString.Invariant($"the block-wise vectors raised the held-out loss ({final:0.0000} against {withoutVectors:0.0000} nats/token without them); the plan keeps the thresholds without vectors")
                    : FormattableString.Invariant($"the block-wise vectors lowered the held-out loss by less than two standard errors ({final:0.0000} against {withoutVectors:0.0000} nats/token without them); the plan keeps the thresholds without vectors"));
                return allocationHelps
                    ? new Outcome(allocatedPlan, allocation, [], dense, plain, allocated, allocatedKept, _options, _endToEnd)
                    : new Outcome(plainPlan, Enumerable.Repeat(_options.Sparsity, allocation.Length).ToArray(), [], dense, plain, plain, plainKept, _options, _endToEnd);
            }
            if (searched && compensated.Count == 0 && !allocationHelps)
                return new Outcome(plainPlan, Enumerable.Repeat(_options.Sparsity, allocation.Length).ToArray(), [], dense, plain, plain, plainKept, _options, _endToEnd);
            return new Outcome(settings, allocation, compensated, dense, plain, final, kept, _options, _endToEnd);
        }
        finally
        {
            calibration.Dispose();
            heldOut.Dispose();
            heldOutDense.Dispose();
            heldOutUniform.Dispose();
            heldOutAllocated?.Dispose();
            calibrationTarget?.Dispose();
            heldOutTarget?.Dispose();
            calibrationDense?.Dispose();
            foreach (var spare in _spares.Values) spare.Dispose();
        }
    }

    /// <summary>
    /// Whether the search may fit <see cref="CalibrationOptions.GreedyBudget"/> (always, unless the allocation is
    /// <see cref="AllocationMethod.Auto"/>), judged from <see cref="FirstBlockPass"/> before the whole model runs once for
    /// its reference: that pass maps every weight (a 6 GB model's 6 GB of resident pages) and takes minutes on a large
    /// model on a CPU.
    /// </summary>
    private bool SearchMayFit(HiddenStates calibration)
    {
        if (_options.Allocation != AllocationMethod.Auto) return true;
        var pass = FirstBlockPass(calibration);
        var estimate = TailObjective.EstimatedSearch(pass.Model, TimeSpan.Zero, _layout, _options);
        if (estimate <= _options.GreedyBudget) return true;
        NoteSearchOverBudget(estimate, pass.Basis);
        return false;
    }

    /// <summary>The first block's dense pass over <see cref="Windows"/> windows, and the whole model's it stands for (<see cref="FirstBlockPass"/>).</summary>
    private sealed record DensePassEstimate(TimeSpan Block, TimeSpan Model, int Windows, long BlockParameters, long ModelParameters)
    {
        public string Basis => string.Create(CultureInfo.InvariantCulture,
            $"the first block took {Block.TotalSeconds:0.00} s over {Windows} windows, {BlockParameters / 1e6:0.#} M of the model's {ModelParameters / 1e6:0.#} M weights");
    }

    private DensePassEstimate? _firstBlockPass;

    /// <summary>
    /// The whole model's dense pass over the search windows, estimated from the first block's (timed once, before any
    /// pass of the whole model) scaled by the model's weights over the block's (pessimistic where the embedding table is
    /// not also the head, as it costs no multiplications): what the greedy search's and the end-to-end phase's cost
    /// gates are judged from.
    /// </summary>
    private DensePassEstimate FirstBlockPass(HiddenStates calibration)
    {
        if (_firstBlockPass is not null) return _firstBlockPass;
        int layer = _layout.Layers[0];
        var groups = _layout.Groups.Where(g => g.Layer == layer).ToArray();
        long blockParameters = groups.Sum(g => g.Parameters);
        int windows = Math.Min(_options.GreedySamples, _data.Calibration.Count);
        var stageClock = Stopwatch.StartNew();
        _report("cost estimates: the first block's dense pass", 0, 1);
        var clock = new Stopwatch();
        using (var cut = ProbeCut.Open(_probePath, _layout, _layout.BlockInputs[layer], [_layout.BlockOutputs[layer]], "block-timing.onnx",
            _options.Threads, _options.Device, _options.CudaProviderLibrary, prepack: false))
        {
            clock.Start();
            cut.Run(_data.Calibration, calibration, BlockBatch(_options, _data.SequenceLength, groups, calibration.Hidden), new ProbeSettings(_layout),
                [_layout.BlockOutputs[layer]], _ => { }, count: windows);
            clock.Stop();
        }
        _stages.Add(new CalibrationStage("cost estimates", stageClock.Elapsed));
        var model = clock.Elapsed * ((double)_weights.Parameters / Math.Max(blockParameters, 1));
        return _firstBlockPass = new DensePassEstimate(clock.Elapsed, model, windows, blockParameters, _weights.Parameters);
    }

    /// <summary>
    /// Whether the default end-to-end phase (its steps not given) is estimated within
    /// <see cref="SequentialOptions.EndToEndBudget"/> (<see cref="SequentialOptions.EndToEndEstimate"/> from
    /// <see cref="FirstBlockPass"/>); decided before the blocks, as the phase also settles whether they keep the
    /// block-wise closed form (<see cref="ResolveAllocation"/>). A note says why it was left out.
    /// </summary>
    private bool EndToEndMayFit(HiddenStates calibration)
    {
        var pass = FirstBlockPass(calibration);
        var training = _options.Training!;
        bool cached = Training.SpontaneousTrainer.ReferencesCached(_vocabulary, _data.SequenceLength, _data.Calibration.Count, _options.CaptureBudgetBytes);
        var estimate = SequentialOptions.EndToEndEstimate(pass.Model / pass.Windows, SequentialOptions.AutoEndToEndSteps, training,
            _data.Calibration.Count, _data.Validation.Count, cached, rethreshold: _options.Mode == SparsityMode.Threshold);
        if (estimate <= _options.Sequential.EndToEndBudget)
        {
            _notes.Add(string.Create(CultureInfo.InvariantCulture,
                $"end-to-end training: its {SequentialOptions.AutoEndToEndSteps} steps were estimated at about {Minutes(estimate.TotalSeconds)} ({pass.Basis}), within its budget of {Minutes(_options.Sequential.EndToEndBudget.TotalSeconds)}"));
            return true;
        }
        _notes.Add(string.Create(CultureInfo.InvariantCulture,
            $"no end-to-end training: its {SequentialOptions.AutoEndToEndSteps} steps would take about {Minutes(estimate.TotalSeconds)} here ({pass.Basis}), over its budget of {Minutes(_options.Sequential.EndToEndBudget.TotalSeconds)}; --end-to-end-steps N runs it anyway"));
        return false;
    }

    /// <summary>
    /// Settles <see cref="AllocationMethod.Auto"/> (greedy with the logits objective where <paramref name="tail"/> was
    /// measured and the search's estimate is within <see cref="CalibrationOptions.GreedyBudget"/>, uniform otherwise)
    /// and, with a greedy search and an end-to-end phase to follow, leaves the block-wise closed form out of
    /// <see cref="CompensationMode.Auto"/>: its vectors would ride on the stream the later blocks search on, whose
    /// thresholds then do not fit the plan without them (on llama-brown at 70% the allocation raised the held-out loss
    /// and was dropped), and the end-to-end training recovers what they would. Returns the objective the search uses.
    /// </summary>
    private TailObjective? ResolveAllocation(TailObjective? tail)
    {
        var allocation = _options.Allocation;
        if (allocation == AllocationMethod.Auto)
        {
            allocation = AllocationMethod.Uniform;
            if (tail is not null)
            {
                var estimate = TailObjective.EstimatedSearch(tail.DensePass, tail.DivergenceCost, _layout, _options);
                if (estimate <= _options.GreedyBudget)
                {
                    allocation = AllocationMethod.Greedy;
                    _notes.Add(string.Create(CultureInfo.InvariantCulture,
                        $"greedy allocation: the search was estimated at about {Minutes(estimate.TotalSeconds)} (a dense pass over its windows took {tail.DensePass.TotalSeconds:0.00} s), within its budget of {Minutes(_options.GreedyBudget.TotalSeconds)}"));
                }
                else
                {
                    NoteSearchOverBudget(estimate, string.Create(CultureInfo.InvariantCulture, $"a dense pass over its windows took {tail.DensePass.TotalSeconds:0.0} s"));
                    tail = null;
                }
            }
        }
        var compensation = _options.Compensation;
        if (allocation == AllocationMethod.Greedy && _endToEnd && compensation == CompensationMode.Auto)
        {
            compensation = CompensationMode.Off;
            _notes.Add("no block-wise closed form: the greedy search runs on the blocks' streams without vectors, and the end-to-end phase trains them");
        }
        _options = _options with { Allocation = allocation, Compensation = compensation };
        return tail;
    }

    /// <summary>The note of an <see cref="AllocationMethod.Auto"/> run that falls back to uniform on time, with what the estimate rests on.</summary>
    private void NoteSearchOverBudget(TimeSpan estimate, string basis) => _notes.Add(string.Create(CultureInfo.InvariantCulture,
        $"uniform allocation: the greedy search would take about {Minutes(estimate.TotalSeconds)} here ({basis}), over its budget of {Minutes(_options.GreedyBudget.TotalSeconds)}; --allocation greedy runs it anyway"));

    private void Count(string stage, Stopwatch clock)
    {
        _stageTotals[stage] = _stageTotals.GetValueOrDefault(stage) + clock.Elapsed;
        clock.Restart();
    }

    private static string Minutes(double seconds) => seconds < 90
        ? string.Create(CultureInfo.InvariantCulture, $"{seconds:0} s")
        : string.Create(CultureInfo.InvariantCulture, $"{seconds / 60:0.0} min");

    /// <summary>
    /// Windows per batch of a block pass: its requested outputs (<paramref name="floatsPerToken"/> per token) plus what
    /// the block holds while it runs, about eight tensors as wide as its widest projection input (the MLP's
    /// activations, the probe's magnitudes, top-k indices and masks), within the capture budget. Sized by the
    /// outputs alone, a 1B block ran 64 windows at once and peaked at 3.4 GB.
    /// </summary>
    internal static int BlockBatch(CalibrationOptions options, int length, IReadOnlyList<ProbeGroup> groups, long floatsPerToken)
    {
        long working = 8 * groups.Max(g => g.InFeatures);
        long perWindow = (Math.Max(1, floatsPerToken) + working) * length * sizeof(float);
        return (int)Math.Clamp(options.CaptureBudgetBytes / perWindow, 1, 64);
    }

    private int BlockBatch(BlockContext block, long floatsPerToken) => BlockBatch(_options, _data.SequenceLength, block.Groups, floatsPerToken);

    private int BatchFor(long floatsPerToken)
    {
        long perWindow = Math.Max(1, floatsPerToken) * _data.SequenceLength * sizeof(float);
        return (int)Math.Clamp(_options.CaptureBudgetBytes / perWindow, 1, 64);
    }

    private HiddenStates Embed(ProbeCut embedding, IReadOnlyList<int[]> windows, long budget, string name)
    {
        string output = embedding.Outputs[0];
        HiddenStates? states = null;
        try
        {
            _report($"embedding the {name} windows", 0, windows.Count);
            embedding.Run(windows, null, BatchFor(8192), new ProbeSettings(_layout), [output], batch =>
            {
                var shape = batch.Shape(output);
                if (shape.Length != 3) throw new CalibrationModelException($"the residual stream '{output}' has rank {shape.Length}, not [batch, length, hidden]");
                states ??= HiddenStates.Create(windows.Count, batch.Length, (int)shape[2], budget, _workFolder, $"{name}-0.bin");
                states.WriteBatch(batch.FirstWindow, batch.Floats(output));
            }, progress: done => _report($"embedding the {name} windows", done, windows.Count));
            return states!;
        }
        catch
        {
            states?.Dispose();
            throw;
        }
    }

    private HiddenStates Copy(HiddenStates source, long budget, string name, int windows = -1)
    {
        if (windows < 0) windows = source.Windows;
        var copy = HiddenStates.Create(windows, source.Length, source.Hidden, budget, _workFolder, $"{name}-0.bin");
        var buffer = new float[source.FloatsPerWindow];
        for (int w = 0; w < windows; w++)
        {
            source.Read(w, buffer);
            copy.Write(w, buffer);
        }
        return copy;
    }

    /// <summary>The dense block's output on the block's inputs (the targets), with the dense histograms of its groups in threshold mode.</summary>
    private void Targets(BlockContext block, HiddenStates? calibrationDense, HiddenStates heldOutDense)
    {
        var dense = new ProbeSettings(_layout);
        bool histograms = _options.Mode == SparsityMode.Threshold;
        var measured = block.Groups.Select(_ => new Statistics.MagnitudeHistogram()).ToArray();
        bool denseModel = calibrationDense is not null;
        var outputs = new List<string> { block.Output };
        if (histograms) outputs.AddRange(block.Groups.Select(g => g.DenseOutput));
        string stage = $"{block.Name}: dense targets";
        var targets = block.CalibrationTarget;
        // Dense-block targets come from the calibration stream itself (its first windows), with the dense histograms
        // (threshold mode: every window) on the way; dense-model targets from the dense streams.
        int windows = histograms ? _data.Calibration.Count : denseModel ? 0 : targets.Windows;
        _report(stage, 0, windows + targets.Windows);
        if (windows > 0)
            block.Cut.Run(_data.Calibration, block.Calibration, BlockBatch(block, block.Calibration.Hidden + (histograms ? block.Groups.Sum(g => g.InFeatures) : 0)), dense, outputs, batch =>
            {
                var y = batch.Floats(block.Output);
                int stored = denseModel ? 0 : Math.Clamp(targets.Windows - batch.FirstWindow, 0, batch.Windows);
                if (stored > 0) targets.WriteBatch(batch.FirstWindow, y[..(stored * targets.FloatsPerWindow)]);
                if (histograms) for (int i = 0; i < block.Groups.Count; i++) measured[i].Add(batch.Floats(block.Groups[i].DenseOutput));
            }, count: windows, progress: done => _report(stage, done, windows + targets.Windows));
        if (denseModel)
            block.Cut.Run(_data.Calibration.Take(targets.Windows).ToArray(), calibrationDense, BlockBatch(block, block.Calibration.Hidden), dense, [block.Output],
                batch => targets.WriteBatch(batch.FirstWindow, batch.Floats(block.Output)));
        block.Cut.Run(_data.Validation, denseModel ? heldOutDense : block.HeldOut, BlockBatch(block, block.HeldOut.Hidden), dense, [block.Output],
            batch => block.HeldOutTarget.WriteBatch(batch.FirstWindow, batch.Floats(block.Output)));
        if (histograms) block.DenseHistograms = measured;
        foreach (var (g, h) in block.Groups.Zip(measured).Where(p => p.Second.NaNs > 0))
            _notes.Add($"{g.Id}: {h.NaNs} NaN inputs were left out of its histogram");
    }

    /// <summary>The block under <paramref name="settings"/> on <paramref name="input"/> (disposed), as a new stream.</summary>
    private HiddenStates Propagate(ProbeCut cut, string output, IReadOnlyList<ProbeGroup> groups, IReadOnlyList<int[]> windows, HiddenStates input,
        ProbeSettings settings, long budget, string name, double[]? kept)
    {
        // The stream's previous buffer is reused: fresh ones per block were garbage the GC let pile up.
        var next = _spares.Remove(name, out var spare) ? spare
            : HiddenStates.Create(input.Windows, input.Length, input.Hidden, budget, _workFolder, $"{name}-{Guid.NewGuid():N}.bin");
        try
        {
            var outputs = new List<string> { output };
            if (kept is not null) outputs.AddRange(groups.Select(g => g.KeptFractionOutput));
            cut.Run(windows, input, BlockBatch(_options, _data.SequenceLength, groups, input.Hidden), settings, outputs, batch =>
            {
                next.WriteBatch(batch.FirstWindow, batch.Floats(output));
                if (kept is not null)
                    foreach (var g in groups) kept[g.Index] += batch.Floats(g.KeptFractionOutput)[0] * batch.Windows;
            });
        }
        catch
        {
            next.Dispose();
            throw;
        }
        _spares[name] = input;
        return next;
    }

    /// <summary>
    /// Whether the per-window losses <paramref name="candidate"/> are lower than <paramref name="baseline"/> (the same
    /// windows) by at least two standard errors of the mean paired difference. On llama-brown at 40% the block-wise
    /// vectors lowered the held-out loss by 0.0004 nats (noise on 16 windows) and raised the test perplexity.
    /// </summary>
    internal static bool ClearlyLower(IReadOnlyList<double> candidate, IReadOnlyList<double> baseline)
    {
        int n = candidate.Count;
        if (n != baseline.Count || n == 0) throw new ArgumentException("Paired losses need the same windows.");
        var d = Enumerable.Range(0, n).Select(i => baseline[i] - candidate[i]).ToArray();
        double mean = d.Average();
        if (n == 1) return mean > 0;
        double sd = Math.Sqrt(d.Sum(x => (x - mean) * (x - mean)) / (n - 1));
        return mean > 2 * sd / Math.Sqrt(n);
    }

    /// <summary>Mean next-token NLL of the head on the held-out stream <paramref name="states"/>, and each window's.</summary>
    private (double Mean, double[] Windows) Loss(ProbeCut head, HiddenStates states, string stage)
    {
        string logits = head.Outputs[0];
        var windows = _data.Validation;
        double nll = 0;
        long scored = 0;
        var perWindow = new double[windows.Count];
        _report(stage, 0, windows.Count);
        head.Run(windows, states, BatchFor(1 << 17), new ProbeSettings(_layout), [logits], batch =>
        {
            var values = batch.Floats(logits);
            int v = (int)batch.Shape(logits)[2];
            for (int b = 0; b < batch.Windows; b++)
            {
                var tokens = windows[batch.FirstWindow + b];
                for (int t = 0; t + 1 < batch.Length; t++)
                {
                    double token = PerplexityEvaluator.NegativeLogLikelihood(values.Slice(((b * batch.Length) + t) * v, v), tokens[t + 1]);
                    nll += token;
                    perWindow[batch.FirstWindow + b] += token / (batch.Length - 1);
                    scored++;
                }
            }
        }, progress: done => _report(stage, done, windows.Count));
        return (nll / scored, perWindow);
    }
}
