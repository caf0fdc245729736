using SparseOnnx.GraphRewriter.Ir;

namespace SparseOnnx.GraphRewriter.Analysis.Projections;

/// <summary>
/// Finds MLP blocks by walking back from a candidate down projection's input, through elementwise ops and
/// data movement, to the projections that feed it:
/// <list type="bullet">
/// <item>gated: two projections reading the same value, one through an activation (gate), one without (up),
/// meeting in a product — <c>down(act(gate(x)) · up(x))</c> (SwiGLU, GeGLU);</item>
/// <item>fused gated: one projection whose output is split, one part through the activation — gate_up;</item>
/// <item>plain: one projection through an activation — <c>down(act(up(x)))</c> (GPT-2's c_fc/c_proj).</item>
/// </list>
/// A match is refused when a value between the projections escapes the block (read elsewhere, or a graph
/// output): rewriting such a block would change what the other reader sees.
/// </summary>
internal static class MlpMatcher
{
    private const int TraceBudget = 200;

    public static void Match(GraphContext context)
    {
        foreach (var down in context.Unclassified.ToList())
        {
            if (down.KindSource != KindSource.None) continue;
            var trace = context.Tracer.TraceBack(down.Input, context.Graph, TraceBudget);
            if (!trace.Complete || trace.Reached.Count is 0 or > 2) continue;
            if (trace.Reached.Keys.Any(p => p.KindSource != KindSource.None || ReferenceEquals(p, down))) continue;
            if (!trace.Reached.Values.Any(throughActivation => throughActivation)) continue;

            if (Escapes(trace, down) is { } escape)
            {
                down.Reason = $"looks like an MLP's down projection, but {escape}";
                continue;
            }

            if (trace.Reached.Count == 2)
            {
                var pair = trace.Reached.ToList();
                if (pair[0].Value == pair[1].Value)
                {
                    down.Reason = "reads the product of two projections, but cannot tell gate from up (both or neither pass an activation)";
                    continue;
                }
                var gate = pair[0].Value ? pair[0].Key : pair[1].Key;
                var up = pair[0].Value ? pair[1].Key : pair[0].Key;
                if (!ReferenceEquals(Origin(gate.Input), Origin(up.Input)))
                {
                    down.Reason = $"reads the product of {gate.DisplayName} and {up.DisplayName}, which do not read the same value";
                    continue;
                }
                Assign(context, gate, ProjectionKind.Gate, down);
                Assign(context, up, ProjectionKind.Up, down);
            }
            else
            {
                var only = trace.Reached.Keys.Single();
                bool split = only.Output.Uses.Count(u => trace.Nodes.Contains(u.Node) && IsSelection(u.Node)) switch
                {
                    1 => only.Output.Uses.Any(u => u.Node.Is("Split")),
                    > 1 => true,
                    _ => false,
                };
                Assign(context, only, split ? ProjectionKind.GateUp : ProjectionKind.Up, down);
            }
            Assign(context, down, ProjectionKind.Down, down);
        }
    }

    /// <summary>
    /// The value a projection input was reshaped from: exports that flatten to 2-D before each Gemm give
    /// gate and up two Reshape nodes of the same tensor.
    /// </summary>
    private static Value Origin(Value value)
    {
        for (int guard = 0; guard < 16; guard++)
        {
            if (value.Producer is not { } p || !p.IsStandardDomain || p.OpType is not ("Reshape" or "Flatten" or "Identity" or "Squeeze" or "Unsqueeze")
                || p.InputOrNull(0) is not { } source)
                break;
            value = source;
        }
        return value;
    }

    private static bool IsSelection(Node node) => node.IsStandardDomain && node.OpType is "Split" or "Slice" or "Gather";

    /// <summary>Describes the first value between the feeding projections and down that is read outside the block.</summary>
    private static string? Escapes(DataFlowTracer.BackwardTrace trace, Projection down)
    {
        // Shape and Size read only a value's shape, which a rewrite of the block keeps.
        bool Inside(Node node) => trace.Nodes.Contains(node) || ReferenceEquals(node, down.Node) || node.Is("Shape") || node.Is("Size");
        var values = trace.Nodes.SelectMany(n => n.Outputs).Concat(trace.Reached.Keys.Select(p => p.Output));
        foreach (var value in values)
        {
            if (value.Name.Length == 0) continue;
            if (value.IsGraphOutput) return $"'{value.Name}' is also a graph output";
            if (value.Uses.FirstOrDefault(u => !Inside(u.Node)) is { Node: not null } outside)
                return $"'{value.Name}' is also read by {outside.Node}";
        }
        return null;
    }

    private static void Assign(GraphContext context, Projection projection, ProjectionKind kind, Projection down)
    {
        projection.Kind = kind;
        projection.KindSource = KindSource.Structure;
        projection.Reason = null;
        context.DownOf[projection] = down;
    }
}
