using SparseOnnx.GraphRewriter.Ir;

namespace SparseOnnx.GraphRewriter.Autodiff;

/// <summary>
/// Operators that move elements without computing on them. Their backward moves the gradient back: a reshape
/// back to the input's shape, the inverse permutation, a sum over expanded axes, slices of a concatenation,
/// a concatenation of a split, and a slice padded back to its source's shape with zeros.
/// </summary>
internal static class ShapeGradients
{
    public static IEnumerable<KeyValuePair<string, GradientRule>> All =>
    [
        new("Reshape", Reshape), new("Flatten", Reshape), new("Squeeze", Reshape), new("Unsqueeze", Reshape),
        new("Transpose", Transpose), new("Expand", Expand), new("Concat", Concat), new("Split", Split), new("Slice", Slice),
    ];

    private static Value?[] Reshape(GradientEmitter e, Node node, IReadOnlyList<Value?> dy, bool[] wanted) =>
        [e.ReshapeLike(dy[0]!, node.Inputs[0]!), .. new Value?[node.Inputs.Count - 1]];

    // y = transpose(x, perm):  dx = transpose(dy, perm⁻¹); no perm reverses the axes, its own inverse.
    private static Value?[] Transpose(GradientEmitter e, Node node, IReadOnlyList<Value?> dy, bool[] wanted)
    {
        if (node.Attributes["perm"]?.AsInts() is not { } perm) return [e.Op("Transpose", dy[0])];
        var inverse = new long[perm.Length];
        for (int i = 0; i < perm.Length; i++) inverse[perm[i]] = i;
        return [e.Op("Transpose", [dy[0]], OnnxAttribute.Ints("perm", inverse))];
    }

    private static Value?[] Expand(GradientEmitter e, Node node, IReadOnlyList<Value?> dy, bool[] wanted) =>
        [e.Unbroadcast(dy[0]!, node.Inputs[0]!), null];

    // y = concat(x₀, x₁, …) along axis:  dxᵢ = dy[offsetᵢ : offsetᵢ + sizeᵢ] along axis, sizes read at run time.
    private static Value?[] Concat(GradientEmitter e, Node node, IReadOnlyList<Value?> dy, bool[] wanted)
    {
        long axis = node.Attributes.GetInt("axis", 0);
        var axes = e.Ints(axis);
        var result = new Value?[node.Inputs.Count];
        Value? offset = null;
        for (int i = 0; i < node.Inputs.Count; i++)
        {
            var x = node.Inputs[i]!;
            var size = e.Op("Gather", e.ShapeOf(x), axes);
            var start = offset ?? e.Ints(0);
            var end = e.Op("Add", start, size);
            if (wanted[i]) result[i] = e.Op("Slice", dy[0], start, end, axes);
            offset = end;
        }
        return result;
    }

    // [y₀, y₁, …] = split(x) along axis:  dx = concat(dy₀, dy₁, …), zeros for outputs no gradient reached.
    private static Value?[] Split(GradientEmitter e, Node node, IReadOnlyList<Value?> dy, bool[] wanted)
    {
        var parts = node.Outputs.Select((y, i) => dy[i] ?? e.ZerosLike(y)).ToArray();
        var dx = e.Op("Concat", parts, OnnxAttribute.Int("axis", node.Attributes.GetInt("axis", 0)));
        return [dx, .. new Value?[node.Inputs.Count - 1]];
    }

    // y = x[starts:ends] on axes (step 1):  dx = dy padded with zeros back to x's shape; the leading pad on each
    // sliced axis is the normalised start (negative starts count from the end, then clamp to [0, dim]).
    private static Value?[] Slice(GradientEmitter e, Node node, IReadOnlyList<Value?> dy, bool[] wanted)
    {
        if (node.Inputs.Count < 3) throw UnsupportedGradientException.For(node, "it uses the opset-1 attribute form");
        if (node.InputOrNull(4) is { } steps && (GradientEmitter.ConstantInts(steps) is not { } values || values.Any(v => v != 1)))
            throw UnsupportedGradientException.For(node, "its steps are not all 1");
        var x = node.Inputs[0]!;
        var shape = e.ShapeOf(x);
        Value Int64(Value v) => e.Op("Cast", [v], OnnxAttribute.Int("to", (long)DataType.Int64));
        var starts = Int64(node.Inputs[1]!);
        var rank = e.Op("Shape", shape);
        var axes = node.InputOrNull(3) is { } axesInput
            ? Int64(axesInput)
            : e.Op("Range", e.IntScalar(0), e.Op("Squeeze", e.Op("Shape", starts), e.Ints(0)), e.IntScalar(1));
        axes = e.Op("Where", e.Op("Less", axes, e.IntScalar(0)), e.Op("Add", axes, rank), axes);
        var dims = e.Op("Gather", shape, axes);
        var begin = e.Op("Where", e.Op("Less", starts, e.IntScalar(0)), e.Op("Add", starts, dims), starts);
        begin = e.Op("Min", e.Op("Max", begin, e.IntScalar(0)), dims);
        var zeros = e.Op("ConstantOfShape", [rank], OnnxAttribute.FromTensor("value", Tensor.FromElements<long>("zero", DataType.Int64, [1], [0L])));
        var before = e.Op("ScatterElements", [zeros, axes, begin], OnnxAttribute.Int("axis", 0));
        var after = e.Op("Sub", e.Op("Sub", shape, e.Op("Shape", dy[0])), before);
        var dx = e.Op("Pad", [dy[0], e.Op("Concat", [before, after], OnnxAttribute.Int("axis", 0))], OnnxAttribute.String("mode", "constant"));
        return [dx, .. new Value?[node.Inputs.Count - 1]];
    }
}
