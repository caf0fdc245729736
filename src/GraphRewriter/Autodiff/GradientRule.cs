using SparseOnnx.GraphRewriter.Ir;

namespace SparseOnnx.GraphRewriter.Autodiff;

/// <summary>
/// The backward of one operator: given the gradients of the node's outputs (null where no gradient reaches an
/// output) and which inputs need one, returns the gradient of each input (null where not wanted). Rules build
/// with <paramref name="emit"/> and may read the node's forward inputs and outputs, which stay alive for the
/// backward pass as in any reverse-mode autodiff.
/// </summary>
public delegate Value?[] GradientRule(GradientEmitter emit, Node node, IReadOnlyList<Value?> outputGradients, bool[] wanted);

/// <summary>An operator on the path from the parameters to the loss has no gradient rule, or a form the rule does not handle.</summary>
public sealed class UnsupportedGradientException : SparseOnnxException
{
    /// <summary>Creates the exception.</summary>
    public UnsupportedGradientException(string message) : base(message) { }

    internal static UnsupportedGradientException For(Node node, string why) =>
        new($"cannot differentiate {node.OpType} node '{node.Name}': {why}");
}

/// <summary>The gradient rules, by standard-domain operator type.</summary>
public static class GradientRules
{
    private static readonly Dictionary<string, GradientRule> Rules = new(StringComparer.Ordinal);

    static GradientRules()
    {
        Rules.Register(ArithmeticGradients.All);
        Rules.Register(ActivationGradients.All);
        Rules.Register(ReductionGradients.All);
        Rules.Register(MatMulGradients.All);
        Rules.Register(ShapeGradients.All);
        Rules.Register(NormalizationGradients.All);
    }

    private static void Register(this Dictionary<string, GradientRule> rules, IEnumerable<KeyValuePair<string, GradientRule>> family)
    {
        foreach (var (op, rule) in family) rules.Add(op, rule);
    }

    /// <summary>The operators that have a gradient rule.</summary>
    public static IReadOnlyCollection<string> Supported => Rules.Keys;

    /// <summary>The rule for <paramref name="node"/>, or null.</summary>
    public static GradientRule? For(Node node) => node.IsStandardDomain && Rules.TryGetValue(node.OpType, out var rule) ? rule : null;
}
