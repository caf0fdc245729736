using SparseOnnx.GraphRewriter.Analysis.Projections;
using SparseOnnx.GraphRewriter.Ir;
using SparseOnnx.GraphRewriter.Sparsify;

namespace SparseOnnx.GraphRewriter.Pruning;

/// <summary>
/// Per-neuron views of an MLP block's weights, whatever their stored layout: the numbers importance scores and
/// compensation need. Each call decodes one weight at a time (float32, float16 or bfloat16).
/// </summary>
public static class MlpBlockWeights
{
    /// <summary>‖W_down[j, :]‖₂ for every neuron j.</summary>
    public static double[] DownRowNorms(MlpBlock block)
    {
        var norms = new double[block.Width];
        AccumulateSquares(block.Down, block.Width, neuronsAreOutputs: false, norms);
        for (int j = 0; j < norms.Length; j++) norms[j] = Math.Sqrt(norms[j]);
        return norms;
    }

    /// <summary>
    /// The L2 norm of every weight neuron j owns: its columns of gate and up (both halves of a fused gate_up)
    /// and its row of down. Structured magnitude pruning ranks neurons by this group norm.
    /// </summary>
    public static double[] NeuronNorms(MlpBlock block)
    {
        var squares = new double[block.Width];
        foreach (var feeder in block.Feeders) AccumulateSquares(feeder, block.Width, neuronsAreOutputs: true, squares);
        AccumulateSquares(block.Down, block.Width, neuronsAreOutputs: false, squares);
        for (int j = 0; j < squares.Length; j++) squares[j] = Math.Sqrt(squares[j]);
        return squares;
    }

    /// <summary>Σ_j coefficients[j] · W_down[j, :] ([down's N]): the removed neurons' mean contribution when the coefficients are their means.</summary>
    public static float[] DownRowCombination(MlpBlock block, IReadOnlyList<double> coefficients)
    {
        if (coefficients.Count != block.Width) throw new ArgumentException($"{block.Name} has {block.Width} neurons, not {coefficients.Count}.");
        var down = block.Down;
        var weight = Decode(down);
        long n = down.OutFeatures, h = block.Width;
        var sum = new double[n];
        for (long j = 0; j < h; j++)
        {
            double c = coefficients[(int)j];
            if (c == 0) continue;
            for (long o = 0; o < n; o++)
                sum[o] += c * weight[down.WeightStoredTransposed ? o * h + j : j * n + o];
        }
        return sum.Select(v => (float)v).ToArray();
    }

    /// <summary>Adds the squares of neuron j's weights in <paramref name="projection"/> to squares[j] (j mod Width for a fused gate_up).</summary>
    private static void AccumulateSquares(Projection projection, long width, bool neuronsAreOutputs, double[] squares)
    {
        var weight = Decode(projection);
        long k = projection.InFeatures, n = projection.OutFeatures;
        for (long i = 0; i < k; i++)
            for (long o = 0; o < n; o++)
            {
                float w = weight[projection.WeightStoredTransposed ? o * k + i : i * n + o];
                squares[(neuronsAreOutputs ? o : i) % width] += (double)w * w;
            }
    }

    private static float[] Decode(Projection projection)
    {
        var tensor = ProjectionFinder.ConstantTensor(projection.Weight)
            ?? throw new InvalidOperationException($"The weight of {projection.DisplayName} is not a constant.");
        if (!FloatElements.IsSupported(tensor.DataType))
            throw new InvalidOperationException($"The weight of {projection.DisplayName} is {tensor.DataType.DisplayName()}; pruning reads float weights.");
        using var lease = tensor.Data.Acquire();
        return FloatElements.Decode(lease.Span, tensor.DataType);
    }
}
