using SparseOnnx.GraphRewriter.Ir;

namespace SparseOnnx.GraphRewriter.Analysis.Projections;

/// <summary>
/// How the classifier treats operators when it follows data through a graph. Only the inputs that carry
/// activations are followed (a Reshape's shape input is not), so shape computations never link unrelated
/// parts of a model.
/// </summary>
internal static class OpCategories
{
    /// <summary>Ops that only move or reinterpret data: transposes, reshapes, slices, splits, casts, concatenation.</summary>
    private static readonly HashSet<string> DataMovement = new(StringComparer.Ordinal)
    {
        "Reshape", "Transpose", "Squeeze", "Unsqueeze", "Flatten", "Identity", "Cast", "CastLike", "Expand",
        "Slice", "Split", "Gather", "Concat", "Dropout", "Tile",
    };

    /// <summary>Elementwise arithmetic (applied with constants or between activations).</summary>
    private static readonly HashSet<string> Elementwise = new(StringComparer.Ordinal)
    {
        "Add", "Sub", "Mul", "Div", "Neg", "Pow", "Sqrt", "Reciprocal", "Abs", "Where", "Max", "Min", "Clip",
        "Sin", "Cos",
    };

    /// <summary>Nonlinear activations (what distinguishes an MLP's gate branch from its linear branch).</summary>
    private static readonly HashSet<string> Activations = new(StringComparer.Ordinal)
    {
        "Sigmoid", "Tanh", "Erf", "Relu", "Gelu", "Elu", "Selu", "LeakyRelu", "Softplus", "Softsign", "HardSigmoid",
        "HardSwish", "Mish", "Exp", "Celu", "ThresholdedRelu", "PRelu", "Silu", "FastGelu", "QuickGelu", "BiasGelu",
    };

    /// <summary>Fused attention operators, with the input positions of query, key and value.</summary>
    internal static readonly Dictionary<(string Domain, string OpType), (int Query, int Key, int Value)> FusedAttention = new()
    {
        [("com.microsoft", "GroupQueryAttention")] = (0, 1, 2),
        [("com.microsoft", "MultiHeadAttention")] = (0, 1, 2),
        [("com.microsoft", "PackedMultiHeadAttention")] = (0, 1, 2),
        [("com.microsoft", "SparseAttention")] = (0, 1, 2),
        [("", "Attention")] = (0, 1, 2),
        [("ai.onnx", "Attention")] = (0, 1, 2),
    };

    /// <summary>Ops from Microsoft's contrib domain that are elementwise or data movement on their first input.</summary>
    private static readonly HashSet<string> ContribTransparent = new(StringComparer.Ordinal)
    {
        "RotaryEmbedding", "FastGelu", "QuickGelu", "BiasGelu", "Gelu", "BiasAdd",
    };

    private static string StandardDomain(Node node) => node.Domain is "ai.onnx" ? "" : node.Domain;

    /// <summary>True for ops that only move data (follow activations through them freely).</summary>
    public static bool IsDataMovement(Node node) => node.IsStandardDomain && DataMovement.Contains(node.OpType);

    /// <summary>True for elementwise arithmetic or activations (data flows through, values change).</summary>
    public static bool IsElementwise(Node node) =>
        (node.IsStandardDomain && (Elementwise.Contains(node.OpType) || Activations.Contains(node.OpType)))
        || (node.Domain == "com.microsoft" && ContribTransparent.Contains(node.OpType));

    /// <summary>True for nonlinear activations.</summary>
    public static bool IsActivation(Node node) =>
        (node.IsStandardDomain || node.Domain == "com.microsoft") && Activations.Contains(node.OpType);

    /// <summary>True for Softmax (explicit attention cores).</summary>
    public static bool IsSoftmax(Node node) => node.IsStandardDomain && node.OpType is "Softmax";

    /// <summary>Fused attention input roles, when <paramref name="node"/> is a fused attention op.</summary>
    public static (int Query, int Key, int Value)? FusedAttentionRoles(Node node) =>
        FusedAttention.TryGetValue((StandardDomain(node), node.OpType), out var roles) ? roles : null;

    /// <summary>
    /// The input positions that carry activations (as opposed to shapes, indices, axes) for a transparent op;
    /// empty for ops the tracer must not pass.
    /// </summary>
    public static IEnumerable<int> DataInputs(Node node)
    {
        if (node.IsStandardDomain)
        {
            switch (node.OpType)
            {
                case "Concat" or "Add" or "Sub" or "Mul" or "Div" or "Max" or "Min":
                    return Enumerable.Range(0, node.Inputs.Count);
                case "Where":
                    return [1, 2];
                case "Pow" or "Clip" or "PRelu":
                    return [0];
            }
            if (DataMovement.Contains(node.OpType) || Elementwise.Contains(node.OpType) || Activations.Contains(node.OpType))
                return [0];
            return [];
        }
        if (node.Domain == "com.microsoft" && ContribTransparent.Contains(node.OpType)) return [0];
        return [];
    }

    /// <summary>True when the tracer may pass through <paramref name="node"/> from its input <paramref name="index"/>.</summary>
    public static bool IsDataInput(Node node, int index) => DataInputs(node).Contains(index);
}
