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

    /// <summary>Deletes every registered file and folder that still exists; failures are skipped (the process is ending).</summary>
    public static void DeleteAll()
    {
        foreach (string path in Registered.Keys)
        {
            try
            {
                if (Directory.Exists(path)) Directory.Delete(path, recursive: true);
                else if (File.Exists(path)) File.Delete(path);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                // Best effort: another thread may still be writing there as the process goes down.
            }
            Registered.TryRemove(path, out _);
        }
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
