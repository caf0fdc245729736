using SparseOnnx.GraphRewriter.Ir;

namespace SparseOnnx.GraphRewriter.Sparsify;

/// <summary>
/// <c>Y -> Add(Y, v)</c> with v [N] a new initializer of Y's element type: how the spontaneous-neuron rule and
/// the pruning compensation put a calibrated vector after a projection. The Add takes over Y's name
/// (see <see cref="Splice"/>).
/// </summary>
internal static class VectorAdd
{
    /// <summary>
    /// Adds <paramref name="values"/>, stored as <paramref name="type"/> in an initializer named from
    /// <paramref name="vectorNameHint"/>, after <paramref name="output"/>; returns the Add and the vector's tensor.
    /// </summary>
    public static (Node Add, Tensor Vector) After(Model model, Value output, float[] values, DataType type, string vectorNameHint,
        string nodeNameHint, string displacedNameHint)
    {
        var graph = output.Graph ?? throw new InvalidOperationException($"Value '{output.Name}' belongs to no graph.");
        var tensor = new Tensor(model.UniqueName(vectorNameHint), type, [values.Length], new InMemoryTensorData(FloatElements.Encode(values, type)));
        var vector = graph.Initializers.Add(tensor);
        return (Splice.After(model, output, "Add", [vector], nodeNameHint, displacedNameHint), tensor);
    }
}
