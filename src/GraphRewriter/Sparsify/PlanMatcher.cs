using SparseOnnx.GraphRewriter.Analysis.Projections;

namespace SparseOnnx.GraphRewriter.Sparsify;

/// <summary>
/// Pairs a plan's entries with a model's projections and checks they fit: every entry names a projection
/// that exists, with the kind, layer and sizes the plan recorded; k ≤ K; one spontaneous value per output.
/// A plan written for another model is refused as a whole, listing what does not fit.
/// </summary>
internal static class PlanMatcher
{
    public static Dictionary<Projection, PlanEntry> Match(SparsityPlan plan, IReadOnlyList<Projection> projections)
    {
        var byName = projections.ToLookup(p => p.DisplayName, StringComparer.Ordinal);
        var matched = new Dictionary<Projection, PlanEntry>();
        var problems = new List<string>();
        foreach (var entry in plan.Projections)
        {
            var candidates = byName[entry.Node].Where(p => entry.Graph is null || p.GraphPath == entry.Graph).ToList();
            if (candidates.Count == 0)
            {
                problems.Add($"'{entry.Node}'{(entry.Graph is null ? "" : $" in {entry.Graph}")} is not a projection of this model");
                continue;
            }
            foreach (var p in candidates)
            {
                string at = $"'{entry.Node}' ({p.GraphPath})";
                if (entry.Kind is { } kind && kind != p.Kind.ToShortName())
                    problems.Add($"{at} is a {p.Kind.ToShortName()} projection, the plan says {kind}");
                if (entry.Layer is { } layer && layer != p.Layer)
                    problems.Add($"{at} is in layer {p.Layer?.ToString() ?? "-"}, the plan says {layer}");
                if (entry.InFeatures is { } k && k != p.InFeatures)
                    problems.Add($"{at} has {p.InFeatures} input features, the plan says {k}");
                if (entry.OutFeatures is { } n && n != p.OutFeatures)
                    problems.Add($"{at} has {p.OutFeatures} output features, the plan says {n}");
                if (entry.K is { } kept && kept > p.InFeatures)
                    problems.Add($"{at}: k = {kept} exceeds its {p.InFeatures} input features");
                if (entry.Spontaneous is { } s && s.Length != p.OutFeatures)
                    problems.Add($"{at} has {p.OutFeatures} outputs but the plan gives {s.Length} spontaneous values");
                if (!matched.TryAdd(p, entry))
                    problems.Add($"{at} is named by two plan entries");
            }
        }
        if (problems.Count > 0)
            throw new InvalidPlanException(
                $"Plan {plan.SourcePath ?? "(in memory)"} does not fit this model ({problems.Count} problem{(problems.Count == 1 ? "" : "s")}): " +
                string.Join("; ", problems.Take(10)) + (problems.Count > 10 ? $"; and {problems.Count - 10} more" : "") + ".");
        return matched;
    }
}
