using SparseOnnx.GraphRewriter.Ir;

namespace SparseOnnx.GraphRewriter.Autodiff;

/// <summary>
/// LayerNormalization (opset 17) over the trailing axes from <c>axis</c>. With x̂ = (x − μ)·r, r = 1/√(σ² + ε),
/// g = dy · scale, the input gradient is
/// <code>dx = r · (g − mean(g) − x̂ · mean(g · x̂))</code>
/// with means over the normalised axes. μ and r are recomputed (the optional Mean / InvStdDev outputs are not
/// required to exist). Scale and bias are weights here; a parameter reaching them is refused.
/// </summary>
internal static class NormalizationGradients
{
    public static IEnumerable<KeyValuePair<string, GradientRule>> All => [new("LayerNormalization", LayerNormalization)];

    private static Value?[] LayerNormalization(GradientEmitter e, Node node, IReadOnlyList<Value?> dy, bool[] wanted)
    {
        if (wanted.Skip(1).Any(w => w)) throw UnsupportedGradientException.For(node, "its scale or bias depends on the parameters");
        if (dy.Skip(1).Any(d => d is not null)) throw UnsupportedGradientException.For(node, "its Mean or InvStdDev output is used on the way to the loss");
        var x = node.Inputs[0]!;
        long axis = node.Attributes.GetInt("axis", -1);
        long[] axes;
        if (axis < 0) axes = Enumerable.Range((int)axis, (int)-axis).Select(a => (long)a).ToArray();
        else if (x.Shape is { } shape) axes = Enumerable.Range((int)axis, shape.Rank - (int)axis).Select(a => (long)a).ToArray();
        else throw UnsupportedGradientException.For(node, "it normalises from a positive axis of an input whose rank is not declared");
        float epsilon = node.Attributes.GetFloat("epsilon", 1e-5f);
        Value Mean(Value v) => e.ReduceMean(v, axes);
        var centered = e.Op("Sub", x, Mean(x));
        var rstd = e.Op("Reciprocal", e.Op("Sqrt", e.Op("Add", Mean(e.Op("Mul", centered, centered)), e.Scalar(epsilon))));
        var normalized = e.Op("Mul", centered, rstd);
        var g = e.Op("Mul", dy[0], node.Inputs[1]);
        var dx = e.Op("Mul", rstd, e.Op("Sub", e.Op("Sub", g, Mean(g)), e.Op("Mul", normalized, Mean(e.Op("Mul", g, normalized)))));
        return [dx, .. new Value?[node.Inputs.Count - 1]];
    }
}
