using SparseOnnx.GraphRewriter.Ir;

namespace SparseOnnx.GraphRewriter.Sparsify;

/// <summary>
/// Injects the spontaneous-neuron term after a sparsified projection:
/// <code>Y -> Add(Y, s)</code>
/// where <c>s</c> [N] is a new initializer named after the projection (<c>&lt;node&gt;.spontaneous</c>), in the
/// projection's element type. Sparsifying the input drops its small entries, which shifts every output
/// neuron by what they would have contributed; <c>s</c> is each neuron's resting rate that stands in for
/// them, measured by calibration on real text. Until calibrated it is zero, so the Add changes nothing but
/// gives calibration a named place to write to. The Add takes over Y's name (see <see cref="Splice"/>).
/// </summary>
internal static class SpontaneousNeuronRule
{
    public const string RuleName = "SpontaneousNeurons";

    /// <summary>
    /// Inserts the Add after <paramref name="output"/> (the result of the projection <paramref name="projectionName"/>,
    /// [..., <paramref name="outFeatures"/>] of <paramref name="type"/>) and returns it. <paramref name="values"/> is the
    /// calibrated vector [N], or null for zeros; <paramref name="calibration"/> says where it came from.
    /// </summary>
    public static Node Apply(Model model, Value output, string projectionName, long outFeatures, DataType type, float[]? values, string calibration)
    {
        if (values is not null && values.Length != outFeatures)
            throw new ArgumentException($"{values.Length} spontaneous values for a projection with {outFeatures} outputs.", nameof(values));
        var (add, tensor) = VectorAdd.After(model, output, values ?? new float[outFeatures], type, projectionName + ".spontaneous",
            projectionName + "/spontaneous", output.Name + ".sparse");
        tensor.MetadataProps.Add(new(TopKSparseMatMulOp.MetadataPrefix + "calibration", calibration));
        add.MetadataProps.Add(new(TopKSparseMatMulOp.MetadataPrefix + "rule", RuleName));
        add.MetadataProps.Add(new(TopKSparseMatMulOp.MetadataPrefix + "projection", projectionName));
        add.MetadataProps.Add(new(TopKSparseMatMulOp.MetadataPrefix + "calibration", calibration));
        return add;
    }
}
