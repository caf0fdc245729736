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
        Assert.NotEqual(0, Run("bench-op", "--dtype", "int3").ExitCode);
        Assert.NotEqual(0, Run("bench-op", "--dtype", "int4", "--mode", "threshold", "--k", "64", "--n", "64").ExitCode);
        Assert.NotEqual(0, Run("bench-op", "--dtype", "int4", "--accuracy-level", "2", "--k", "64", "--n", "64").ExitCode);
    }

    // The quantized benchmark: TopKSparseMatMulNBits against MatMulNBits at levels 4 and 0 and fp32 MatMul.
    [Theory]
    [InlineData("int4", "fp16")]
    [InlineData("int8", "fp32")]
    public void QuantizedReportComparesWithMatMulNBitsAndFloat32(string dtype, string scales)
    {
        var (code, output, error) = Run("bench-op", "--m", "1", "--k", "96", "--n", "70", "--dtype", dtype, "--scales", scales,
            "--iterations", "2", "--copies", "2", "--threads", "1", "--sparsity", "0.5", "--json");
        Assert.True(code == 0, error);
        var json = JsonNode.Parse(output)!;
        Assert.Equal(dtype, (string?)json["dtype"]);
        Assert.Equal(scales == "fp16" ? "float16" : "float32", (string?)json["sparse_scales"]);
        Assert.Equal(4, (int)json["accuracy_level"]!);
        var row = json["results"]!.AsArray().Single()!;
        Assert.Equal(48, (long)row["k"]!);
        foreach (var key in new[] { "sparse_ms", "matmulnbits_level4_ms", "matmulnbits_level0_ms", "float32_matmul_ms", "speedup_vs_level4", "sparse_gb_per_s" })
            Assert.True((double)row[key]! > 0, key);
        // Bytes needed: the selected rows' codes (at most 96 rows) and the scales of every block with a selected row.
        double rowBytes = 128 * (dtype == "int4" ? 0.5 : 1), scaleBytes = 3 * 128 * (scales == "fp16" ? 2 : 4);
        Assert.InRange((double)row["sparse_bytes_read"]!, 48 * rowBytes, 96 * rowBytes + scaleBytes);
    }
}
