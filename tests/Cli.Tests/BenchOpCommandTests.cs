using System.CommandLine;
using System.Text.Json.Nodes;
using SparseOnnx.Cli.Commands;

namespace SparseOnnx.Cli.Tests;

/// <summary>
/// bench-op runs end to end on a tiny problem and reports what it promises. Timings are never asserted: the
/// performance targets are checked by running the benchmark, not by tests.
/// </summary>
public class BenchOpCommandTests
{
    private static (int ExitCode, string Output, string Error) Run(params string[] args)
    {
        var output = new StringWriter();
        var error = new StringWriter();
        int code = CommandRunner.Run(new RootCommand { BenchOpCommand.Create() }, args, output, error);
        return (code, output.ToString(), error.ToString());
    }

    [Theory]
    [InlineData("fp32", "topk")]
    [InlineData("fp16", "threshold")]
    [InlineData("bf16", "topk")]
    public void JsonReportHasOneRowPerSparsityLevel(string dtype, string mode)
    {
        var (code, output, error) = Run("bench-op", "--m", "2", "--k", "64", "--n", "48", "--dtype", dtype, "--mode", mode,
            "--iterations", "2", "--copies", "2", "--threads", "1", "--json");
        Assert.True(code == 0, error);
        var json = JsonNode.Parse(output)!;
        Assert.Equal(2, (int)json["weight_copies"]!);
        var results = json["results"]!.AsArray();
        Assert.Equal([0.0, 0.25, 0.5, 0.75, 0.9], results.Select(r => (double)r!["sparsity"]!));
        foreach (var row in results)
        {
            Assert.True((double)row!["sparse_ms"]! > 0);
            Assert.True(row.AsObject().ContainsKey("dense_ms") && row.AsObject().ContainsKey("speedup"));
            if (dtype != "bf16") Assert.True((double)row["speedup"]! > 0);
        }
        if (mode == "topk") Assert.Equal(32, (long)results[2]!["k"]!);
        else Assert.True((double)results[2]!["threshold"]! > 0);
    }

    [Fact]
    public void InvalidSizesAreUsageErrors()
    {
        var (code, _, error) = Run("bench-op", "--k", "0", "--json");
        Assert.Equal(ExitCodes.InputError, code);
        Assert.Contains("--k must be positive", error);
        Assert.NotEqual(0, Run("bench-op", "--sparsity", "1.5", "--k", "8", "--n", "8", "--copies", "1").ExitCode);
        Assert.NotEqual(0, Run("bench-op", "--dtype", "int8").ExitCode);
    }
}
