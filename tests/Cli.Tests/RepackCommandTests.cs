using System.CommandLine;
using SparseOnnx.Cli.Commands;

namespace SparseOnnx.Cli.Tests;

public class RepackCommandTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "sparseonnx-cli-tests", Guid.NewGuid().ToString("N"));

    public RepackCommandTests() => Directory.CreateDirectory(_dir);

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static (int ExitCode, string Output, string Error) Run(params string[] args)
    {
        var output = new StringWriter();
        var error = new StringWriter();
        int code = CommandRunner.Run(new RootCommand { RepackCommand.Create(), InspectCommand.Create() }, args, output, error);
        return (code, output.ToString(), error.ToString());
    }

    private static string Fixture => Path.Combine(RepositoryPaths.Models, "families", "gemma", "model.onnx");

    [Fact]
    public void RepacksIntoAlignedExternalDataAndTheResultInspectsTheSame()
    {
        string output = Path.Combine(_dir, "gemma.onnx");
        var (code, stdout, error) = Run("repack", Fixture, "-o", output, "--external", "always", "--inline-threshold", "4096", "--data-file", "weights.bin");
        Assert.True(code == 0, error);
        Assert.Contains("weights.bin", stdout);
        Assert.True(File.Exists(Path.Combine(_dir, "weights.bin")));
        Assert.True(new FileInfo(output).Length < new FileInfo(Fixture).Length / 4);

        var before = Run("inspect", Fixture, "--json").Output;
        var after = Run("inspect", output, "--json").Output;
        string Projections(string json) => System.Text.Json.Nodes.JsonNode.Parse(json)!["projections"]!.ToJsonString();
        Assert.Equal(Projections(before), Projections(after));
    }

    [Fact]
    public void RefusesToOverwriteItsInput()
    {
        string copy = Path.Combine(_dir, "model.onnx");
        File.Copy(Fixture, copy);
        byte[] original = File.ReadAllBytes(copy);
        var (code, _, error) = Run("repack", copy, "-o", copy);
        Assert.Equal(ExitCodes.InputError, code);
        Assert.Contains("input model", error);
        Assert.Equal(original, File.ReadAllBytes(copy));
    }

    [Fact]
    public void MissingOutputOptionIsAUsageError()
    {
        var (code, _, error) = Run("repack", Fixture);
        Assert.NotEqual(0, code);
        Assert.Contains("--output", error);
    }
}
