using SparseOnnx.Calibration.Compensation;
using SparseOnnx.Calibration.Statistics;

namespace SparseOnnx.Calibration.Sequential;

/// <summary>
/// Closed-form compensation inside the block: the means of x − S(x) of every group, over the calibration
/// windows with the block's selection applied, become W·mean added after each projection. In
/// <see cref="CompensationMode.Auto"/> a group's vectors are kept only where they lower the block's held-out
/// output error (the block-local stand-in for the full method's held-out loss): all of them at once when that
/// lowers it, else group by group in order.
/// </summary>
internal sealed class BlockCompensation : IBlockStage
{
    public string Name => "compensation";

    public bool Enabled(BlockContext block) => block.Options.Compensation != CompensationMode.Off;

    public void Run(BlockContext block)
    {
        var groups = block.Groups;
        var means = groups.Select(g => new ChannelMeans(g.InFeatures)).ToArray();
        var outputs = groups.SelectMany(g => new[] { g.DenseOutput, g.SparseOutput }).ToArray();
        string stage = $"{block.Name}: compensation";
        block.Report(stage, 0, block.Data.Calibration.Count);
        block.Cut.Run(block.Data.Calibration, block.Calibration, block.BatchFor(2 * groups.Sum(g => g.InFeatures)), block.Settings, outputs, batch =>
        {
            for (int j = 0; j < groups.Count; j++) means[j].AddDifference(batch.Floats(groups[j].DenseOutput), batch.Floats(groups[j].SparseOutput));
        }, progress: done => block.Report(stage, done, block.Data.Calibration.Count));
        var settings = block.Settings;
        double current = block.HeldOutError ?? (block.Options.Compensation == CompensationMode.Auto ? block.RelativeError(settings, heldOut: true) : double.NaN);
        var vectors = groups.Select((g, j) =>
        {
            var dropped = means[j].Means();
            return g.Members.Select(p => ClosedFormCompensation.Vector(p, dropped)).ToArray();
        }).ToArray();
        if (block.Options.Compensation == CompensationMode.Auto)
        {
            // Every group's vectors at once first: one held-out check instead of one per group when they all help.
            var all = settings.Clone();
            for (int j = 0; j < groups.Count; j++)
                for (int m = 0; m < groups[j].Members.Count; m++) all.SetCompensation(groups[j].Members[m], vectors[j][m]);
            double together = block.RelativeError(all, heldOut: true);
            if (together < current)
            {
                block.Settings = all;
                block.HeldOutError = together;
                foreach (var g in groups) block.Compensated.Add(g);
                return;
            }
        }
        for (int j = 0; j < groups.Count; j++)
        {
            var trial = settings.Clone();
            for (int m = 0; m < groups[j].Members.Count; m++) trial.SetCompensation(groups[j].Members[m], vectors[j][m]);
            if (block.Options.Compensation == CompensationMode.On)
            {
                settings = trial;
                block.Compensated.Add(groups[j]);
                continue;
            }
            double error = block.RelativeError(trial, heldOut: true);
            if (error < current)
            {
                settings = trial;
                current = error;
                block.Compensated.Add(groups[j]);
            }
        }
        block.Settings = settings;
        block.HeldOutError = block.Options.Compensation == CompensationMode.On ? null : current;
    }
}
