using SparseOnnx.GraphRewriter.Ir;

namespace SparseOnnx.GraphRewriter.Autodiff;

/// <summary>
/// Elementwise arithmetic with numpy broadcasting. For y = f(a, b) each operand's gradient is the
/// elementwise partial times dy, summed back over the axes that operand was broadcast along
/// (<see cref="GradientEmitter.Unbroadcast"/>).
/// </summary>
internal static class ArithmeticGradients
{
    public static IEnumerable<KeyValuePair<string, GradientRule>> All =>
    [
        new("Add", Add), new("Sub", Sub), new("Mul", Mul), new("Div", Div), new("Sum", Sum),
        new("Neg", Neg), new("Pow", Pow), new("Sqrt", Sqrt), new("Reciprocal", Reciprocal),
        new("Exp", Exp), new("Log", Log), new("Abs", Abs),
        new("Identity", Identity), new("Cast", Cast), new("Where", Where),
    ];

    private static Value In(Node node, int i) => node.Inputs[i] ?? throw UnsupportedGradientException.For(node, $"input {i} is missing");

    // y = a + b:  da = dy, db = dy
    private static Value?[] Add(GradientEmitter e, Node node, IReadOnlyList<Value?> dy, bool[] wanted) =>
    [
        wanted[0] ? e.Unbroadcast(dy[0]!, In(node, 0)) : null,
        wanted[1] ? e.Unbroadcast(dy[0]!, In(node, 1)) : null,
    ];

    // y = a − b:  da = dy, db = −dy
    private static Value?[] Sub(GradientEmitter e, Node node, IReadOnlyList<Value?> dy, bool[] wanted) =>
    [
        wanted[0] ? e.Unbroadcast(dy[0]!, In(node, 0)) : null,
        wanted[1] ? e.Unbroadcast(e.Op("Neg", dy[0]), In(node, 1)) : null,
    ];

    // y = a · b:  da = dy · b, db = dy · a
    private static Value?[] Mul(GradientEmitter e, Node node, IReadOnlyList<Value?> dy, bool[] wanted) =>
    [
        wanted[0] ? e.Unbroadcast(e.Op("Mul", dy[0], In(node, 1)), In(node, 0)) : null,
        wanted[1] ? e.Unbroadcast(e.Op("Mul", dy[0], In(node, 0)), In(node, 1)) : null,
    ];

    // y = a / b:  da = dy / b, db = −dy · y / b
    private static Value?[] Div(GradientEmitter e, Node node, IReadOnlyList<Value?> dy, bool[] wanted)
    {
        var b = In(node, 1);
        var scaled = e.Op("Div", dy[0], b);
        return
        [
            wanted[0] ? e.Unbroadcast(scaled, In(node, 0)) : null,
            wanted[1] ? e.Unbroadcast(e.Op("Neg", e.Op("Mul", scaled, node.Outputs[0])), b) : null,
        ];
    }

    // y = Σ inputs (broadcast):  d input_i = dy
    private static Value?[] Sum(GradientEmitter e, Node node, IReadOnlyList<Value?> dy, bool[] wanted) =>
        node.Inputs.Select((input, i) => wanted[i] ? e.Unbroadcast(dy[0]!, input!) : null).ToArray();

    private static Value?[] Neg(GradientEmitter e, Node node, IReadOnlyList<Value?> dy, bool[] wanted) => [e.Op("Neg", dy[0])];

    // y = a^p with p a constant:  da = dy · p · a^(p−1)   (p = 2, the RMSNorm square, as dy · 2a)
    private static Value?[] Pow(GradientEmitter e, Node node, IReadOnlyList<Value?> dy, bool[] wanted)
    {
        if (wanted[1]) throw UnsupportedGradientException.For(node, "the exponent depends on the parameters");
        var a = In(node, 0);
        var exponent = In(node, 1);
        Value partial;
        if (GradientEmitter.ConstantFloats(exponent) is [var p])
        {
            if (p == 1f) return [e.Unbroadcast(dy[0]!, a), null];
            partial = p == 2f ? e.Op("Mul", a, e.Scalar(2f)) : e.Op("Mul", e.Op("Pow", a, e.Scalar(p - 1f)), e.Scalar(p));
        }
        else
        {
            var p32 = e.Op("Cast", [exponent], OnnxAttribute.Int("to", (long)DataType.Float));
            partial = e.Op("Mul", e.Op("Pow", a, e.Op("Sub", p32, e.Scalar(1f))), p32);
        }
        return [e.Unbroadcast(e.Op("Mul", dy[0], partial), a), null];
    }

    // y = √a:  da = dy / (2y)
    private static Value?[] Sqrt(GradientEmitter e, Node node, IReadOnlyList<Value?> dy, bool[] wanted) =>
        [e.Op("Div", dy[0], e.Op("Mul", node.Outputs[0], e.Scalar(2f)))];

    // y = 1/a:  da = −dy · y²
    private static Value?[] Reciprocal(GradientEmitter e, Node node, IReadOnlyList<Value?> dy, bool[] wanted)
    {
        var y = node.Outputs[0];
        return [e.Op("Neg", e.Op("Mul", dy[0], e.Op("Mul", y, y)))];
    }

    // y = exp(a):  da = dy · y
    private static Value?[] Exp(GradientEmitter e, Node node, IReadOnlyList<Value?> dy, bool[] wanted) => [e.Op("Mul", dy[0], node.Outputs[0])];

    // y = log(a):  da = dy / a
    private static Value?[] Log(GradientEmitter e, Node node, IReadOnlyList<Value?> dy, bool[] wanted) => [e.Op("Div", dy[0], In(node, 0))];

    // y = |a|:  da = dy · sign(a)
    private static Value?[] Abs(GradientEmitter e, Node node, IReadOnlyList<Value?> dy, bool[] wanted) => [e.Op("Mul", dy[0], e.Op("Sign", In(node, 0)))];

    private static Value?[] Identity(GradientEmitter e, Node node, IReadOnlyList<Value?> dy, bool[] wanted) => [dy[0]];

    // A float-to-float Cast; the gradient goes back in float32, the only type parameters have.
    private static Value?[] Cast(GradientEmitter e, Node node, IReadOnlyList<Value?> dy, bool[] wanted)
    {
        if ((DataType)node.Attributes.GetInt("to", 0) != DataType.Float)
            throw UnsupportedGradientException.For(node, "it casts to a type other than float32");
        return [dy[0]];
    }

    // y = where(c, a, b):  da = where(c, dy, 0), db = where(c, 0, dy); the condition has no gradient.
    private static Value?[] Where(GradientEmitter e, Node node, IReadOnlyList<Value?> dy, bool[] wanted)
    {
        var condition = In(node, 0);
        var zero = e.Scalar(0f);
        return
        [
            null,
            wanted[1] ? e.Unbroadcast(e.Op("Where", condition, dy[0], zero), In(node, 1)) : null,
            wanted[2] ? e.Unbroadcast(e.Op("Where", condition, zero, dy[0]), In(node, 2)) : null,
        ];
    }
}
