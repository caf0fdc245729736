namespace SparseOnnx.Calibration.Training;

/// <summary>How spontaneous-neuron vectors are trained (Adam on KL(dense ‖ sparse) over the calibration windows).</summary>
public sealed record SpontaneousTrainingOptions
{
    /// <summary>Input space (the paper's α) or output space (one vector per projection).</summary>
    public SpontaneousSpace Space { get; init; } = SpontaneousSpace.Output;

    /// <summary>Start from the closed-form vectors calibration kept (true) or from zero (the paper).</summary>
    public bool WarmStart { get; init; } = true;

    /// <summary>Most optimizer steps.</summary>
    public int Steps { get; init; } = 150;

    /// <summary>Windows per step.</summary>
    public int BatchWindows { get; init; } = 8;

    /// <summary>
    /// The most a step's vocabulary-wide tensors may take (<see cref="TrainingGraph.StepBytesPerWindow"/>): a batch that
    /// needs more runs in micro-batches of fewer windows whose losses and gradients are summed, the same step. Eight
    /// windows of a 128,256-token vocabulary took 7 GB more than one did; a 4,096-token one fits eight windows in 0.3 GB.
    /// </summary>
    public long StepMemoryBytes { get; init; } = 1L << 30;

    /// <summary>Peak learning rate (Adam).</summary>
    public double LearningRate { get; init; } = 0.01;

    /// <summary>Steps between held-out evaluations.</summary>
    public int EvaluateEvery { get; init; } = 10;

    /// <summary>Evaluations without a held-out improvement before stopping; 0 runs every step and keeps the last vectors (no early stopping, as the paper).</summary>
    public int Patience { get; init; } = 3;

    /// <summary>Seed of the batch order.</summary>
    public int Seed { get; init; } = 1234;

    /// <summary>Keep the trained vectors only when they lower the held-out loss below what calibration had without them.</summary>
    public bool KeepOnlyIfBetter { get; init; } = true;

    /// <summary>
    /// When the model has an operator training cannot differentiate: true fails calibration naming it (the user
    /// asked for training); false keeps the closed-form result and says why in the notes (training by default).
    /// </summary>
    public bool Required { get; init; }

    /// <summary>Throws <see cref="ArgumentException"/> for out-of-range settings.</summary>
    public void Validate()
    {
        if (Steps < 1) throw new ArgumentException($"Training needs at least one step, not {Steps}.");
        if (BatchWindows < 1) throw new ArgumentException($"A training batch needs at least one window, not {BatchWindows}.");
        if (StepMemoryBytes < 1 << 20) throw new ArgumentException($"A training step needs at least 1 MiB for its vocabulary-wide tensors, not {StepMemoryBytes} bytes.");
        if (!(LearningRate > 0 && LearningRate < 10)) throw new ArgumentException($"The learning rate must be in (0, 10), not {LearningRate}.");
        if (EvaluateEvery < 1) throw new ArgumentException($"Held-out evaluations must come every 1 or more steps, not {EvaluateEvery}.");
        if (Patience < 0) throw new ArgumentException($"Patience must be 0 (no early stopping) or more, not {Patience}.");
    }
}
