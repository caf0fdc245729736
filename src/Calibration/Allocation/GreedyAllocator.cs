namespace SparseOnnx.Calibration.Allocation;

/// <summary>A group the allocator can make sparser, with the weight its sparsity counts for.</summary>
/// <param name="Parameters">Weights the group reads when dense: its share of the block's average sparsity.</param>
/// <param name="MaxSparsity">The most this group may drop.</param>
public readonly record struct AllocationCandidate(long Parameters, double MaxSparsity = 0.95);

/// <summary>One step the search took.</summary>
public readonly record struct AllocationStep(int Group, double Sparsity, double Error);

/// <summary>
/// TEAL's block-wise greedy allocation: start every group of a block dense and, one step at a time, raise
/// the sparsity of the group whose step costs the least block-output error per weight dropped, until the
/// parameter-weighted average sparsity reaches the target. The last step is shortened to land on the
/// target exactly, so a greedy block reads the same number of weights as a uniform one.
/// </summary>
public static class GreedyAllocator
{
    /// <summary>
    /// Sparsity per candidate. <paramref name="error"/> measures the block's output error for a vector of group
    /// sparsities (lower is better); each step calls it once per group that can still grow, and a block takes
    /// about target × (Σ parameters / typical group parameters) / step steps.
    /// </summary>
    public static double[] Allocate(IReadOnlyList<AllocationCandidate> candidates, double target, double step,
        Func<double[], double> error, List<AllocationStep>? trace = null)
    {
        if (candidates.Count == 0) return [];
        if (!(target >= 0 && target < 1)) throw new ArgumentOutOfRangeException(nameof(target), $"The target sparsity must be in [0, 1), not {target}.");
        if (!(step > 0 && step <= 0.5)) throw new ArgumentOutOfRangeException(nameof(step), $"The step must be in (0, 0.5], not {step}.");
        double total = candidates.Sum(c => (double)c.Parameters);
        double reachable = candidates.Sum(c => c.Parameters * c.MaxSparsity) / total;
        if (target > reachable + 1e-12)
            throw new ArgumentOutOfRangeException(nameof(target), $"The target {target} exceeds what the groups can drop ({reachable:0.###}).");

        var sparsity = new double[candidates.Count];
        double current = error(sparsity);
        double Average() => sparsity.Select((s, i) => s * candidates[i].Parameters).Sum() / total;
        while (Average() < target - 1e-9)
        {
            double remaining = target - Average();
            int best = -1;
            double bestCost = double.PositiveInfinity, bestError = 0, bestIncrement = 0;
            for (int g = 0; g < candidates.Count; g++)
            {
                double room = candidates[g].MaxSparsity - sparsity[g];
                if (room <= 1e-12) continue;
                // The step, shortened when it would overshoot the target or the group's maximum.
                double increment = Math.Min(Math.Min(step, room), remaining * total / candidates[g].Parameters);
                var trial = (double[])sparsity.Clone();
                trial[g] += increment;
                double e = error(trial);
                double cost = (e - current) / (increment * candidates[g].Parameters);
                if (cost < bestCost || best < 0)
                {
                    best = g;
                    bestCost = cost;
                    bestError = e;
                    bestIncrement = increment;
                }
            }
            if (best < 0) break;
            sparsity[best] += bestIncrement;
            current = bestError;
            trace?.Add(new AllocationStep(best, sparsity[best], current));
        }
        return sparsity;
    }
}
