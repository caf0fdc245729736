using SparseOnnx.GraphRewriter.Ir;

namespace SparseOnnx.GraphRewriter.Autodiff;

/// <summary>
/// ReduceSum and ReduceMean: the gradient is dy broadcast back over the reduced axes (divided by the
/// number of reduced elements for the mean). Axes come from the attribute (older opsets) or a constant input.
/// </summary>
internal static class ReductionGradients
{
    public static IEnumerable<KeyValuePair<string, GradientRule>> All => [new("ReduceSum", Sum), new("ReduceMean", Mean)];

    private static Value?[] Sum(GradientEmitter e, Node node, IReadOnlyList<Value?> dy, bool[] wanted) => [Spread(e, node, dy[0]!)];

    private static Value?[] Mean(GradientEmitter e, Node node, IReadOnlyList<Value?> dy, bool[] wanted)
    {
        var spread = Spread(e, node, dy[0]!);
        if (ReferenceEquals(spread, dy[0])) return [spread];
        // 1 / (number of elements reduced into each output) = size(y) / size(x)
        var ratio = e.Op("Div",
            e.Op("Cast", [e.Op("Size", node.Outputs[0])], OnnxAttribute.Int("to", (long)DataType.Float)),
            e.Op("Cast", [e.Op("Size", node.Inputs[0])], OnnxAttribute.Int("to", (long)DataType.Float)));
        return [e.Op("Mul", spread, ratio)];
    }

    /// <summary>dy with the reduced axes restored (when keepdims = 0) and expanded to the input's shape.</summary>
    private static Value Spread(GradientEmitter e, Node node, Value dy)
    {
        var x = node.Inputs[0]!;
        long[]? axes = node.Attributes["axes"]?.AsInts().ToArray();
        if (axes is null && node.InputOrNull(1) is { } axesInput)
            axes = GradientEmitter.ConstantInts(axesInput) ?? throw UnsupportedGradientException.For(node, "its axes are computed at run time");
        bool keepDims = node.Attributes.GetInt("keepdims", 1) != 0;
        if (axes is { Length: 0 } && node.Attributes.GetInt("noop_with_empty_axes", 0) != 0) return dy;
        var restored = keepDims || axes is null or { Length: 0 } ? dy : e.Op("Unsqueeze", dy, e.Ints(axes));
        return e.Op("Expand", restored, e.ShapeOf(x));
    }
}
