using SparseOnnx.Calibration.Capture;
using SparseOnnx.Calibration.Data;
using SparseOnnx.Calibration.Statistics;
using SparseOnnx.GraphRewriter.Sparsify;

namespace SparseOnnx.Calibration.Sequential;

/// <summary>
/// One block under sequential calibration, what its stages (<see cref="IBlockStage"/>) share: the block cut out
/// of the probe, its groups, the residual stream entering it on the calibration and held-out windows (with every
/// earlier block's decisions applied), the dense block's output on those same inputs (the block-local target),
/// and the settings decided so far. Every measurement runs this block alone.
/// </summary>
internal sealed class BlockContext
{
    public BlockContext(int layer, int position, int blocks, ProbeCut cut, string output, IReadOnlyList<ProbeGroup> groups, CalibrationSet data,
        HiddenStates calibration, HiddenStates heldOut, HiddenStates calibrationTarget, HiddenStates heldOutTarget, ProbeSettings settings,
        double[] allocation, CalibrationOptions options, SequentialOptions sequential, Action<string, double, double> report, List<string> notes)
    {
        Layer = layer;
        Position = position;
        Blocks = blocks;
        Cut = cut;
        Output = output;
        Groups = groups;
        Data = data;
        Calibration = calibration;
        HeldOut = heldOut;
        CalibrationTarget = calibrationTarget;
        HeldOutTarget = heldOutTarget;
        Settings = settings;
        Allocation = allocation;
        Options = options;
        Sequential = sequential;
        Report = report;
        Notes = notes;
    }

    /// <summary>The model's layer index.</summary>
    public int Layer { get; }
    /// <summary>0-based position among the calibrated blocks.</summary>
    public int Position { get; }
    /// <summary>Blocks in all.</summary>
    public int Blocks { get; }
    /// <summary>The block's session.</summary>
    public ProbeCut Cut { get; }
    /// <summary>The block's output (the residual stream after it).</summary>
    public string Output { get; }
    /// <summary>The groups inside the block, in order.</summary>
    public IReadOnlyList<ProbeGroup> Groups { get; }
    /// <summary>The calibration and held-out windows.</summary>
    public CalibrationSet Data { get; }
    /// <summary>The block's input on the calibration windows.</summary>
    public HiddenStates Calibration { get; }
    /// <summary>The block's input on the held-out windows.</summary>
    public HiddenStates HeldOut { get; }
    /// <summary>The dense block's output on the first <see cref="SequentialOptions.TargetWindows"/> windows of <see cref="Calibration"/>.</summary>
    public HiddenStates CalibrationTarget { get; }
    /// <summary>The dense block's output on <see cref="HeldOut"/>.</summary>
    public HiddenStates HeldOutTarget { get; }
    /// <summary>The settings decided so far (this block's groups change as the stages run; earlier blocks' are final).</summary>
    public ProbeSettings Settings { get; set; }
    /// <summary>Per group of the whole layout, its allocated sparsity.</summary>
    public double[] Allocation { get; }
    /// <summary>Histograms of this block's inputs with the block dense (threshold mode), taken with the targets.</summary>
    public MagnitudeHistogram[]? DenseHistograms { get; set; }
    /// <summary>Histograms of this block's inputs under the current selection (threshold mode), set by <see cref="BlockThresholds"/>.</summary>
    public MagnitudeHistogram[]? Histograms { get; set; }
    /// <summary>This block's groups that carry compensation vectors.</summary>
    public HashSet<ProbeGroup> Compensated { get; } = new();
    /// <summary>The block's relative output error on the held-out windows with <see cref="Settings"/>, once measured.</summary>
    public double? HeldOutError { get; set; }
    /// <summary>
    /// The greedy search's logits objective for this block (<see cref="TailObjective"/>): a candidate's next-token KL from
    /// the dense model on the greedy windows; null where the search uses the block-output error.
    /// </summary>
    public Func<ProbeSettings, double>? LogitsDivergence { get; set; }
    /// <summary>The calibration options.</summary>
    public CalibrationOptions Options { get; }
    /// <summary>The sequential method's options.</summary>
    public SequentialOptions Sequential { get; }
    /// <summary>Progress: stage, done, total.</summary>
    public Action<string, double, double> Report { get; }
    /// <summary>Notes for the result.</summary>
    public List<string> Notes { get; }

