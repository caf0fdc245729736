namespace SparseOnnx.Calibration.Sequential;

/// <summary>How calibration runs the model.</summary>
public enum CalibrationMethod
{
    /// <summary>
    /// Block by block, as GPTQ, SparseGPT and Wanda calibrate large models: each decoder block is cut out of the
    /// model and calibrated on its own against the dense block's output on the same input, then its sparsified
    /// outputs become the next block's inputs. Falls back to <see cref="FullModel"/>, with a note, for a model
    /// whose blocks cannot be cut (no residual Adds to cut at, as in fused-norm graphs).
    /// </summary>
    Sequential,
    /// <summary>Every decision measured on the whole model's held-out loss, training by KL on the logits.</summary>
    FullModel,
}

/// <summary>What a block's output is compared with when its vectors are judged and trained.</summary>
public enum BlockTarget
{
    /// <summary>
    /// The dense model's hidden state after the block (the dense block on the dense model's own input): vectors
    /// learn to undo what earlier blocks' sparsity moved, as the whole-model KL objective lets them.
    /// </summary>
    DenseModel,
    /// <summary>The dense block on the same (sparsified upstream) input, GPTQ's and SparseGPT's layer-wise target.</summary>
    DenseBlock,
}

/// <summary>What sequential calibration does in each block.</summary>
public sealed record SequentialOptions
{
    /// <summary>What the block's output is compared with.</summary>
    public BlockTarget Target { get; init; } = BlockTarget.DenseModel;

    /// <summary>
    /// Adam steps training a block's spontaneous neurons against the block target (0: not trained, the default:
    /// on llama-brown at 60-70% block-trained vectors lowered each block's error but raised the held-out loss, see
    /// docs/calibration.md).
    /// </summary>
    public int TrainingSteps { get; init; }

    /// <summary>
    /// Steps of the optional end-to-end phase after the blocks: the whole-model KL training of the spontaneous
    /// neurons (as <see cref="CalibrationMethod.FullModel"/> trains them), from the block-wise result; 0: none;
    /// null (the default): <see cref="AutoEndToEndSteps"/> where the whole-model training fits in memory
    /// (<see cref="EndToEndFits"/>), none otherwise, with a note saying so.
    /// </summary>
    public int? EndToEndSteps { get; init; }

    /// <summary>The end-to-end steps run by default where they fit.</summary>
    public const int AutoEndToEndSteps = 60;

    /// <summary>
    /// The most the default end-to-end phase may be estimated to take (<see cref="EndToEndEstimate"/>); over it the
    /// phase is left out with a note (steps given in <see cref="EndToEndSteps"/> always run). Ten minutes: llama-brown's
    /// phase takes about 45 s, the 2-layer model with the 1B's vocabulary about 20 s a step.
    /// </summary>
    public TimeSpan EndToEndBudget { get; init; } = TimeSpan.FromMinutes(10);

    /// <summary>
    /// How long <paramref name="steps"/> steps of the end-to-end phase are taken to run, from
    /// <paramref name="forwardPerWindow"/>, the whole model's dense forward pass of one window: each step runs the
    /// training graph forward and backward over its windows (three forward passes' work), plus the dense
    /// reference of its windows where the references are not cached; each held-out check (every
    /// <see cref="Training.SpontaneousTrainingOptions.EvaluateEvery"/> steps, and before the first) runs the held-out
    /// windows and, with <paramref name="rethreshold"/>, every calibration window to re-measure the thresholds; the
    /// held-out references run once.
    /// </summary>
    public static TimeSpan EndToEndEstimate(TimeSpan forwardPerWindow, int steps, Training.SpontaneousTrainingOptions training, int calibrationWindows,
        int heldOutWindows, bool referencesCached, bool rethreshold)
    {
        int batch = Math.Min(training.BatchWindows, calibrationWindows);
        long perStep = (long)batch * (referencesCached ? 3 : 4);
        long checks = steps / training.EvaluateEvery + 1;
        long perCheck = heldOutWindows + (rethreshold ? calibrationWindows : 0);
        return forwardPerWindow * (steps * perStep + checks * perCheck + heldOutWindows + (referencesCached ? calibrationWindows : 0));
    }

