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
        int rank = SymmetricEigen.Rank(values, 1e-8);
        var whitening = Matrix<double>.Build.Dense(rank, data.Rows, (r, c) => vectors[c, r] / Math.Sqrt(values[r]));
        return products.Multiply(RowMatrix.FromMathNet(whitening), centred);
    }

    /// <summary>Runs FastICA on whitened <paramref name="x"/> [C × samples] from the start drawn with <paramref name="seed"/>.</summary>
    public static IcaRun Run(RowMatrix x, int seed, int maxIterations, double tolerance, MatrixProducts products)
    {
        int c = x.Rows, samples = x.Columns;
        var normal = new Normal(0, 1, new Random(seed));
        var start = new RowMatrix(c, c);
        for (int i = 0; i < start.Data.Length; i++) start.Data[i] = (float)normal.Sample();
        var w = Decorrelate(start, products);
        int iteration = 0;
        bool converged = false;
        var derivativeMeans = new float[c];
        var square = new float[samples];
        while (iteration < maxIterations && !converged)
        {
            iteration++;
            var y = products.Multiply(w, x); // [C × samples]
            for (int r = 0; r < c; r++)
            {
                var row = y.Row(r);
                derivativeMeans[r] = (float)(3.0 * TensorPrimitives.SumOfSquares<float>(row) / samples); // E[g'(u)] = E[3u²]
                TensorPrimitives.Multiply(row, row, square);
                TensorPrimitives.Multiply(row, square, row); // g(u) = u³, in place
            }
            var next = products.MultiplyByTranspose(y, x); // E[g(WX) Xᵀ] · samples
            for (int r = 0; r < c; r++)
            {
                var row = next.Row(r);
                TensorPrimitives.Multiply(row, 1f / samples, row);
                TensorPrimitives.MultiplyAdd(w.Row(r), -derivativeMeans[r], row, row);
            }
            // Heavy-tailed data can blow the cube up past float range; stop with the last finite estimate.
            if (!float.IsFinite(TensorPrimitives.Sum<float>(next.Data))) break;
            next = Decorrelate(next, products);
            double change = 0;
            for (int r = 0; r < c; r++) change = Math.Max(change, Math.Abs(Math.Abs(TensorPrimitives.Dot<float>(next.Row(r), w.Row(r))) - 1));
            w = next;
            converged = change < tolerance;
        }
        return new IcaRun(products.Multiply(w, x), iteration, converged);
    }

    /// <summary>
    /// Symmetric decorrelation (WWᵀ)^(-1/2) W: the rows become orthonormal, none favoured. The eigendecomposition
    /// of WWᵀ runs in MathNet (double); the C × C products in ONNX Runtime's GEMM.
    /// </summary>
    private static RowMatrix Decorrelate(RowMatrix w, MatrixProducts products)
    {
        var (values, vectors) = SymmetricEigen.Decompose(products.MultiplyByTranspose(w, w).ToMathNet());
        int n = w.Rows;
        var scaled = new RowMatrix(n, n);
        var basis = RowMatrix.FromMathNet(vectors);
        // Eigenvalues below float32's resolution of the largest are rounding noise, not directions to amplify.
        double floor = Math.Max(values[0], 1e-30) * 1e-7;
        for (int r = 0; r < n; r++)
            for (int k = 0; k < n; k++) scaled[r, k] = (float)(vectors[r, k] / Math.Sqrt(Math.Max(values[k], floor)));
        var inverseRoot = products.MultiplyByTranspose(scaled, basis); // E·Λ^(-1/2)·Eᵀ
        return products.Multiply(inverseRoot, w);
    }
}
