namespace SparseOnnx.Cli.Tests;

public class ProgressDisplayTests
{
    // eval reports progress without a stage; the first such update used to subtract TimeSpan.MinValue and
    // crash every command whose stderr was a log file.
    [Fact]
    public void PlainBarTakesUpdatesWithoutAStageFromTheStart()
    {
        var log = new StringWriter();
        var bar = ProgressDisplay.PlainFor(log, "Perplexity");
        bar.Update(1, 10);
        bar.Update(2, 10);
        bar.Update(3, 10, "scoring");
        var lines = log.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(2, lines.Length);  // the title, then the stage; stage-less updates wait for the 30 s interval
        Assert.Contains("0%  Perplexity", lines[0]);
        Assert.Contains("30%  Perplexity: scoring", lines[1]);
    }
}
