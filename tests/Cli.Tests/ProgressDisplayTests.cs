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

/// <summary>Plain progress lines carry an estimate of what is left of their stage, and <c>--progress</c> picks the style.</summary>
public class ProgressStyleTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("sparseonnx-progress-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public void PlainLinesEstimateWhatIsLeftOfTheStage()
    {
        var log = new StringWriter();
        var now = TimeSpan.Zero;
        var bar = ProgressDisplay.PlainFor(log, "Sparsify", () => now);
        now = TimeSpan.FromSeconds(5);
        bar.Update(0, 100, "greedy allocation");          // a new stage: a line, no estimate yet
        now = TimeSpan.FromSeconds(45);
        bar.Update(25, 100);                               // 30 s since the last line: 40 s in, a quarter done
        now = TimeSpan.FromSeconds(80);
        bar.Update(50, 100, "compensation");               // a new stage starts its own clock
        now = TimeSpan.FromSeconds(200);
        bar.Update(2, 100);                                // 2 min in, 2%: about 98 min left
        var lines = log.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(5, lines.Length);
        Assert.Equal("[    5 s]    0%  Sparsify: greedy allocation", lines[1]);
        Assert.Equal("[   45 s]   25%  Sparsify: greedy allocation (about 2 min left)", lines[2]);
        Assert.Equal("[   80 s]   50%  Sparsify: compensation", lines[3]);
        Assert.Equal("[  200 s]    2%  Sparsify: compensation (about 1.6 h left)", lines[4]);
    }

    [Theory]
    [InlineData("plain", true)]
    [InlineData("none", false)]
    public void TheProgressOptionPicksPlainLinesOrNothing(string style, bool lines)
    {
        var output = new StringWriter();
        var error = new StringWriter();
        string model = Path.Combine(_dir, "tiny.onnx");
        int code = CommandRunner.Run(new System.CommandLine.RootCommand { Commands.SynthCommand.Create() },
            ["synth", "--preset", "tiny", "-o", model, "--progress", style], output, error);
        Assert.True(code == 0, error.ToString());
        Assert.True(File.Exists(model));
        string log = error.ToString();
        Assert.Equal(lines, log.Contains("[    0 s]    0%  Writing 0.00 B parameters"));
        Assert.Equal(lines, log.Contains("100%  Writing 0.00 B parameters: done"));
    }

    [Fact]
    public void AnUnknownProgressStyleIsRejectedWithTheChoices()
    {
        var error = new StringWriter();
        int code = CommandRunner.Run(new System.CommandLine.RootCommand { Commands.SynthCommand.Create() },
            ["synth", "--preset", "tiny", "-o", Path.Combine(_dir, "x.onnx"), "--progress", "fancy"], new StringWriter(), error);
        Assert.NotEqual(0, code);
        Assert.Contains("fancy", error.ToString());
        Assert.Contains("plain", error.ToString());
        Assert.False(File.Exists(Path.Combine(_dir, "x.onnx")));
    }
}
