using System.Numerics.Tensors;
using SparseOnnx.Calibration.Statistics;
using SparseOnnx.Pruning.Linear;

namespace SparseOnnx.Pruning.Decomposition;

/// <summary>How a layer's neurons are decomposed into functional networks.</summary>
public sealed record IcaOptions
{
    /// <summary>Components kept by PCA before ICA (the paper: 128); capped at a quarter of the neurons and of the tokens.</summary>
    public int Components { get; init; } = 128;

    /// <summary>FastICA runs from different random starts; the most stable one is kept.</summary>
    public int Restarts { get; init; } = 5;

    /// <summary>Fixed-point iterations per run at most.</summary>
    public int MaxIterations { get; init; } = 200;

    /// <summary>Convergence tolerance of the unmixing rows' directions.</summary>
    public double Tolerance { get; init; } = 1e-4;

    /// <summary>Power iterations of the randomized PCA.</summary>
    public int PowerIterations { get; init; } = 2;

    /// <summary>Seed of the PCA sketch and of every ICA start.</summary>
    public int Seed { get; init; }

    /// <summary>Throws <see cref="ArgumentException"/> for settings that cannot work.</summary>
    public void Validate()
    {
        if (Components < 2) throw new ArgumentException($"ICA needs at least 2 components, not {Components}.");
        if (Restarts < 1) throw new ArgumentException($"ICA needs at least one run, not {Restarts} restarts.");
        if (MaxIterations < 1) throw new ArgumentException($"ICA needs at least one iteration, not {MaxIterations}.");
        if (!(Tolerance > 0)) throw new ArgumentException($"The ICA tolerance must be positive, not {Tolerance}.");
        if (PowerIterations < 0) throw new ArgumentException($"Power iterations cannot be negative ({PowerIterations}).");
    }
}

/// <summary>One layer's functional networks.</summary>
/// <param name="Scores">Per neuron, max over networks of |z| in the network's z-scored spatial map: a neuron is key for threshold τ when its score exceeds τ.</param>
/// <param name="Components">Networks (independent components) found.</param>
/// <param name="Iterations">FastICA iterations of the kept run.</param>
/// <param name="Converged">Whether the kept run converged.</param>
/// <param name="Stability">Mean best-match |correlation| of the kept run's maps with the other runs' (1: every run found the same networks).</param>
/// <param name="Seconds">Time the decomposition took.</param>
public sealed record LayerNetworks(double[] Scores, int Components, int Iterations, bool Converged, double Stability, double Seconds);

/// <summary>
/// Functional networks of a layer's MLP neurons, as spatial ICA does with fMRI (tokens are time points,
/// neurons are voxels), following the functional-network pruning paper:
/// <list type="number">
/// <item>z-score each neuron over the sampled tokens (a neuron that never varies is all zeros);</item>
/// <item>reduce to C components by randomized PCA: the rows of Vᵀ [C × neurons] are the dominant spatial patterns;</item>
/// <item>whiten them and run FastICA (cube) on the neurons as samples, from <see cref="IcaOptions.Restarts"/>
/// seeded starts; keep the run whose maps best match the other runs' (ICASSO's idea of stability, reduced to a choice);</item>
/// <item>z-score each spatial map over the neurons; a neuron's score is its largest |z| over the maps.</item>
/// </list>
/// </summary>
public static class FunctionalNetworks
{
    /// <summary>
    /// Decomposes <paramref name="activations"/> [tokens × neurons] (modified in place: z-scored, or with
    /// <paramref name="columnScales"/> centred and multiplied by them, so the decomposition sees each neuron in
    /// the units it contributes rather than standardized).
    /// </summary>
    public static LayerNetworks Decompose(RowMatrix activations, IcaOptions options, MatrixProducts products, double[]? columnScales = null)
    {
        options.Validate();
        var clock = System.Diagnostics.Stopwatch.StartNew();
        int neurons = activations.Columns;
        if (columnScales is null) ZScoreColumns(activations);
        else ScaleColumns(activations, columnScales);
        int components = Math.Min(options.Components, Math.Max(2, Math.Min(neurons, activations.Rows) / 4));
        var (spatial, _) = RandomizedPca.Fit(activations, components, options.PowerIterations, options.Seed, products);
        var whitened = FastIca.Whiten(spatial, products);

        var runs = new List<(RowMatrix Maps, IcaRun Run)>();
        for (int r = 0; r < options.Restarts; r++)
        {
            var run = FastIca.Run(whitened, unchecked(options.Seed * 7919 + r + 1), options.MaxIterations, options.Tolerance, products);
            var maps = run.Sources;
            ZScoreRows(maps);
            runs.Add((maps, run));
        }
        int best = 0;
        double bestStability = runs.Count == 1 ? 1 : double.NegativeInfinity;
        for (int a = 0; a < runs.Count && runs.Count > 1; a++)
        {
            double stability = 0;
            for (int b = 0; b < runs.Count; b++)
                if (b != a) stability += MeanBestMatch(runs[a].Maps, runs[b].Maps, products);
            stability /= runs.Count - 1;
            if (stability > bestStability) (best, bestStability) = (a, stability);
        }

        var chosen = runs[best].Maps;
        var scores = new double[neurons];
        for (int c = 0; c < chosen.Rows; c++)
        {
            var map = chosen.Row(c);
            for (int j = 0; j < neurons; j++) scores[j] = Math.Max(scores[j], Math.Abs(map[j]));
        }
        return new LayerNetworks(scores, chosen.Rows, runs[best].Run.Iterations, runs[best].Run.Converged, bestStability, clock.Elapsed.TotalSeconds);
    }

