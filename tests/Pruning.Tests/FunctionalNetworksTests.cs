using SparseOnnx.Pruning.Decomposition;
using SparseOnnx.Pruning.Linear;

namespace SparseOnnx.Pruning.Tests;

public class FunctionalNetworksTests
{
    /// <summary>
    /// Eight networks of ten neurons each (neurons 0–79; a network's neurons fire together), 119 neurons of
    /// independent noise and one dead neuron: with one component per network, the networks' members must score
    /// highest, and the dead neuron lowest.
    /// </summary>
    [Fact]
    public void NetworkMembersScoreAboveUnstructuredNeurons()
    {
        const int tokens = 3000, neurons = 200;
        var random = new Random(4);
        var data = new RowMatrix(tokens, neurons);
        for (int t = 0; t < tokens; t++)
        {
            var sources = Enumerable.Range(0, 8).Select(_ => Sparse(random)).ToArray();
            for (int j = 0; j < neurons; j++)
            {
                double noise = 0.5 * (random.NextDouble() - 0.5);
                data[t, j] = (float)(j < 80 ? 2 * sources[j / 10] + noise : j == neurons - 1 ? 0 : random.NextDouble() - 0.5);
            }
        }
        using var products = new MatrixProducts(1);
        var networks = FunctionalNetworks.Decompose(data, new IcaOptions { Components = 8, Restarts = 3, Seed = 1 }, products);

        var ranked = Enumerable.Range(0, neurons).OrderByDescending(j => networks.Scores[j]).ToList();
        Assert.True(ranked.Take(80).All(j => j < 80), $"top 80 by score: {string.Join(", ", ranked.Take(80))}");
        Assert.Equal(neurons - 1, ranked[^1]);
        Assert.True(networks.Converged);
        Assert.Equal(8, networks.Components);
        // Every restart finds the same eight networks (up to order and sign).
        Assert.True(networks.Stability > 0.95, $"stability {networks.Stability}");
    }

    [Fact]
    public void TheSameSeedGivesTheSameScores()
    {
        var random = new Random(9);
        var data = new RowMatrix(500, 60);
        for (int i = 0; i < data.Data.Length; i++) data.Data[i] = (float)Sparse(random);
        using var products = new MatrixProducts(1);
        var options = new IcaOptions { Components = 8, Restarts = 2, Seed = 3 };
        var a = FunctionalNetworks.Decompose(new RowMatrix(500, 60, (float[])data.Data.Clone()), options, products);
        var b = FunctionalNetworks.Decompose(new RowMatrix(500, 60, (float[])data.Data.Clone()), options, products);
        Assert.Equal(a.Scores, b.Scores);
    }

    private static double Sparse(Random random) => random.NextDouble() < 0.1 ? random.NextDouble() * 4 : 0;
}
