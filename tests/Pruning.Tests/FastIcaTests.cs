using SparseOnnx.Pruning.Decomposition;
using SparseOnnx.Pruning.Linear;

namespace SparseOnnx.Pruning.Tests;

public class FastIcaTests
{
    /// <summary>Sparse (Laplacian) sources mixed by a random matrix; FastICA must recover each up to sign and order.</summary>
    [Fact]
    public void RecoversIndependentSourcesFromAMixture()
    {
        const int sources = 4, samples = 20000;
        var random = new Random(3);
        var s = new RowMatrix(sources, samples);
        for (int i = 0; i < s.Data.Length; i++)
        {
            double u = random.NextDouble() - 0.5;
            s.Data[i] = (float)(-Math.Sign(u) * Math.Log(1 - 2 * Math.Abs(u))); // Laplace(0, 1)
        }
        var mixing = new RowMatrix(sources, sources);
        for (int i = 0; i < mixing.Data.Length; i++) mixing.Data[i] = (float)(random.NextDouble() * 2 - 1);
        using var products = new MatrixProducts(1);
        var mixed = products.Multiply(mixing, s);

        var run = FastIca.Run(FastIca.Whiten(mixed, products), seed: 1, maxIterations: 200, tolerance: 1e-5, products);
        Assert.True(run.Converged, $"not converged after {run.Iterations} iterations");

        FunctionalNetworks.ZScoreRows(run.Sources);
        FunctionalNetworks.ZScoreRows(s);
        var correlation = products.MultiplyByTranspose(run.Sources, s);
        for (int i = 0; i < sources; i++)
        {
            double best = Enumerable.Range(0, sources).Max(j => Math.Abs(correlation[i, j]) / samples);
            Assert.True(best > 0.99, $"estimated source {i} matches a true source with |r| = {best:0.###} only");
        }
    }

    [Fact]
    public void SameSeedGivesTheSameRun()
    {
        var random = new Random(5);
        var x = new RowMatrix(3, 500);
        for (int i = 0; i < x.Data.Length; i++) x.Data[i] = (float)Math.Pow(random.NextDouble() * 2 - 1, 3);
        using var products = new MatrixProducts(1);
        var white = FastIca.Whiten(x, products);
        var a = FastIca.Run(white, 7, 50, 1e-6, products);
        var b = FastIca.Run(white, 7, 50, 1e-6, products);
        Assert.Equal(a.Sources.Data, b.Sources.Data);
        Assert.Equal(a.Iterations, b.Iterations);
    }
}
