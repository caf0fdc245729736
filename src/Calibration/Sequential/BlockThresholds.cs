using SparseOnnx.GraphRewriter.Sparsify;

namespace SparseOnnx.Calibration.Sequential;

/// <summary>
/// Every group of the block at the target sparsity. Threshold mode: read off the histograms of the block's
/// inputs taken dense, then measured again with those thresholds applied inside the block (sparsifying q/k/v
/// moves o's input, gate/up move down's), so each threshold drops the asked fraction of what its group really
/// reads. The block's input already carries every earlier block's decisions. Top-k mode: k from the sparsity.
/// </summary>
internal sealed class BlockThresholds : IBlockStage
{
    public string Name => "thresholds";

    public bool Enabled(BlockContext block) => true;

    public void Run(BlockContext block)
    {
        var settings = block.Settings.Clone();
        if (block.Options.Mode == SparsityMode.Threshold)
        {
            var dense = block.DenseHistograms ?? throw new InvalidOperationException("The dense histograms are taken with the targets, before the thresholds.");
            foreach (var g in block.Groups) block.Select(settings, g, block.Allocation[g.Index], dense);
            var upstream = block.MeasureHistograms(settings, $"{block.Name}: thresholds, sparse upstream");
            foreach (var g in block.Groups) block.Select(settings, g, block.Allocation[g.Index], upstream);
            block.Histograms = upstream;
        }
        else
            foreach (var g in block.Groups) block.Select(settings, g, block.Allocation[g.Index], null);
        block.Settings = settings;
    }
}
