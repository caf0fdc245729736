using SparseOnnx.GraphRewriter.Ir;

namespace SparseOnnx.GraphRewriter.Autodiff;

/// <summary>Activations and the softmax family, written with their outputs where that is cheapest (σ' = σ(1 − σ)).</summary>
internal static class ActivationGradients
{
    public static IEnumerable<KeyValuePair<string, GradientRule>> All =>
    [
        new("Sigmoid", Sigmoid), new("Tanh", Tanh), new("Erf", Erf), new("Relu", Relu),
        new("Softmax", Softmax), new("LogSoftmax", LogSoftmax),
    ];

    // y = σ(a):  da = dy · y · (1 − y)
    private static Value?[] Sigmoid(GradientEmitter e, Node node, IReadOnlyList<Value?> dy, bool[] wanted)
    {
        var y = node.Outputs[0];
        return [e.Op("Mul", dy[0], e.Op("Mul", y, e.Op("Sub", e.Scalar(1f), y)))];
    }

    // y = tanh(a):  da = dy · (1 − y²)
    private static Value?[] Tanh(GradientEmitter e, Node node, IReadOnlyList<Value?> dy, bool[] wanted)
    {
        var y = node.Outputs[0];
        return [e.Op("Mul", dy[0], e.Op("Sub", e.Scalar(1f), e.Op("Mul", y, y)))];
    }

    // y = erf(a):  da = dy · 2/√π · exp(−a²)
    private static Value?[] Erf(GradientEmitter e, Node node, IReadOnlyList<Value?> dy, bool[] wanted)
    {
        var a = node.Inputs[0]!;
        var gaussian = e.Op("Exp", e.Op("Neg", e.Op("Mul", a, a)));
        return [e.Op("Mul", dy[0], e.Op("Mul", gaussian, e.Scalar((float)(2 / Math.Sqrt(Math.PI)))))];
    }

    // y = max(a, 0):  da = dy where a > 0
    private static Value?[] Relu(GradientEmitter e, Node node, IReadOnlyList<Value?> dy, bool[] wanted) =>
        [e.Op("Where", e.Op("Greater", node.Inputs[0], e.Scalar(0f)), dy[0], e.Scalar(0f))];

    // From opset 13 (which differentiation requires) `axis` is the one axis normalised over, default −1.
    private static long Axis(Node node) => node.Attributes.GetInt("axis", -1);

    // y = softmax(a) along axis:  da = y · (dy − Σ_axis dy · y)
    private static Value?[] Softmax(GradientEmitter e, Node node, IReadOnlyList<Value?> dy, bool[] wanted)
    {
        var y = node.Outputs[0];
        var dot = e.Op("ReduceSum", [e.Op("Mul", dy[0], y), e.Ints(Axis(node))], OnnxAttribute.Int("keepdims", 1));
        return [e.Op("Mul", y, e.Op("Sub", dy[0], dot))];
    }

    // y = log softmax(a) along axis:  da = dy − exp(y) · Σ_axis dy
    private static Value?[] LogSoftmax(GradientEmitter e, Node node, IReadOnlyList<Value?> dy, bool[] wanted)
    {
        var total = e.Op("ReduceSum", [dy[0], e.Ints(Axis(node))], OnnxAttribute.Int("keepdims", 1));
        return [e.Op("Sub", dy[0], e.Op("Mul", e.Op("Exp", node.Outputs[0]), total))];
    }
}