    /// <summary>Mean over the maps of <paramref name="a"/> of the largest |correlation| with a map of <paramref name="b"/> (both z-scored by row).</summary>
    private static double MeanBestMatch(RowMatrix a, RowMatrix b, MatrixProducts products)
    {
        var correlations = products.MultiplyByTranspose(a, b);
        double sum = 0;
        for (int i = 0; i < correlations.Rows; i++)
            sum += Math.Abs(TensorPrimitives.MaxMagnitude<float>(correlations.Row(i))) / a.Columns; // MaxMagnitude keeps the sign
        return sum / correlations.Rows;
    }

    /// <summary>Standardizes each column over the rows; a constant column becomes zeros.</summary>
    internal static void ZScoreColumns(RowMatrix m)
    {
        var statistics = ColumnStatistics(m, squares: true);
        var means = statistics.Means();
        var scale = statistics.Variances().Select((v, c) => v > 1e-20 * Math.Max(1, means[c] * means[c]) ? 1 / Math.Sqrt(v) : 0);
        ShiftAndScaleColumns(m, means, scale);
    }

    /// <summary>Centres each column over the rows and multiplies it by its scale.</summary>
    internal static void ScaleColumns(RowMatrix m, double[] scales) => ShiftAndScaleColumns(m, ColumnStatistics(m, squares: false).Means(), scales);

    private static ChannelMeans ColumnStatistics(RowMatrix m, bool squares)
    {
        var statistics = new ChannelMeans(m.Columns, squares);
        statistics.Add(m.Data);
        return statistics;
    }

    /// <summary>m[r, c] ← (m[r, c] − shift[c]) · scale[c].</summary>
    private static void ShiftAndScaleColumns(RowMatrix m, IEnumerable<double> shifts, IEnumerable<double> scales)
    {
        var shift = shifts.Select(v => (float)v).ToArray();
        var scale = scales.Select(v => (float)v).ToArray();
        for (int r = 0; r < m.Rows; r++)
        {
            var row = m.Row(r);
            TensorPrimitives.Subtract(row, shift, row);
            TensorPrimitives.Multiply(row, scale, row);
        }
    }

    /// <summary>Standardizes each row over the columns.</summary>
    internal static void ZScoreRows(RowMatrix m)
    {
        for (int r = 0; r < m.Rows; r++)
        {
            var row = m.Row(r);
            float mean = TensorPrimitives.Sum<float>(row) / row.Length;
            TensorPrimitives.Subtract(row, mean, row);
            double std = Math.Sqrt(TensorPrimitives.SumOfSquares<float>(row) / row.Length);
            if (std > 0) TensorPrimitives.Multiply(row, (float)(1 / std), row);
        }
    }
}
