using MathNet.Numerics.LinearAlgebra;
using SparseOnnx.Pruning.Decomposition;
using SparseOnnx.Pruning.Linear;

namespace SparseOnnx.Pruning.Tests;

public class RandomizedPcaTests
{
    /// <summary>Low-rank data plus noise: the randomized components span the same subspace as MathNet's full SVD.</summary>
    [Theory]
    [InlineData(400, 300, 20)]   // sketch smaller than both sides: the randomized path
    [InlineData(40, 300, 20)]    // fewer samples than the sketch: exact Gram path (samples side)
    [InlineData(400, 25, 10)]    // fewer features than the sketch: exact Gram path (features side)
    public void LeadingComponentsMatchTheFullSvd(int samples, int features, int components)
    {
        var random = new Random(2);
        var left = Matrix<double>.Build.Dense(samples, 8, (_, _) => random.NextDouble() - 0.5);
        var right = Matrix<double>.Build.Dense(8, features, (_, _) => random.NextDouble() - 0.5);
        var data = left * Matrix<double>.Build.DenseOfDiagonalArray([40, 30, 20, 15, 10, 8, 6, 5]) * right
                   + Matrix<double>.Build.Dense(samples, features, (_, _) => 0.01 * (random.NextDouble() - 0.5));
        using var products = new MatrixProducts(1);
        var (rows, singular) = RandomizedPca.Fit(RowMatrix.FromMathNet(data), components, powerIterations: 2, seed: 1, products);

        var svd = data.Svd(computeVectors: true);
        int check = 8; // the signal's rank: beyond it the components are noise and need not agree
        for (int c = 0; c < check; c++)
        {
            Assert.True(Math.Abs(singular[c] - svd.S[c]) < 1e-3 * svd.S[0], $"singular value {c}: {singular[c]} vs {svd.S[c]}");
            double dot = 0;
            for (int f = 0; f < features; f++) dot += rows[c, f] * svd.VT[c, f];
            Assert.True(Math.Abs(Math.Abs(dot) - 1) < 1e-3, $"component {c} overlaps the SVD's with |cos| = {Math.Abs(dot):0.#####}");
        }
        Assert.Equal(Math.Min(components, Math.Min(samples, features)), rows.Rows);
    }
}
