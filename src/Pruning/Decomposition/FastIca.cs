using System.Numerics.Tensors;
using MathNet.Numerics.Distributions;
using MathNet.Numerics.LinearAlgebra;
using SparseOnnx.Pruning.Linear;

namespace SparseOnnx.Pruning.Decomposition;

/// <summary>The result of one FastICA run.</summary>
/// <param name="Sources">The estimated independent components, one per row [C × samples].</param>
/// <param name="Iterations">Fixed-point iterations run.</param>
/// <param name="Converged">Whether the unmixing matrix converged within the iteration limit.</param>
internal sealed record IcaRun(RowMatrix Sources, int Iterations, bool Converged);

/// <summary>
/// Symmetric (parallel) FastICA with the cube non-linearity, g(u) = u³ (Hyvärinen 1999, the kurtosis
/// fixed point): on whitened data X [C × samples] it iterates
/// <code>
/// W ← E[g(WX) Xᵀ] − diag(E[g'(WX)]) W,   W ← (WWᵀ)^(-1/2) W
/// </code>
/// from a seeded random start until every row's direction changes by less than the tolerance
/// (max |1 − |⟨w_new, w_old⟩|| &lt; tol). The two C × samples products per iteration run as GEMMs.
/// </summary>
internal static class FastIca
{
    /// <summary>Whitens <paramref name="data"/> [C × samples] (rows centred over the samples, decorrelated to unit variance).</summary>
    public static RowMatrix Whiten(RowMatrix data, MatrixProducts products)
    {
        var centred = new RowMatrix(data.Rows, data.Columns, (float[])data.Data.Clone());
        for (int r = 0; r < centred.Rows; r++)
        {
            var row = centred.Row(r);
            float mean = TensorPrimitives.Sum(row) / row.Length;
            TensorPrimitives.Subtract(row, mean, row);
        }
        var covariance = products.MultiplyByTranspose(centred, centred).ToMathNet() / centred.Columns;
        var (values, vectors) = SymmetricEigen.Decompose(covariance);
        int rank = values.TakeWhile(v => v > Math.Max(values[0], 1e-30) * 1e-8).Count();
        var whitening = Matrix<double>.Build.Dense(rank, data.Rows, (r, c) => vectors[c, r] / Math.Sqrt(values[r]));
        return products.Multiply(RowMatrix.FromMathNet(whitening), centred);
    }

    /// <summary>Runs FastICA on whitened <paramref name="x"/> [C × samples] from the start drawn with <paramref name="seed"/>.</summary>
    public static IcaRun Run(RowMatrix x, int seed, int maxIterations, double tolerance, MatrixProducts products)
    {
        int c = x.Rows, samples = x.Columns;
        var normal = new Normal(0, 1, new Random(seed));
        var w = Decorrelate(Matrix<double>.Build.Dense(c, c, (_, _) => normal.Sample()));
        int iteration = 0;
        bool converged = false;
        while (iteration < maxIterations && !converged)
        {
            iteration++;
            var y = products.Multiply(RowMatrix.FromMathNet(w), x); // [C × samples]
            var derivativeMeans = new double[c];
            for (int r = 0; r < c; r++) derivativeMeans[r] = 3.0 * TensorPrimitives.SumOfSquares<float>(y.Row(r)) / samples; // g'(u) = 3u²
            var cubes = Cube(y);
            var next = products.MultiplyByTranspose(cubes, x).ToMathNet() / samples;
            for (int r = 0; r < c; r++)
                for (int k = 0; k < c; k++) next[r, k] -= derivativeMeans[r] * w[r, k];
            next = Decorrelate(next);
            double change = 0;
            for (int r = 0; r < c; r++) change = Math.Max(change, Math.Abs(Math.Abs(next.Row(r).DotProduct(w.Row(r))) - 1));
            w = next;
            converged = change < tolerance;
        }
        return new IcaRun(products.Multiply(RowMatrix.FromMathNet(w), x), iteration, converged);
    }

    /// <summary>Y³ elementwise, as a new matrix.</summary>
    private static RowMatrix Cube(RowMatrix y)
    {
        var result = new RowMatrix(y.Rows, y.Columns);
        TensorPrimitives.Multiply(y.Data, y.Data, result.Data);
        TensorPrimitives.Multiply(result.Data, y.Data, result.Data);
        return result;
    }

    /// <summary>Symmetric decorrelation (WWᵀ)^(-1/2) W: the rows become orthonormal, none favoured.</summary>
    private static Matrix<double> Decorrelate(Matrix<double> w)
    {
        var (values, vectors) = SymmetricEigen.Decompose(w * w.Transpose());
        var inverseRoot = vectors * Matrix<double>.Build.DenseOfDiagonalArray(values.Select(v => 1 / Math.Sqrt(Math.Max(v, 1e-300))).ToArray()) * vectors.Transpose();
        return inverseRoot * w;
    }
}
