using MathNet.Numerics.Distributions;
using MathNet.Numerics.LinearAlgebra;
using SparseOnnx.Pruning.Linear;

namespace SparseOnnx.Pruning.Decomposition;

/// <summary>
/// The leading right singular vectors of a data matrix Z [samples × features] by randomized SVD (Halko,
/// Martinsson and Tropp 2011, algorithm 4.4 with power iterations): a Gaussian sketch Y = ZΩ of C + 10
/// columns, q rounds of Y ← Z(ZᵀY) with re-orthonormalization, then the exact SVD of the small QᵀZ. With
/// fewer features or samples than the sketch it decomposes the Gram matrix exactly instead.
/// </summary>
internal static class RandomizedPca
{
    private const int Oversampling = 10;

    /// <summary>The top <paramref name="components"/> right singular vectors as rows [C × features], and the singular values.</summary>
    public static (RowMatrix Components, double[] SingularValues) Fit(RowMatrix z, int components, int powerIterations, int seed, MatrixProducts products)
    {
        int sketch = components + Oversampling;
        if (sketch >= Math.Min(z.Rows, z.Columns)) return Exact(z, components, products);

        var random = new Random(seed);
        var normal = new Normal(0, 1, random);
        var omega = new RowMatrix(z.Columns, sketch);
        for (int i = 0; i < omega.Data.Length; i++) omega.Data[i] = (float)normal.Sample();
        var q = SymmetricEigen.Orthonormalize(products.Multiply(z, omega), products);
        for (int i = 0; i < powerIterations; i++)
        {
            var back = SymmetricEigen.Orthonormalize(products.TransposeAndMultiply(z, q), products);
            q = SymmetricEigen.Orthonormalize(products.Multiply(z, back), products);
        }
        var b = products.TransposeAndMultiply(q, z); // [l × features]
        return FromSmallFactor(b, components, products);
    }

    /// <summary>Right singular vectors of B [l × features] from the eigendecomposition of BBᵀ: Vᵀ = Σ⁻¹UᵀB.</summary>
    private static (RowMatrix, double[]) FromSmallFactor(RowMatrix b, int components, MatrixProducts products)
    {
        var (values, vectors) = SymmetricEigen.Decompose(products.MultiplyByTranspose(b, b).ToMathNet());
        int kept = Math.Min(components, SymmetricEigen.Rank(values, 1e-10));
        var singular = values.Take(kept).Select(Math.Sqrt).ToArray();
        var projection = Matrix<double>.Build.Dense(kept, b.Rows, (r, c) => vectors[c, r] / singular[r]);
        return (products.Multiply(RowMatrix.FromMathNet(projection), b), singular);
    }

    private static (RowMatrix, double[]) Exact(RowMatrix z, int components, MatrixProducts products)
    {
        if (z.Columns <= z.Rows)
        {
            // Eigenvectors of ZᵀZ are the right singular vectors directly.
            var (values, vectors) = SymmetricEigen.Decompose(products.TransposeAndMultiply(z, z).ToMathNet());
            int kept = Math.Min(components, SymmetricEigen.Rank(values, 1e-10));
            var rows = Matrix<double>.Build.Dense(kept, z.Columns, (r, c) => vectors[c, r]);
            return (RowMatrix.FromMathNet(rows), values.Take(kept).Select(Math.Sqrt).ToArray());
        }
        return FromSmallFactor(z, components, products);
    }
}
