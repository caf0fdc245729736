using ScottPlot;

namespace SparseOnnx.Cli.Reporting;

/// <summary>The report's PNG plots (ScottPlot): perplexity and throughput against sparsity, the dense model as a dashed line.</summary>
internal static class SweepPlots
{
    private const int Width = 720, Height = 440;

    public static void Perplexity(SweepResult result, string path)
    {
        var plot = new Plot();
        var sparse = result.Rows.Where(r => r.Sparsity is not null).ToList();
        var line = plot.Add.Scatter(sparse.Select(r => r.Sparsity!.Value).ToArray(), sparse.Select(r => r.Perplexity.Perplexity).ToArray());
        line.LegendText = "TopKSparseMatMul (top-k)";
        line.MarkerSize = 7;
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
        var sparse = result.Rows.Where(r => r.Sparsity is not null).ToList();
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
        plot.Title($"Throughput vs sparsity ({result.Options.Runtime.Threads} threads)");
        plot.XLabel("sparsity");
        plot.Axes.Left.Label.Text = "decode tokens/s";
        plot.Axes.Right.Label.Text = "prefill tokens/s";
        plot.Axes.SetLimitsY(0, Math.Max(result.Rows.Max(r => r.Throughput.DecodeTokensPerSecond) * 1.15, 1e-9), plot.Axes.Left);
        plot.Axes.SetLimitsY(0, Math.Max(result.Rows.Max(r => r.Throughput.PrefillTokensPerSecond) * 1.15, 1e-9), plot.Axes.Right);
        plot.ShowLegend(Alignment.LowerLeft);
        plot.SavePng(path, Width, Height);
    }
}
