using System.CommandLine;
using System.Text.Json.Nodes;
using SparseOnnx.Cli.Commands;

namespace SparseOnnx.Cli.Tests;

public class InspectCommandTests
{
    private static (int ExitCode, string Output, string Error) Run(params string[] args)
    {
        var output = new StringWriter();
        var error = new StringWriter();
        var root = new RootCommand { InspectCommand.Create() };
        int code = CommandRunner.Run(root, args, output, error);
        return (code, output.ToString(), error.ToString());
    }

    private static string Fixture(string family) => Path.Combine(RepositoryPaths.Models, "families", family, "model.onnx");

    [Fact]
    public void JsonReportDescribesTheModelAndItsProjections()
    {
        var (code, output, error) = Run("inspect", Fixture("qwen2"), "--json");
        Assert.True(code == 0, error);
        var json = JsonNode.Parse(output)!;
        Assert.Equal("pytorch", (string?)json["producer"]!["name"]);
        Assert.Contains(json["opsets"]!.AsArray(), o => (string?)o!["domain"] == "" && (long)o["version"]! >= 17);
        Assert.Equal("input_ids", (string?)json["inputs"]![0]!["name"]);
        Assert.Equal("batch_size", (string?)json["inputs"]![0]!["shape"]![0]);
        Assert.True((long)json["op_histogram"]!["MatMul"]! > 0);
        Assert.True((long)json["parameters"]!["count"]! > 0);
        Assert.Equal((long)json["parameters"]!["bytes"]!, (long)json["parameters"]!["inline_bytes"]! + (long)json["parameters"]!["external_bytes"]!);

        var projections = json["projections"]!.AsArray();
        Assert.NotEmpty(projections);
        foreach (var p in projections)
        {
            foreach (var key in new[] { "node", "kind", "layer", "in_features", "out_features", "dtype" })
                Assert.True(p!.AsObject().ContainsKey(key), $"projection lacks '{key}'");
            Assert.Contains((string?)p!["kind"], new[] { "q", "k", "v", "o", "gate", "up", "down", "qkv", "gate_up", "lm_head", "unknown" });
        }
        var q = projections.First(p => (string?)p!["kind"] == "q")!;
        Assert.Equal(0, (int)q["layer"]!);
        Assert.Equal("float32", (string?)q["dtype"]);
        Assert.NotNull((string?)q["bias"]); // Qwen2 has q/k/v biases
        Assert.Null(projections.First(p => (string?)p!["kind"] == "lm_head")!["layer"]);
    }

    [Fact]
    public void TableReportListsProjections()
    {
        var (code, output, error) = Run("inspect", Fixture("phi3"));
        Assert.True(code == 0, error);
        Assert.Contains("Projections", output);
        Assert.Contains("qkv", output);
        Assert.Contains("gate_up", output);
    }

    [Fact]
    public void MissingModelIsAnErrorMessageNotACrash()
    {
        var (code, output, error) = Run("inspect", "/nonexistent/model.onnx");
        Assert.Equal(ExitCodes.InputError, code);
        Assert.StartsWith("error: ", error);
        Assert.Contains("not found", error);
        Assert.Empty(output);
    }

    [Fact]
    public void GarbageFileIsAnErrorMessageNotACrash()
    {
        string path = Path.Combine(Path.GetTempPath(), $"garbage-{Guid.NewGuid():N}.onnx");
        File.WriteAllBytes(path, Enumerable.Range(0, 4096).Select(i => (byte)(i * 7919 % 251)).ToArray());
        try
        {
            var (code, _, error) = Run("inspect", path);
            Assert.Equal(ExitCodes.InputError, code);
            Assert.Contains("not a valid ONNX model", error);
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public void UnknownOptionIsAUsageError()
    {
        var (code, _, error) = Run("inspect", Fixture("gpt2"), "--bogus");
        Assert.NotEqual(0, code);
        Assert.Contains("--bogus", error);
    }
}
