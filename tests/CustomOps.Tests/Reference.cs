namespace SparseOnnx.CustomOps.Tests;

/// <summary>
/// The op contract written independently of the native code: which entries each row keeps (by sorting),
/// and A ⊙ mask.
/// </summary>
public static class Reference
{
    public static bool[] Mask(ReadOnlySpan<float> row, long? k, float? threshold)
    {
        var keep = new bool[row.Length];
        if (threshold is { } t)
        {
            for (int i = 0; i < row.Length; i++) keep[i] = float.IsNaN(row[i]) || MathF.Abs(row[i]) > t;
            return keep;
        }
        var values = row.ToArray();
        var order = Enumerable.Range(0, row.Length).ToArray();
        Array.Sort(order, (x, y) =>
        {
            bool nx = float.IsNaN(values[x]), ny = float.IsNaN(values[y]);
            if (nx != ny) return nx ? -1 : 1;
            if (!nx && MathF.Abs(values[x]) != MathF.Abs(values[y])) return MathF.Abs(values[y]).CompareTo(MathF.Abs(values[x]));
            return x.CompareTo(y);
        });
        for (int j = 0; j < k!.Value; j++) keep[order[j]] = true;
        return keep;
    }

    public static float[] Masked(float[] a, int K, long? k, float? threshold)
    {
        var result = new float[a.Length];
        for (int m = 0; m < a.Length / K; m++)
        {
            var keep = Mask(a.AsSpan(m * K, K), k, threshold);
            for (int i = 0; i < K; i++) result[m * K + i] = keep[i] ? a[m * K + i] : 0f;
        }
        return result;
    }

    /// <summary>Y = masked(A) · B in double, and per output the sum of |a_i b_in| over kept i (for error bounds).</summary>
    public static (double[] Y, double[] Magnitude) Product(float[] maskedA, float[] b, int K, int N)
    {
        int M = maskedA.Length / K;
        var y = new double[M * N];
        var magnitude = new double[M * N];
        for (int m = 0; m < M; m++)
            for (int i = 0; i < K; i++)
            {
                double a = maskedA[m * K + i];
                if (a == 0) continue;
                for (int n = 0; n < N; n++)
                {
                    y[m * N + n] += a * b[i * N + n];
                    magnitude[m * N + n] += Math.Abs(a * b[i * N + n]);
                }
            }
        return (y, magnitude);
    }

    public static float[] Normal(Random random, int count, float scale = 1f) =>
        Enumerable.Range(0, count).Select(_ => scale * (float)(Math.Sqrt(-2 * Math.Log(1 - random.NextDouble())) * Math.Cos(2 * Math.PI * random.NextDouble()))).ToArray();
}
