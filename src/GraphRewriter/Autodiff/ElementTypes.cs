using SparseOnnx.GraphRewriter.Ir;

namespace SparseOnnx.GraphRewriter.Autodiff;

/// <summary>
/// The element type of every value in a graph, inferred forward from inputs, initializers and the operators'
/// type rules. Exporters rarely declare intermediate types, and differentiation needs them: only float
/// tensors carry gradients, so a comparison (bool), a Shape (int64) or a Cast to an integer type cuts the
/// dependency on a parameter, which is what keeps masks, positions and shape arithmetic out of the backward graph.
/// </summary>
public static class ElementTypes
{
    /// <summary>Element types of the values of <paramref name="graph"/> that a rule or a declaration determines.</summary>
    public static Dictionary<Value, DataType> Infer(Graph graph)
    {
        var types = new Dictionary<Value, DataType>();
        foreach (var input in graph.Inputs) if (input.ElementType is { } t) types[input] = t;
        foreach (var initializer in graph.Initializers) if (initializer.ElementType is { } t) types[initializer] = t;
        foreach (var node in graph.TopologicalOrder())
        {
            for (int i = 0; i < node.Outputs.Count; i++)
            {
                var output = node.Outputs[i];
                if (OutputType(node, i, v => v is not null && types.TryGetValue(v, out var t) ? t : null) is { } type) types[output] = type;
            }
        }
        return types;
    }

    private static DataType? OutputType(Node node, int index, Func<Value?, DataType?> typeOf)
    {
        if (!node.IsStandardDomain) return node.Outputs[index].ElementType ?? typeOf(node.InputOrNull(0));
        switch (node.OpType)
        {
            case "Shape" or "Size" or "NonZero" or "ArgMax" or "ArgMin":
                return DataType.Int64;
            case "Equal" or "Greater" or "Less" or "GreaterOrEqual" or "LessOrEqual" or "Not" or "And" or "Or" or "Xor" or "IsNaN" or "IsInf":
                return DataType.Bool;
            case "Cast":
                return (DataType)node.Attributes.GetInt("to", (long)DataType.Undefined);
            case "CastLike":
                return typeOf(node.InputOrNull(1));
            case "Constant":
                return ConstantType(node);
            case "ConstantOfShape":
                return node.Attributes["value"] is { Kind: AttributeKind.Tensor } value ? value.AsTensor().DataType : DataType.Float;
            case "TopK":
                return index == 1 ? DataType.Int64 : typeOf(node.InputOrNull(0));
            case "Where":
                return typeOf(node.InputOrNull(1));
            default:
                return node.Outputs[index].ElementType ?? typeOf(node.InputOrNull(0));
        }
    }

    private static DataType? ConstantType(Node node)
    {
        foreach (var attribute in node.Attributes)
            switch (attribute.Name)
            {
                case "value": return attribute.AsTensor().DataType;
                case "value_float" or "value_floats": return DataType.Float;
                case "value_int" or "value_ints": return DataType.Int64;
                case "value_string" or "value_strings": return DataType.String;
            }
        return null;
    }
}