    /// <summary>e.g. "block 3 of 16".</summary>
    public string Name => $"block {Position + 1} of {Blocks}";

    /// <summary>
    /// Windows per batch so that one batch's outputs (<paramref name="floatsPerToken"/> per token) and the block's
    /// own intermediates fit the capture budget.
    /// </summary>
    public int BatchFor(long floatsPerToken) => SequentialCalibrator.BlockBatch(Options, Data.SequenceLength, Groups, floatsPerToken);

    /// <summary>Sets <paramref name="group"/>'s selection in <paramref name="settings"/> for <paramref name="sparsity"/>.</summary>
    public void Select(ProbeSettings settings, ProbeGroup group, double sparsity, MagnitudeHistogram[]? histograms)
    {
        if (Options.Mode == SparsityMode.Threshold)
            settings.SetThreshold(group, histograms![IndexInBlock(group)].Quantile(sparsity));
        else settings.SetK(group, SparsifyOptions.KeptEntries(sparsity, group.InFeatures));
    }

    /// <summary>Position of <paramref name="group"/> in <see cref="Groups"/>.</summary>
    public int IndexInBlock(ProbeGroup group)
    {
        for (int i = 0; i < Groups.Count; i++) if (Groups[i] == group) return i;
        throw new ArgumentException($"{group.Id} is not in {Name}.", nameof(group));
    }

    /// <summary>Histograms of this block's group inputs under <paramref name="settings"/> over the calibration windows.</summary>
    public MagnitudeHistogram[] MeasureHistograms(ProbeSettings settings, string stage)
    {
        var histograms = Groups.Select(_ => new MagnitudeHistogram()).ToArray();
        var outputs = Groups.Select(g => g.DenseOutput).ToArray();
        Report(stage, 0, Data.Calibration.Count);
        Cut.Run(Data.Calibration, Calibration, BatchFor(Groups.Sum(g => g.InFeatures)), settings, outputs, batch =>
        {
            for (int i = 0; i < Groups.Count; i++) histograms[i].Add(batch.Floats(Groups[i].DenseOutput));
        }, progress: done => Report(stage, done, Data.Calibration.Count));
        return histograms;
    }

    /// <summary>
    /// The mean over tokens of ‖y − t‖² / ‖t‖², y the block's output under <paramref name="settings"/> and t the target,
    /// over the held-out windows or the first <paramref name="windows"/> calibration windows (at most the target
    /// windows). Per token, so that the residual stream's few massive tokens do not decide alone (see <see cref="BlockTrainingGraph"/>).
    /// </summary>
    public double RelativeError(ProbeSettings settings, bool heldOut, int windows = -1)
    {
        var list = heldOut ? Data.Validation : Data.Calibration;
        var input = heldOut ? HeldOut : Calibration;
        var target = heldOut ? HeldOutTarget : CalibrationTarget;
        int count = Math.Min(windows < 0 ? list.Count : windows, target.Windows);
        double sum = 0;
        long tokens = 0;
        int hidden = target.Hidden;
        var reference = new float[target.FloatsPerWindow];
        Cut.Run(list, input, BatchFor(input.Hidden), settings, [Output], batch =>
        {
            var y = batch.Floats(Output);
            for (int b = 0; b < batch.Windows; b++)
            {
                target.Read(batch.FirstWindow + b, reference);
                var row = y.Slice(b * reference.Length, reference.Length);
                for (int token = 0; token < target.Length; token++)
                {
                    double error = 0, energy = 0;
                    for (int c = token * hidden; c < (token + 1) * hidden; c++)
                    {
                        double d = row[c] - reference[c];
                        error += d * d;
                        energy += (double)reference[c] * reference[c];
                    }
                    sum += error / Math.Max(energy, double.Epsilon);
                    tokens++;
                }
            }
        }, count: count);
        return sum / Math.Max(tokens, 1);
    }
}

/// <summary>One step of calibrating a block, run in the order <see cref="SequentialCalibrator"/> states; <see cref="Run"/> changes the context's settings.</summary>
internal interface IBlockStage
{
    /// <summary>The stage's name in progress and timings.</summary>
    string Name { get; }

    /// <summary>Whether the stage runs with these options.</summary>
    bool Enabled(BlockContext block);

    /// <summary>Does the stage's work on <paramref name="block"/>.</summary>
    void Run(BlockContext block);
}
