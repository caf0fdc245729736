using MathNet.Numerics.LinearAlgebra;

namespace SparseOnnx.Pruning.Linear;

/// <summary>Small symmetric eigendecompositions (MathNet, double precision), eigenvalues descending.</summary>
internal static class SymmetricEigen
{
    /// <summary>Eigenvalues (descending) and the matching unit eigenvectors as the columns of a matrix.</summary>
    public static (double[] Values, Matrix<double> Vectors) Decompose(Matrix<double> symmetric)
    {
        // Symmetrize: products computed in float32 are symmetric only up to rounding.
        var a = (symmetric + symmetric.Transpose()) * 0.5;
        var evd = a.Evd(Symmetricity.Symmetric);
        int n = a.RowCount;
        var order = Enumerable.Range(0, n).OrderByDescending(i => evd.EigenValues[i].Real).ToArray();
        var values = order.Select(i => evd.EigenValues[i].Real).ToArray();
        var vectors = Matrix<double>.Build.Dense(n, n, (r, c) => evd.EigenVectors[r, order[c]]);
        return (values, vectors);
    }

    /// <summary>
    /// How many of the descending <paramref name="values"/> exceed <paramref name="relativeFloor"/> times the
    /// largest: the directions that carry data rather than rounding noise.
    /// </summary>
    public static int Rank(double[] values, double relativeFloor) => values.TakeWhile(v => v > Math.Max(values[0], 1e-30) * relativeFloor).Count();

    /// <summary>
    /// An orthonormal basis of the column space of <paramref name="y"/> [rows × l], as Y·E·Λ^(-1/2) from the
    /// eigendecomposition of YᵀY, applied twice for accuracy (the Gram form of CholeskyQR2): the only large
    /// products are two GEMMs, which run in ONNX Runtime. Directions with eigenvalues below 1e-10 of the
    /// largest are dropped, so the basis may have fewer than l columns.
    /// </summary>
    public static RowMatrix Orthonormalize(RowMatrix y, MatrixProducts products)
    {
        for (int pass = 0; pass < 2; pass++)
        {
            var gram = products.TransposeAndMultiply(y, y).ToMathNet();
            var (values, vectors) = Decompose(gram);
            int rank = Rank(values, 1e-10);
            if (rank == 0) throw new InvalidOperationException("The data has no variance to decompose.");
            var scale = Matrix<double>.Build.Dense(y.Columns, rank, (r, c) => vectors[r, c] / Math.Sqrt(values[c]));
            y = products.Multiply(y, RowMatrix.FromMathNet(scale));
        }
        return y;
    }
}
