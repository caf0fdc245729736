using SparseOnnx.GraphRewriter.IO;

namespace SparseOnnx.Cli.Commands;

/// <summary>The work folder of a command that writes next to its output (<see cref="WorkFolders"/>), telling the user what it cleared.</summary>
internal static class CommandWorkFolders
{
    /// <summary>This run's work folder for <paramref name="outputPath"/>; removes killed runs' leftovers and says so on <paramref name="error"/>.</summary>
    public static string For(string outputPath, string purpose, TextWriter error)
    {
        var (path, leftovers) = WorkFolders.ForOutput(outputPath, purpose);
        foreach (string leftover in leftovers) error.WriteLine($"note: removed {leftover}, the work folder of an earlier run that did not finish");
        return path;
    }
}
