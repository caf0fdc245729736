using System.CommandLine;
using SparseOnnx.Cli;
using SparseOnnx.Cli.Commands;

namespace SparseOnnx.GenAi.Tests;

/// <summary>A fresh folder under the system temp folder, deleted on dispose.</summary>
public sealed class TempFolder : IDisposable
{
    public string Path { get; } = Directory.CreateTempSubdirectory("sparseonnx-genai-").FullName;

    public string File(string name) => System.IO.Path.Combine(Path, name);

    /// <summary>A subfolder, created.</summary>
    public string Sub(string name) => Directory.CreateDirectory(System.IO.Path.Combine(Path, name)).FullName;

    public void Dispose()
    {
        try { Directory.Delete(Path, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
    }
}

/// <summary>The committed models and the command line, as the tests use them.</summary>
internal static class Fixtures
{
    public static string LlamaBrownFolder => System.IO.Path.Combine(RepositoryPaths.Models, "llama-brown");

    public static string GenaiInt4Model => System.IO.Path.Combine(RepositoryPaths.Models, "families", "genai-int4", "model.onnx");

    /// <summary>Copies <paramref name="files"/> into <paramref name="folder"/>, a model folder the test can write into.</summary>
    public static void CopyInto(string folder, params string[] files)
    {
        Directory.CreateDirectory(folder);
        foreach (string file in files) File.Copy(file, System.IO.Path.Combine(folder, System.IO.Path.GetFileName(file)), overwrite: true);
    }

    /// <summary>Runs the sparseonnx command line in this process.</summary>
    public static (int ExitCode, string Output, string Error) Cli(params string[] args)
    {
        var output = new StringWriter();
        var error = new StringWriter();
        int code = CommandRunner.Run(new RootCommand { SparsifyCommand.Create(), GenAiConfigCommand.Create() }, args, output, error);
        return (code, output.ToString(), error.ToString());
    }

    /// <summary>Files whose names mark them as temporary (a write that did not finish).</summary>
    public static IEnumerable<string> TemporaryFiles(string folder) =>
        Directory.EnumerateFileSystemEntries(folder, "*", SearchOption.AllDirectories).Where(f => f.EndsWith(".tmp", StringComparison.Ordinal));
}
