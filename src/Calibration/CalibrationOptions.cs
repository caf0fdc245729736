using SparseOnnx.GraphRewriter.Analysis.Projections;
using SparseOnnx.GraphRewriter.Sparsify;

namespace SparseOnnx.Calibration;

/// <summary>How sparsity is spread over a block's projection groups.</summary>
public enum AllocationMethod
{
    /// <summary>Every group at the target sparsity.</summary>
    Uniform,
    /// <summary>TEAL's block-wise greedy search (<see cref="Allocation.GreedyAllocator"/>), same parameter-weighted average.</summary>
    Greedy,
    /// <summary>
    /// The default: in sequential calibration, the greedy search with the logits objective where its passes fit in
    /// memory and its estimated time within <see cref="CalibrationOptions.GreedyBudget"/>; uniform otherwise (a note
    /// says why), and uniform in the full method, whose search costs O(layers²) model passes.
    /// </summary>
    Auto,
}

/// <summary>What greedy allocation minimises when it chooses which group of a block to make sparser.</summary>
public enum GreedyObjective
{
    /// <summary>TEAL's: the relative squared error of the block's output, the block run dense on the same input as reference.</summary>
    BlockOutput,
    /// <summary>
    /// KL(dense model ‖ model) of the next-token distribution, with the earlier blocks at their allocation and the
    /// later ones dense: what the block's choice does to the output, downstream amplification included.
    /// </summary>
    Logits,
}

/// <summary>Whether the closed-form compensation vectors are applied.</summary>
public enum CompensationMode
{
    /// <summary>No compensation: plain thresholds (or k).</summary>
    Off,
    /// <summary>Computed for every group, kept only where it lowers the held-out loss.</summary>
    Auto,
    /// <summary>Computed and applied everywhere (to measure the baseline itself).</summary>
    On,
}

/// <summary>What <see cref="Calibrator"/> computes.</summary>
public sealed record CalibrationOptions
{
    /// <summary>Target average sparsity (fraction of input entries dropped, weighted by each group's weights), in [0, 1).</summary>
    public double Sparsity { get; init; } = 0.5;

    /// <summary>Block by block (default) or on the whole model.</summary>
    public SparseOnnx.Calibration.Sequential.CalibrationMethod Method { get; init; } = SparseOnnx.Calibration.Sequential.CalibrationMethod.Sequential;

    /// <summary>What the sequential method does in each block.</summary>
    public SparseOnnx.Calibration.Sequential.SequentialOptions Sequential { get; init; } = new();

    /// <summary>Threshold mode writes per-projection thresholds; top-k mode writes per-projection k.</summary>
    public SparsityMode Mode { get; init; } = SparsityMode.Threshold;

    /// <summary>Uniform, greedy, or greedy where it is affordable (the default).</summary>
    public AllocationMethod Allocation { get; init; } = AllocationMethod.Auto;

    /// <summary>
    /// With <see cref="AllocationMethod.Auto"/>: the longest the sequential greedy search may be estimated to take
    /// (from the time of one dense pass over its windows) before calibration falls back to uniform allocation.
    /// </summary>
    public TimeSpan GreedyBudget { get; init; } = TimeSpan.FromMinutes(5);

    /// <summary>Closed-form compensation: off, kept where it helps (default), or everywhere.</summary>
    public CompensationMode Compensation { get; init; } = CompensationMode.Auto;

    /// <summary>
    /// Spontaneous neurons trained by distribution matching after the closed form (null: not trained). The
    /// trained vectors replace the closed-form ones when they lower the held-out loss (see
    /// <see cref="Training.SpontaneousTrainingOptions.KeepOnlyIfBetter"/>).
    /// </summary>
    public Training.SpontaneousTrainingOptions? Training { get; init; }

    /// <summary>Projection kinds to sparsify.</summary>
    public IReadOnlySet<ProjectionKind> Kinds { get; init; } = SparsifyOptions.DefaultKinds;

    /// <summary>ONNX Runtime intra-op threads (0: its default).</summary>
    public int Threads { get; init; }

    /// <summary>Where the probes run: the CPU (default), CUDA (fails when the ONNX Runtime in use has no CUDA provider), or auto (CUDA when available).</summary>
    public SparseOnnx.Runtime.Inference.ExecutionDevice Device { get; init; } = SparseOnnx.Runtime.Inference.ExecutionDevice.Cpu;

    /// <summary>ORT's CUDA provider library to register when the runtime has none built in (default: $SPARSEONNX_ORT_CUDA_PROVIDER).</summary>
    public string? CudaProviderLibrary { get; init; }

    /// <summary>
    /// Most bytes of captured outputs (activations exposed by the probe, logits) held at once; batches are sized
    /// to fit, down to one window. The rest of calibration's memory does not grow with the number of samples.
    /// </summary>
    public long CaptureBudgetBytes { get; init; } = 256L << 20;

    /// <summary>Greedy allocation: what the search minimises.</summary>
    public GreedyObjective GreedyObjective { get; init; } = GreedyObjective.Logits;

    /// <summary>Greedy allocation: the sparsity step of one group per iteration.</summary>
    public double GreedyStep { get; init; } = 0.05;

    /// <summary>Greedy allocation: calibration windows the block-output error is measured on.</summary>
    public int GreedySamples { get; init; } = 8;

    /// <summary>
    /// Greedy allocation: how far below the target every group starts (1: from dense, TEAL's start). Measured on both
    /// reference models at 40-70%, no group ended more than 0.25 below the target; 0.3 skips the measurements of
    /// the sparsities below that.
    /// </summary>
    public double GreedyStartBelow { get; init; } = 0.3;

    /// <summary>Greedy allocation: measure lazily (<see cref="Allocation.GreedySearch.Lazy"/>) instead of every group every step.</summary>
    public bool GreedyLazy { get; init; } = true;

    /// <summary>The greedy search these options describe.</summary>
    public Allocation.GreedySearch GreedySearch => new() { Start = Math.Max(0, Sparsity - GreedyStartBelow), Lazy = GreedyLazy };

    /// <summary>Largest sparsity greedy gives one group.</summary>
    public double GreedyMaxSparsity { get; init; } = 0.95;

    /// <summary>Throws <see cref="ArgumentException"/> for out-of-range settings.</summary>
    public void Validate()
    {
        if (!(Sparsity >= 0 && Sparsity < 1)) throw new ArgumentException($"The sparsity must be in [0, 1), not {Sparsity}.");
        if (Threads < 0) throw new ArgumentException($"Threads must be 0 (default) or more, not {Threads}.");
        if (CaptureBudgetBytes < 1 << 20) throw new ArgumentException("The capture budget must be at least 1 MiB.");
        if (!(GreedyStep > 0 && GreedyStep <= 0.5)) throw new ArgumentException($"The greedy step must be in (0, 0.5], not {GreedyStep}.");
        if (GreedyBudget < TimeSpan.Zero) throw new ArgumentException($"The greedy search's time budget cannot be negative, not {GreedyBudget}.");
        if (GreedySamples < 1) throw new ArgumentException($"Greedy needs at least one sample, not {GreedySamples}.");
        if (!(GreedyStartBelow > 0)) throw new ArgumentException($"The greedy search must start below the target (a positive distance), not {GreedyStartBelow} below it.");
        if (!(GreedyMaxSparsity > Sparsity && GreedyMaxSparsity < 1))
            throw new ArgumentException($"The greedy maximum per group must be above the target ({Sparsity}) and below 1, not {GreedyMaxSparsity}.");
        if (Kinds.Count == 0) throw new ArgumentException("No projection kinds selected.");
        Training?.Validate();
        Sequential.Validate();
    }
}
