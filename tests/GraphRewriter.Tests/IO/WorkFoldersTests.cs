using System.Diagnostics;
using SparseOnnx.GraphRewriter.IO;

namespace SparseOnnx.GraphRewriter.Tests.IO;

/// <summary>Work folders of runs that were killed are removed by the next run for the same output, and nothing else is.</summary>
public class WorkFoldersTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("sparseonnx-workfolders-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    /// <summary>The id of a process that has ended (a child run to completion).</summary>
    private static int EndedProcessId()
    {
        using var process = Process.Start(new ProcessStartInfo("true") { UseShellExecute = false })!;
        process.WaitForExit();
        return process.Id;
    }

    [Fact]
    public void FoldersOfEndedProcessesAreRemovedAndOthersKept()
    {
        int ended = EndedProcessId(), live = Environment.ProcessId;
        string output = Path.Combine(_dir, "model.onnx");
        string Folder(string name)
        {
            string path = Path.Combine(_dir, name);
            Directory.CreateDirectory(path);
            File.WriteAllText(Path.Combine(path, "probe.onnx"), "x");
            return path;
        }
        string stale = Folder($".model.onnx.calibration-{ended}");
        string staleQuantized = Folder($".model.onnx.calibration-{ended}.quantized");
        string ours = Folder($".model.onnx.calibration-{live}");                   // a running process's: kept
        string otherOutput = Folder($".other.onnx.calibration-{ended}");           // another output's: kept
        string otherPurpose = Folder($".model.onnx.prune-{ended}");                // another job's: kept
        string notOurs = Folder(".model.onnx.calibration-backup");                 // not a name WorkFolders makes: kept

        var (path, removed) = WorkFolders.ForOutput(output, "calibration");

        Assert.Equal(Path.Combine(_dir, $".model.onnx.calibration-{live}"), path);
        Assert.Equal(new[] { stale, staleQuantized }.Order(), removed.Order());
        Assert.False(Directory.Exists(stale));
        Assert.False(Directory.Exists(staleQuantized));
        Assert.All(new[] { ours, otherOutput, otherPurpose, notOurs }, f => Assert.True(Directory.Exists(f), f));
    }

    [Fact]
    public void AMissingOutputFolderIsNoError()
    {
        var (path, removed) = WorkFolders.ForOutput(Path.Combine(_dir, "not", "yet", "model.onnx"), "prune");
        Assert.Empty(removed);
        Assert.EndsWith($".model.onnx.prune-{Environment.ProcessId}", path);
        Assert.False(Directory.Exists(Path.GetDirectoryName(path)));
    }
}
