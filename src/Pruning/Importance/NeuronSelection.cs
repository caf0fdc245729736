namespace SparseOnnx.Pruning.Importance;

/// <summary>How the number of removed neurons is spread over the pruned layers.</summary>
public enum Allocation
{
    /// <summary>One threshold on comparable scores across layers (ICA's τ on z-scored maps): layers lose different shares.</summary>
    Global,

    /// <summary>Every pruned layer loses the same share (Wanda-sp, LLM-Pruner and magnitude baselines).</summary>
    Uniform,
}

/// <summary>Which neurons each layer keeps.</summary>
/// <param name="Kept">Per layer (in the order given), the kept neuron indices, ascending.</param>
/// <param name="Threshold">Global allocation: the largest removed score (τ: a neuron scoring above it is kept unless its layer hit the floor); null for uniform.</param>
public sealed record SelectionResult(IReadOnlyList<int[]> Kept, double? Threshold);

/// <summary>
/// Turns per-neuron scores into kept sets that remove round(ratio × all MLP neurons) neurons, the lowest
/// scores first, never taking a pruned layer below <c>minKeptFraction</c> of its neurons (and never to zero).
/// Ties break toward the lower layer and index, so the result is deterministic.
/// </summary>
public static class KeySelection
{
    /// <summary>
    /// Selects the neurons to keep. <paramref name="scores"/> has one array per layer, null for a layer that is
    /// kept whole (it still counts in the total the ratio refers to).
    /// </summary>
    public static SelectionResult Select(IReadOnlyList<double[]?> scores, IReadOnlyList<int> widths, double ratio, Allocation allocation, double minKeptFraction)
    {
        if (!(ratio > 0 && ratio < 1)) throw new ArgumentException($"The pruning ratio must be in (0, 1), not {ratio}.");
        if (!(minKeptFraction >= 0 && minKeptFraction < 1)) throw new ArgumentException($"The kept fraction floor must be in [0, 1), not {minKeptFraction}.");
        long total = widths.Sum(w => (long)w);
        long toRemove = (long)Math.Round(ratio * total);
        var floors = widths.Select(w => Math.Max(1, (int)Math.Ceiling(minKeptFraction * w))).ToArray();
        long capacity = scores.Select((s, l) => s is null ? 0L : widths[l] - floors[l]).Sum();
        if (toRemove > capacity)
            throw new ArgumentException($"Removing {ratio:P0} of the {total} MLP neurons means {toRemove} neurons, but the pruned layers can give up only {capacity} " +
                $"(each keeps at least {minKeptFraction:P0}); keep fewer layers whole or lower the ratio.");

        var removeCount = allocation == Allocation.Uniform ? UniformCounts(scores, widths, floors, toRemove) : null;
        var removed = scores.Select(s => s is null ? null : new bool[s.Length]).ToArray();
        double? threshold = null;
        if (allocation == Allocation.Global)
        {
            var order = scores.SelectMany((s, l) => s is null ? [] : s.Select((score, j) => (Score: score, Layer: l, Neuron: j)))
                .OrderBy(x => x.Score).ThenBy(x => x.Layer).ThenBy(x => x.Neuron);
            var taken = new int[widths.Count];
            long done = 0;
            foreach (var (score, layer, neuron) in order)
            {
                if (done == toRemove) break;
                if (widths[layer] - taken[layer] <= floors[layer]) continue;
                removed[layer]![neuron] = true;
                taken[layer]++;
                done++;
                threshold = score;
            }
        }
        else
        {
            for (int l = 0; l < scores.Count; l++)
                if (scores[l] is { } s)
                    foreach (int j in Enumerable.Range(0, s.Length).OrderBy(j => s[j]).ThenBy(j => j).Take(removeCount![l]))
                        removed[l]![j] = true;
        }
        var kept = widths.Select((w, l) => removed[l] is { } r ? Enumerable.Range(0, w).Where(j => !r[j]).ToArray() : Enumerable.Range(0, w).ToArray()).ToList();
        return new SelectionResult(kept, threshold);
    }

    /// <summary>The same share from every pruned layer, by width, with largest-remainder rounding and the floors respected.</summary>
    private static int[] UniformCounts(IReadOnlyList<double[]?> scores, IReadOnlyList<int> widths, int[] floors, long toRemove)
    {
        var counts = new int[widths.Count];
        long prunedWidth = scores.Select((s, l) => s is null ? 0L : widths[l]).Sum();
        var remainders = new List<(double Fraction, int Layer)>();
        long assigned = 0;
        for (int l = 0; l < widths.Count; l++)
        {
            if (scores[l] is null) continue;
            double share = (double)toRemove * widths[l] / prunedWidth;
            counts[l] = Math.Min((int)Math.Floor(share), widths[l] - floors[l]);
            assigned += counts[l];
            remainders.Add((share - Math.Floor(share), l));
        }
        // Hand out what rounding and the floors left, largest remainder first, to layers with room.
        while (assigned < toRemove)
        {
            bool progressed = false;
            foreach (var (_, l) in remainders.OrderByDescending(r => r.Fraction).ThenBy(r => r.Layer))
            {
                if (assigned == toRemove) break;
                if (counts[l] < widths[l] - floors[l]) { counts[l]++; assigned++; progressed = true; }
            }
            if (!progressed) break;
        }
        return counts;
    }
}