    /// <summary>
    /// Whether whole-model training fits in <paramref name="memoryBytes"/> (<see cref="EndToEndBytes"/>).
    /// </summary>
    public static bool EndToEndFits(long weightBytes, long vocabularyBytes, long memoryBytes) => EndToEndBytes(weightBytes, vocabularyBytes) <= memoryBytes;

    /// <summary>
    /// The memory whole-model training is taken to need: four times <paramref name="weightBytes"/> plus 2 GB (ONNX
    /// Runtime holds the forward weights and their prepacked copies in two sessions, the probe's and the training
    /// graph's, which also folds a transposed copy of every projection's weight for the backward pass; on the
    /// Llama-3.2-1B-sized fp32 model, 6.0 GB of weights, training two windows a step went past 24 GB), plus
    /// <paramref name="vocabularyBytes"/>: the held-out windows' dense distributions and a step's vocabulary-wide
    /// tensors (<see cref="Training.TrainingGraph.StepBytesPerWindow"/>), which a 128,256-token vocabulary makes
    /// gigabytes (the 2-layer model of that size, 2.6 GB of weights: 9.2 GB peak with them counted and micro-batched,
    /// 23.7 GB before).
    /// </summary>
    public static long EndToEndBytes(long weightBytes, long vocabularyBytes) => 4 * weightBytes + (2L << 30) + vocabularyBytes;

    /// <summary>
    /// What training holds by the vocabulary (<see cref="EndToEndBytes"/>): <paramref name="heldOutWindows"/>' dense
    /// distributions and one micro-batch of <paramref name="training"/>'s step, windows of <paramref name="length"/>.
    /// </summary>
    public static long VocabularyBytes(long vocabulary, int length, int heldOutWindows, Training.SpontaneousTrainingOptions training)
    {
        long reference = (long)heldOutWindows * length * vocabulary * sizeof(float);
        int microBatch = Training.SpontaneousTrainer.MicroBatch(training, vocabulary, length, training.BatchWindows);
        return reference + microBatch * Training.TrainingGraph.StepBytesPerWindow(vocabulary, length);
    }

    /// <summary>Calibration windows per training step.</summary>
    public int TrainingWindows { get; init; } = 2;

    /// <summary>Steps between held-out checks of the block's output error.</summary>
    public int EvaluateEvery { get; init; } = 16;

    /// <summary>
    /// Calibration windows whose dense block outputs are kept as targets: training batches and the greedy search
    /// draw from them (the statistics — histograms, compensation means — use every window).
    /// </summary>
    public int TargetWindows { get; init; } = 16;

    /// <summary>
    /// Most bytes of residual-stream tensors kept in memory (the blocks' inputs and dense targets on the calibration
    /// and held-out windows); beyond it they go to files in the work folder.
    /// </summary>
    public long HiddenStateBudgetBytes { get; init; } = 1L << 30;

    /// <summary>Throws <see cref="ArgumentException"/> for out-of-range settings.</summary>
    public void Validate()
    {
        if (TrainingSteps < 0) throw new ArgumentException($"Block training steps must be 0 or more, not {TrainingSteps}.");
        if (TrainingWindows < 1) throw new ArgumentException($"A block training step needs at least one window, not {TrainingWindows}.");
        if (EvaluateEvery < 1) throw new ArgumentException($"Held-out checks must come every 1 or more steps, not {EvaluateEvery}.");
        if (EndToEndSteps is < 0) throw new ArgumentException($"End-to-end steps must be 0 or more, not {EndToEndSteps}.");
        if (EndToEndBudget < TimeSpan.Zero) throw new ArgumentException("The end-to-end budget cannot be negative.");
        if (TargetWindows < 1) throw new ArgumentException($"Sequential calibration needs at least one target window, not {TargetWindows}.");
        if (HiddenStateBudgetBytes < 0) throw new ArgumentException("The hidden-state budget cannot be negative.");
    }
}
