using SparseOnnx.GraphRewriter.Ir;

namespace SparseOnnx.Calibration.Sequential;

/// <summary>
/// A model's weights, counted once: their bytes (what a session or a training graph must hold, for the memory gates)
/// and their elements (the parameters that set a forward pass's cost, for the search's time estimate).
/// </summary>
internal readonly record struct ModelWeights(long Bytes, long Parameters)
{
    public static ModelWeights Of(Model model)
    {
        long bytes = 0, parameters = 0;
        foreach (var initializer in model.Graph.Initializers)
        {
            bytes += initializer.ConstValue!.Data.ByteLength;
            parameters += initializer.ConstValue.ElementCount;
        }
        return new ModelWeights(bytes, parameters);
    }
}
