using SparseOnnx.Calibration.Allocation;
using SparseOnnx.GraphRewriter.Sparsify;

namespace SparseOnnx.Calibration.Sequential;

/// <summary>
/// TEAL's greedy allocation inside the block: groups are made sparser step by step where the objective grows least,
/// at the same parameter-weighted average. The objective is the next-token KL from the dense model with the rest of
/// the model run after the block (<see cref="BlockContext.LogitsDivergence"/>), or TEAL's own, the block's output error
/// relative to the dense block on the same input. The search runs on <see cref="CalibrationOptions.GreedySamples"/>
/// calibration windows; its allocation is kept when it beats the uniform one: on the search windows' KL with the
/// logits objective (the block error does not tell), on the block's held-out error with the block objective.
/// </summary>
internal sealed class BlockAllocation : IBlockStage
{
    public string Name => "greedy allocation";

    public bool Enabled(BlockContext block) => block.Options.Allocation == AllocationMethod.Greedy;

    public void Run(BlockContext block)
    {
        var logits = block.LogitsDivergence;
        var uniformError = block.HeldOutError ?? block.RelativeError(block.Settings, heldOut: true);
        double uniformDivergence = logits?.Invoke(block.Settings) ?? double.NaN;
        var groups = block.Groups;
        int step = 0;
        var chosen = GreedyAllocator.Allocate(groups.Select(g => new AllocationCandidate(g.Parameters, block.Options.GreedyMaxSparsity)).ToArray(),
            block.Options.Sparsity, block.Options.GreedyStep, sparsity =>
            {
                block.Report($"{block.Name}: greedy allocation", ++step, double.NaN);
                var trial = block.Settings.Clone();
                for (int j = 0; j < groups.Count; j++) block.Select(trial, groups[j], sparsity[j], block.Histograms);
                return logits?.Invoke(trial) ?? block.RelativeError(trial, heldOut: false, block.Options.GreedySamples);
            }, search: block.Options.GreedySearch);
        var settings = block.Settings.Clone();
        for (int j = 0; j < groups.Count; j++) block.Select(settings, groups[j], chosen[j], block.Histograms);
        var histograms = block.Histograms;
        if (block.Options.Mode == SparsityMode.Threshold)
        {
            // Read off histograms taken with uniform thresholds upstream; measured again with the greedy ones.
            histograms = block.MeasureHistograms(settings, $"{block.Name}: thresholds, greedy upstream");
            for (int j = 0; j < groups.Count; j++) block.Select(settings, groups[j], chosen[j], histograms);
        }
        double greedyError = block.RelativeError(settings, heldOut: true);
        double greedyDivergence = logits?.Invoke(settings) ?? double.NaN;
        if (logits is null ? greedyError < uniformError : greedyDivergence < uniformDivergence)
        {
            for (int j = 0; j < groups.Count; j++) block.Allocation[groups[j].Index] = chosen[j];
            block.Settings = settings;
            block.Histograms = histograms;
            block.HeldOutError = greedyError;
            string measure = logits is null
                ? FormattableString.Invariant($"held-out block error {uniformError:0.0000} -> {greedyError:0.0000}")
                : FormattableString.Invariant($"next-token KL on the search windows {uniformDivergence:0.00000} -> {greedyDivergence:0.00000}");
            block.Notes.Add(FormattableString.Invariant($"{block.Name}: greedy allocation {string.Join(", ", groups.Select((g, j) => $"{g.Id} {chosen[j]:0.###}"))} ({measure})"));
        }
        else
            block.HeldOutError = uniformError;
    }
}
