using SparseOnnx.GraphRewriter.Pruning;
using SparseOnnx.Pruning.Capture;
using SparseOnnx.Pruning.Decomposition;
using SparseOnnx.Pruning.Linear;

namespace SparseOnnx.Pruning.Importance;

/// <summary>Per-neuron scores of one MLP block under each <see cref="PruneMethod"/>: higher means keep.</summary>
internal static class NeuronScores
{
    /// <summary>
    /// Scores <paramref name="block"/>'s neurons from <paramref name="measured"/> (its captured activations).
    /// ICA needs <paramref name="products"/> and returns its decomposition in <paramref name="networks"/>.
    /// </summary>
    public static double[] Of(MlpBlock block, LayerActivations measured, PruneOptions options, MatrixProducts? products, out LayerNetworks? networks)
    {
        networks = null;
        switch (options.Method)
        {
            case PruneMethod.Ica:
                // A different seed per layer, so restarts do not start every layer from the same matrices.
                networks = FunctionalNetworks.Decompose(measured.ReadSample(), options.Ica with { Seed = options.Ica.Seed + block.Layer },
                    products ?? throw new ArgumentNullException(nameof(products)),
                    options.IcaScore == IcaScore.Output ? MlpBlockWeights.DownRowNorms(block) : null);
                if (options.IcaScore != IcaScore.Weighted) return networks.Scores;
                var spread = measured.StandardDeviations;
                var rows = MlpBlockWeights.DownRowNorms(block);
                return networks.Scores.Select((z, j) => z * spread[j] * rows[j]).ToArray();
            case PruneMethod.Magnitude:
                return MlpBlockWeights.NeuronNorms(block);
            default:
                var rowNorms = MlpBlockWeights.DownRowNorms(block);
                return rowNorms.Select((r, j) => r * measured.Norms[j]).ToArray();
        }
    }
}
