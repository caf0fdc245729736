using ScottPlot;

namespace SparseOnnx.Cli.Reporting;

/// <summary>The report's PNG plots (ScottPlot): perplexity and throughput against sparsity, the dense model as a dashed line,
/// top-k and calibrated models as separate series.</summary>
internal static class SweepPlots
{
    private const int Width = 720, Height = 440;

    private static IEnumerable<(string Legend, List<SweepRow> Rows)> Series(SweepResult result) =>
        new[] { (SweepVariant.TopK, "top-k, uncalibrated"), (SweepVariant.Calibrated, "calibrated (thresholds, allocation, spontaneous neurons)") }
            .Select(v => (v.Item2, result.Rows.Where(r => r.Variant == v.Item1).OrderBy(r => r.Sparsity).ToList()))
            .Where(s => s.Item2.Count > 0);

    public static void Perplexity(SweepResult result, string path)
    {
        var plot = new Plot();
        foreach (var (legend, rows) in Series(result))
        {
            var line = plot.Add.Scatter(rows.Select(r => r.Sparsity!.Value).ToArray(), rows.Select(r => r.Perplexity.Perplexity).ToArray());
            line.LegendText = legend;
            line.MarkerSize = 7;
        }
        var dense = plot.Add.HorizontalLine(result.Rows[0].Perplexity.Perplexity);
        dense.LinePattern = LinePattern.Dashed;
        dense.LegendText = $"dense ({result.Rows[0].Perplexity.Perplexity:F2})";
        plot.Title("Perplexity vs sparsity");
        plot.XLabel("sparsity (fraction of each projection's input dropped per token)");
        plot.YLabel("perplexity");
        plot.ShowLegend(Alignment.UpperLeft);
        plot.SavePng(path, Width, Height);
    }

    public static void Throughput(SweepResult result, string path)
    {
        var plot = new Plot();
        var sparse = result.Rows.Where(r => r.Variant == SweepVariant.TopK).OrderBy(r => r.Sparsity).ToList();
        double[] xs = sparse.Select(r => r.Sparsity!.Value).ToArray();
        var decode = plot.Add.Scatter(xs, sparse.Select(r => r.Throughput.DecodeTokensPerSecond).ToArray());
        decode.LegendText = "decode, sparsified";
        decode.MarkerSize = 7;
        var denseDecode = plot.Add.HorizontalLine(result.Rows[0].Throughput.DecodeTokensPerSecond);
        denseDecode.LinePattern = LinePattern.Dashed;
        denseDecode.Color = decode.Color;
        denseDecode.LegendText = "decode, dense";
        var prefill = plot.Add.Scatter(xs, sparse.Select(r => r.Throughput.PrefillTokensPerSecond).ToArray());
        prefill.LegendText = "prefill, sparsified";
        prefill.MarkerSize = 7;
        prefill.Axes.YAxis = plot.Axes.Right;
        var densePrefill = plot.Add.HorizontalLine(result.Rows[0].Throughput.PrefillTokensPerSecond);
        densePrefill.LinePattern = LinePattern.Dotted;
        densePrefill.Color = prefill.Color;
        densePrefill.Axes.YAxis = plot.Axes.Right;
        densePrefill.LegendText = "prefill, dense";
        plot.Title($"Throughput of this model vs sparsity ({result.Options.Runtime.Threads} threads)");
        plot.XLabel("sparsity");
        plot.Axes.Left.Label.Text = "decode tokens/s";
        plot.Axes.Right.Label.Text = "prefill tokens/s";
        plot.Axes.SetLimitsY(0, Math.Max(result.Rows.Max(r => r.Throughput.DecodeTokensPerSecond) * 1.15, 1e-9), plot.Axes.Left);
        plot.Axes.SetLimitsY(0, Math.Max(result.Rows.Max(r => r.Throughput.PrefillTokensPerSecond) * 1.15, 1e-9), plot.Axes.Right);
        plot.ShowLegend(Alignment.LowerLeft);
        plot.SavePng(path, Width, Height);
    }

    /// <summary>Kernel speedup over ONNX Runtime's MatMul per projection shape, one series per shape, with the bound 1/(1 − s).</summary>
    public static void Kernels(SweepResult result, string path)
    {
        var plot = new Plot();
        foreach (var kernel in result.Kernels)
        {
            var rows = kernel.Report.Results;
            var line = plot.Add.Scatter(rows.Select(r => r.Sparsity).ToArray(), rows.Select(r => r.Speedup).ToArray());
            line.LegendText = $"{kernel.Shape.Projection} [{kernel.Shape.K}, {kernel.Shape.N}]";
            line.MarkerSize = 7;
        }
        double top = result.Kernels.SelectMany(k => k.Report.Results).Max(r => r.Sparsity);
        double[] grid = Enumerable.Range(0, 41).Select(i => top * i / 40).ToArray();
        var bound = plot.Add.ScatterLine(grid, grid.Select(s => 1 / (1 - s)).ToArray());
        bound.LinePattern = LinePattern.Dashed;
        bound.Color = Colors.Gray;
        bound.LegendText = "bound 1/(1 − s)";
        double highest = Math.Max(1 / (1 - top), result.Kernels.SelectMany(k => k.Report.Results).Max(r => double.IsFinite(r.Speedup) ? r.Speedup : 0));
        plot.Axes.SetLimits(-0.02, top + 0.05, 0, highest * 1.15);
        plot.Title($"TopKSparseMatMul vs ONNX Runtime MatMul, one token, fp32, {result.Options.Runtime.Threads} threads");
        plot.XLabel("sparsity");
        plot.YLabel("speedup over dense");
        plot.ShowLegend(Alignment.UpperLeft);
        plot.SavePng(path, Width, Height);
    }
}
