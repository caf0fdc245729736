using System.Collections.Concurrent;

namespace SparseOnnx.GraphRewriter.IO;

/// <summary>
/// Files and folders that exist only while work is in progress (a model being saved under a temporary name, a
/// calibration or pruning work folder): each is registered while it exists, so that a process ended early, the
/// command line on Ctrl-C or SIGTERM, removes them all with <see cref="DeleteAll"/> instead of leaving
/// half-written models or gigabytes of work files behind. The normal paths remove their own and unregister.
/// </summary>
public static class ScratchPaths
{
    private static readonly ConcurrentDictionary<string, byte> Registered = new(StringComparer.Ordinal);

    /// <summary>Registers <paramref name="path"/> until the returned handle is disposed (which does not delete it).</summary>
    public static IDisposable Track(string path)
    {
        string full = Path.GetFullPath(path);
        Registered[full] = 0;
        return new Registration(full);
    }

    /// <summary>The paths registered now.</summary>
    public static IReadOnlyCollection<string> Current => Registered.Keys.ToArray();

    /// <summary>
    /// Deletes every registered file and folder that still exists. Another thread may still be writing into a work
    /// folder while the process goes down, and a recursive delete that meets a file created behind it fails with
    /// "directory not empty"; so every path is deleted again until none is left (up to about a second), and what
    /// still cannot be deleted then is skipped (the process is ending).
    /// </summary>
    public static void DeleteAll()
    {
        var paths = Registered.Keys.ToArray();
        for (int attempt = 0; attempt < 40; attempt++)
        {
            bool left = false;
            foreach (string path in paths)
            {
                try
                {
                    if (Directory.Exists(path)) Directory.Delete(path, recursive: true);
                    else if (File.Exists(path)) File.Delete(path);
                }
                catch (Exception e) when (e is IOException or UnauthorizedAccessException)
                {
                }
                left |= Directory.Exists(path) || File.Exists(path);
            }
            if (!left) break;
            Thread.Sleep(25);
        }
        foreach (string path in paths) Registered.TryRemove(path, out _);
    }

    private sealed class Registration(string path) : IDisposable
    {
        public void Dispose() => Registered.TryRemove(path, out _);
    }
}

/// <summary>
/// A work folder owned for the length of a job: created when missing and then deleted on dispose, registered with
/// <see cref="ScratchPaths"/> meanwhile; a folder that already existed is used and left alone.
/// </summary>
public sealed class ScratchFolder : IDisposable
{
    private readonly bool _created;
    private readonly IDisposable _registration;

    private ScratchFolder(string path, bool created)
    {
        Path = path;
        _created = created;
        // Registered before it is created, so an interruption between the two still removes it.
        _registration = created ? ScratchPaths.Track(path) : new NoRegistration();
        Directory.CreateDirectory(path);
    }

    /// <summary>The folder.</summary>
    public string Path { get; }

    /// <summary>Takes <paramref name="path"/> as the job's work folder.</summary>
    public static ScratchFolder Claim(string path) => new(path, !Directory.Exists(path));

    public void Dispose()
    {
        try
        {
            if (_created && Directory.Exists(Path)) Directory.Delete(Path, recursive: true);
        }
        finally
        {
            _registration.Dispose();
        }
    }

    private sealed class NoRegistration : IDisposable
    {
        public void Dispose() { }
    }
}

/// <summary>
/// The work folders of jobs that write next to an output: <c>.{output name}.{purpose}-{process id}</c> (and that
/// name with a suffix, such as <c>.quantized</c>), in the output's folder. A run ended by SIGKILL or a power cut
/// cannot remove its own; the next run for the same output removes those whose process is gone, so they never
/// pile up (a calibration's may hold a copy of the model's weights).
/// </summary>
public static class WorkFolders
{
    /// <summary>
    /// This process's work folder for <paramref name="outputPath"/> and <paramref name="purpose"/> (not created),
    /// after removing the folders of the same output and purpose left by processes that no longer run; returns
    /// the path and what was removed.
    /// </summary>
    public static (string Path, IReadOnlyList<string> RemovedLeftovers) ForOutput(string outputPath, string purpose)
    {
        string folder = System.IO.Path.GetDirectoryName(System.IO.Path.GetFullPath(outputPath))!;
        string prefix = $".{System.IO.Path.GetFileName(outputPath)}.{purpose}-";
        var removed = new List<string>();
        if (Directory.Exists(folder))
            foreach (string candidate in Directory.GetDirectories(folder, prefix + "*"))
            {
                string rest = System.IO.Path.GetFileName(candidate)[prefix.Length..];
                int digits = 0;
                while (digits < rest.Length && char.IsAsciiDigit(rest[digits])) digits++;
                if (digits == 0 || (digits < rest.Length && rest[digits] != '.')) continue;  // not a name this class makes
                if (!int.TryParse(rest[..digits], System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out int pid)
                    || IsRunning(pid)) continue;
                try
                {
                    Directory.Delete(candidate, recursive: true);
                    removed.Add(candidate);
                }
                catch (Exception e) when (e is IOException or UnauthorizedAccessException)
                {
                    // Someone else's, or in use: leave it.
                }
            }
        return (System.IO.Path.Combine(folder, prefix + Environment.ProcessId.ToString(System.Globalization.CultureInfo.InvariantCulture)), removed);
    }

    private static bool IsRunning(int pid)
    {
        if (pid == Environment.ProcessId) return true;
        try
        {
            using var process = System.Diagnostics.Process.GetProcessById(pid);
            return !process.HasExited;
        }
        catch (Exception e) when (e is ArgumentException or InvalidOperationException)
        {
            return false;  // no such process
        }
    }
}
