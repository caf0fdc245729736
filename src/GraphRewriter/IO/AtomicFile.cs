namespace SparseOnnx.GraphRewriter.IO;

/// <summary>
/// Writes a file under a temporary name in its target folder, flushes it to disk and renames it into
/// place, so the target either keeps its old content or has the complete new one, never half of it.
/// </summary>
internal static class AtomicFile
{
    /// <summary>Writes <paramref name="path"/> through <paramref name="write"/>; IO failures become <see cref="ModelSaveException"/>.</summary>
    public static void Write(string path, Action<Stream> write)
    {
        string full = Path.GetFullPath(path);
        string directory = Path.GetDirectoryName(full)!;
        string temp = Path.Combine(directory, $".{Path.GetFileName(full)}.{Guid.NewGuid():N}.tmp");
        // Registered so that Ctrl-C or SIGTERM between the write and the rename removes it too (ScratchPaths).
        using var scratch = ScratchPaths.Track(temp);
        try
        {
            Directory.CreateDirectory(directory);
            using (var stream = new FileStream(temp, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 16))
            {
                write(stream);
                stream.Flush(flushToDisk: true);
            }
            File.Move(temp, full, overwrite: true);
        }
        catch (Exception e) when (ModelSaver.IsWriteFailure(e))
        {
            throw new ModelSaveException($"Could not write '{path}': {e.Message}", e);
        }
        finally
        {
            try
            {
                if (File.Exists(temp)) File.Delete(temp);
            }
            catch (IOException) { }
            catch (UnauthorizedAccessException) { }
        }
    }
}
