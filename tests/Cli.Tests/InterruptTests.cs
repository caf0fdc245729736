using System.Diagnostics;

namespace SparseOnnx.Cli.Tests;

/// <summary>Ctrl-C and SIGTERM leave nothing behind: the published command, run as a process and signalled mid-work.</summary>
public class InterruptTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("sparseonnx-cli-interrupt-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Theory]
    [InlineData("TERM", 143)]
    [InlineData("INT", 130)]
    public async Task ASignalledCalibrationRemovesItsWorkFolderAndWritesNoModel(string signal, int exitCode)
    {
        string cli = Path.Combine(RepositoryPaths.Root, "artifacts", "sparseonnx", "sparseonnx.dll");
        Assert.True(File.Exists(cli), $"{cli} is missing: build.sh publishes it before the tests run");
        string folder = Path.Combine(RepositoryPaths.Models, "llama-brown");
        string output = Path.Combine(_dir, "out", "model.onnx");
        var start = new ProcessStartInfo("dotnet") { RedirectStandardError = true, RedirectStandardOutput = true, UseShellExecute = false };
        foreach (string a in new[] { cli, "sparsify", Path.Combine(folder, "model.onnx"), "-o", output, "--mode", "threshold", "--sparsity", "0.5",
                     "--calibration", Path.Combine(folder, "data", "valid.txt"), "--documents", "lines", "--allocation", "greedy", "--threads", "2" })
            start.ArgumentList.Add(a);
        using var process = Process.Start(start)!;
        try
        {
            await SignalDuringCalibration(process, signal, exitCode, Path.GetDirectoryName(output)!);
        }
        finally
        {
            if (!process.HasExited) process.Kill(entireProcessTree: true);
        }
    }

    private static async Task SignalDuringCalibration(Process process, string signal, int exitCode, string outFolder)
    {
        var stderr = process.StandardError.ReadToEndAsync();
        var stdout = process.StandardOutput.ReadToEndAsync();
        // Wait until calibration has its work folder (the probe model, about the model's size, is written there).
        var waited = Stopwatch.StartNew();
        while (!(Directory.Exists(outFolder) && Directory.GetDirectories(outFolder, ".model.onnx.calibration-*").Length > 0))
        {
            if (process.HasExited) Assert.Fail($"sparsify ended before calibrating: {await stderr}");
            if (waited.Elapsed > TimeSpan.FromMinutes(2)) Assert.Fail("no calibration work folder appeared in 2 minutes");
            await Task.Delay(100);
        }
        await Task.Delay(1500); // well into the work
        using (var kill = Process.Start("kill", ["-" + signal, process.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)])!)
            await kill.WaitForExitAsync();
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(1));
        await process.WaitForExitAsync(timeout.Token);
        string error = await stderr;
        await stdout;
        Assert.Equal(exitCode, process.ExitCode);
        Assert.Contains($"interrupted (SIG{signal})", error);
        Assert.Empty(Directory.GetFileSystemEntries(outFolder)); // no work folder, no temporary or half-written model
    }
}
