namespace SparseOnnx.GraphRewriter.Analysis.Projections;

/// <summary>
/// The output head: a projection that no attention or MLP pattern claimed and whose result reaches a graph
/// output through reshapes, casts and elementwise ops only (logit soft-capping is Div, Tanh, Mul). A projection
/// the MLP matcher recognised as a down projection but refused (see its reason) is not claimed.
/// </summary>
internal static class LmHeadMatcher
{
    private const int TraceBudget = 64;

    public static void Match(GraphContext context)
    {
        foreach (var projection in context.Unclassified)
        {
            if (projection.Reason is not null) continue;
            if (!context.Tracer.ReachesGraphOutput(projection.Output, TraceBudget)) continue;
            projection.Kind = ProjectionKind.LmHead;
            projection.KindSource = KindSource.Structure;
            projection.Reason = null;
        }
    }
}
