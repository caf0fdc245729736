namespace SparseOnnx.Calibration.Allocation;

/// <summary>A group the allocator can make sparser, with the weight its sparsity counts for.</summary>
/// <param name="Parameters">Weights the group reads when dense: its share of the block's average sparsity.</param>
/// <param name="MaxSparsity">The most this group may drop.</param>
public readonly record struct AllocationCandidate(long Parameters, double MaxSparsity = 0.95);

/// <summary>One step the search took.</summary>
public readonly record struct AllocationStep(int Group, double Sparsity, double Error);

/// <summary>Where the greedy search starts and how many candidates each of its steps measures.</summary>
public sealed record GreedySearch
{
    /// <summary>TEAL's search: every group starts dense and every step measures every group that can still grow.</summary>
    public static GreedySearch Exhaustive { get; } = new();

    /// <summary>
    /// The sparsity every group starts at (capped at its maximum), at most the target: the search does not spend
    /// measurements on sparsities far below the target that every group passes anyway.
    /// </summary>
    public double Start { get; init; }

    /// <summary>
    /// Lazy evaluation (as CELF does for submodular maximisation): each group's cost per weight from its last
    /// measurement stands until it is the cheapest, and only then is it measured again; the step is taken when the
    /// cheapest cost is a fresh one. Exact where a step does not lower the others' costs (errors that add up over
    /// groups, or grow faster as the block gets sparser); a step then costs one to a few measurements instead of one
    /// per group.
    /// </summary>
    public bool Lazy { get; init; }
}

/// <summary>
/// TEAL's block-wise greedy allocation: start every group of a block dense and, one step at a time, raise
/// the sparsity of the group whose step costs the least block-output error per weight dropped, until the
/// parameter-weighted average sparsity reaches the target. The last step is shortened to land on the
/// target exactly, so a greedy block reads the same number of weights as a uniform one. <see cref="GreedySearch"/>
/// can start the groups part of the way and measure lazily.
/// </summary>
public static class GreedyAllocator
{
    /// <summary>
    /// Sparsity per candidate. <paramref name="error"/> measures the block's output error for a vector of group
    /// sparsities (lower is better); an exhaustive step calls it once per group that can still grow, and a block takes
    /// about (target − start) × (Σ parameters / typical group parameters) / step steps.
    /// </summary>
    public static double[] Allocate(IReadOnlyList<AllocationCandidate> candidates, double target, double step,
        Func<double[], double> error, List<AllocationStep>? trace = null, GreedySearch? search = null)
    {
        search ??= GreedySearch.Exhaustive;
        if (candidates.Count == 0) return [];
        if (!(target >= 0 && target < 1)) throw new ArgumentOutOfRangeException(nameof(target), $"The target sparsity must be in [0, 1), not {target}.");
        if (!(step > 0 && step <= 0.5)) throw new ArgumentOutOfRangeException(nameof(step), $"The step must be in (0, 0.5], not {step}.");
        if (!(search.Start >= 0 && search.Start <= target))
            throw new ArgumentOutOfRangeException(nameof(search), $"The search must start between dense and the target ({target}), not at {search.Start}.");
        double total = candidates.Sum(c => (double)c.Parameters);
        double reachable = candidates.Sum(c => c.Parameters * c.MaxSparsity) / total;
        if (target > reachable + 1e-12)
            throw new ArgumentOutOfRangeException(nameof(target), $"The target {target} exceeds what the groups can drop ({reachable:0.###}).");

        var sparsity = candidates.Select(c => Math.Min(search.Start, c.MaxSparsity)).ToArray();
        double current = error(sparsity);
        double Average() => sparsity.Select((s, i) => s * candidates[i].Parameters).Sum() / total;
        // Each group's cost per weight of its next step and the step it was measured at (-1: never).
        var cost = new double[candidates.Count];
        var measuredAt = Enumerable.Repeat(-1, candidates.Count).ToArray();
        var errorAfter = new double[candidates.Count];
        var increments = new double[candidates.Count];
        for (int taken = 0; Average() < target - 1e-9; taken++)
        {
            double remaining = target - Average();
            for (int g = 0; g < candidates.Count; g++)
            {
                double room = candidates[g].MaxSparsity - sparsity[g];
                // The step, shortened when it would overshoot the target or the group's maximum.
                increments[g] = room <= 1e-12 ? 0 : Math.Min(Math.Min(step, room), remaining * total / candidates[g].Parameters);
            }
            int best;
            while (true)
            {
                best = -1;
                for (int g = 0; g < candidates.Count; g++)
                {
                    if (increments[g] <= 0) continue;
                    // Never measured ranks first; an exhaustive search measures every group afresh each step.
                    bool unknown = measuredAt[g] < 0 || (!search.Lazy && measuredAt[g] < taken);
                    if (unknown) { best = g; break; }
                    if (best < 0 || cost[g] < cost[best]) best = g;
                }
                if (best < 0 || measuredAt[best] == taken) break;
                var trial = (double[])sparsity.Clone();
                trial[best] += increments[best];
                errorAfter[best] = error(trial);
                cost[best] = (errorAfter[best] - current) / (increments[best] * candidates[best].Parameters);
                measuredAt[best] = taken;
            }
            if (best < 0) break;
            sparsity[best] += increments[best];
            current = errorAfter[best];
            trace?.Add(new AllocationStep(best, sparsity[best], current));
        }
        return sparsity;
    }
}
