using SparseOnnx.GraphRewriter.Sparsify;

namespace SparseOnnx.Calibration;

/// <summary>What calibration decided for one group of projections sharing an input.</summary>
/// <param name="Id">e.g. <c>layer3.q_k_v</c>.</param>
/// <param name="Layer">The layer, when known.</param>
/// <param name="Kinds">The kinds sharing the input, e.g. <c>q+k+v</c>.</param>
/// <param name="InFeatures">K of the shared input.</param>
/// <param name="Parameters">Σ K·N of the group: its weight in the average sparsity.</param>
/// <param name="Sparsity">The allocated sparsity.</param>
/// <param name="Threshold">Threshold mode: the magnitude that drops <paramref name="Sparsity"/> of the calibration entries.</param>
/// <param name="K">Top-k mode: entries kept per token.</param>
/// <param name="MeasuredSparsity">Fraction actually dropped on the held-out windows with every decision applied.</param>
/// <param name="Compensated">Whether the group's projections carry a compensation vector.</param>
public sealed record GroupCalibration(string Id, int? Layer, string Kinds, long InFeatures, long Parameters, double Sparsity,
    float? Threshold, long? K, double MeasuredSparsity, bool Compensated);

/// <summary>Held-out mean negative log-likelihoods (nats per token) measured along the way.</summary>
/// <param name="Dense">The unchanged model.</param>
/// <param name="Uniform">Every group at the target, no compensation.</param>
/// <param name="Greedy">The greedy allocation, no compensation (null when not searched).</param>
/// <param name="Final">With every decision applied: what the plan gives.</param>
/// <param name="Trained">With the trained spontaneous neurons (null when not trained), whether or not they were kept.</param>
public sealed record ValidationLosses(double Dense, double Uniform, double? Greedy, double Final, double? Trained = null);

/// <summary>What a calibration produced.</summary>
/// <param name="Plan">The plan for <c>sparsify --plan</c>.</param>
/// <param name="Groups">Per group, what was decided.</param>
/// <param name="Allocation">The allocation the plan uses (greedy falls back to uniform when it loses on the held-out windows).</param>
/// <param name="Validation">Held-out losses along the way.</param>
/// <param name="MeasuredSparsity">Parameter-weighted average of the groups' measured sparsity.</param>
/// <param name="Notes">Decisions worth telling the user, in order.</param>
/// <param name="Elapsed">Wall time of the calibration.</param>
/// <param name="Training">How training the spontaneous neurons went (null when not trained).</param>
public sealed record CalibrationResult(SparsityPlan Plan, IReadOnlyList<GroupCalibration> Groups, AllocationMethod Allocation,
    ValidationLosses Validation, double MeasuredSparsity, IReadOnlyList<string> Notes, TimeSpan Elapsed, TrainingReport? Training = null)
{
    /// <summary>The stages that ran, in order, with their wall times (they add up to about <see cref="Elapsed"/>).</summary>
    public IReadOnlyList<CalibrationStage> Stages { get; init; } = [];

    /// <summary>How the model was run: block by block, or whole (also when sequential was asked for and the blocks could not be cut).</summary>
    public Sequential.CalibrationMethod Method { get; init; } = Sequential.CalibrationMethod.FullModel;
}

/// <summary>One stage of a calibration and how long it took.</summary>
/// <param name="Name">e.g. <c>greedy allocation</c>.</param>
/// <param name="Elapsed">Its wall time.</param>
public sealed record CalibrationStage(string Name, TimeSpan Elapsed);

/// <summary>What training the spontaneous neurons did.</summary>
/// <param name="Kept">Whether the trained vectors are in the plan.</param>
/// <param name="Steps">Optimizer steps run.</param>
/// <param name="BestStep">The step whose vectors were kept.</param>
/// <param name="InitialHeldOutKl">Held-out KL(dense ‖ sparse) per position before training.</param>
/// <param name="FinalHeldOutKl">The same with the trained vectors.</param>
/// <param name="History">Held-out checks along the way.</param>
/// <param name="Stopped">Why training ended.</param>
/// <param name="Elapsed">Wall time of training, building the training graph included.</param>
public sealed record TrainingReport(bool Kept, int Steps, int BestStep, double InitialHeldOutKl, double FinalHeldOutKl,
    IReadOnlyList<Training.TrainingCheckpoint> History, string Stopped, TimeSpan Elapsed);

/// <summary>Progress of a calibration: a stage and how far into it.</summary>
public readonly record struct CalibrationProgress(string Stage, double Done, double Total);
