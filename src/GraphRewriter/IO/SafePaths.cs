namespace SparseOnnx.GraphRewriter.IO;

/// <summary>
/// Path checks for external data. A model file is untrusted input: its <c>location</c> strings must not
/// make us read (or a runtime read) anything outside the model's own folder.
/// </summary>
internal static class SafePaths
{
    private static readonly StringComparison PathComparison =
        OperatingSystem.IsWindows() || OperatingSystem.IsMacOS() ? StringComparison.OrdinalIgnoreCase : StringComparison.Ordinal;

    /// <summary>
    /// Resolves an external data <paramref name="location"/> against the model folder and returns the real
    /// (symlink-free) path of the file. Throws <see cref="UnsafeExternalDataException"/> for absolute paths,
    /// <c>..</c> components, and anything whose real path lies outside the model folder's real path;
    /// <see cref="InvalidModelException"/> when the file is missing.
    /// </summary>
    public static string ResolveExternalLocation(string modelDirectory, string location, string tensorName)
    {
        if (string.IsNullOrEmpty(location))
            throw new InvalidModelException($"Tensor '{tensorName}' is stored externally but its external_data has no 'location'.");
        if (location.Contains('\0'))
            throw new UnsafeExternalDataException($"Tensor '{tensorName}': external data location contains a NUL character.");
        if (IsAbsoluteAnywhere(location))
            throw new UnsafeExternalDataException(
                $"Tensor '{tensorName}': external data location '{location}' is an absolute path; " +
                "locations must be relative to the model's folder.");
        var parts = location.Split('/', '\\');
        if (parts.Any(p => p == ".."))
            throw new UnsafeExternalDataException(
                $"Tensor '{tensorName}': external data location '{location}' contains '..'; " +
                "locations must stay inside the model's folder.");

        string realDirectory = RealPath(modelDirectory);
        string candidate = Path.GetFullPath(Path.Combine(realDirectory, Path.Combine(parts.Where(p => p.Length > 0 && p != ".").ToArray())));
        if (!IsInside(candidate, realDirectory))
            throw new UnsafeExternalDataException(
                $"Tensor '{tensorName}': external data location '{location}' resolves outside the model's folder.");
        if (Directory.Exists(candidate))
            throw new InvalidModelException($"Tensor '{tensorName}': external data location '{location}' is a folder, not a file.");
        if (!File.Exists(candidate))
            throw new InvalidModelException(
                $"Tensor '{tensorName}': external data file '{location}' not found (looked for '{candidate}').");
        string real = RealPath(candidate);
        if (!IsInside(real, realDirectory))
            throw new UnsafeExternalDataException(
                $"Tensor '{tensorName}': external data location '{location}' is a symbolic link that leads outside " +
                $"the model's folder (to '{real}').");
        return real;
    }

    /// <summary>True for paths that are absolute on any platform (POSIX root, drive letter, UNC).</summary>
    private static bool IsAbsoluteAnywhere(string path) =>
        path.StartsWith('/') || path.StartsWith('\\') || Path.IsPathRooted(path) ||
        (path.Length >= 2 && char.IsAsciiLetter(path[0]) && path[1] == ':');

    /// <summary>True when <paramref name="path"/> is strictly inside <paramref name="directory"/>.</summary>
    public static bool IsInside(string path, string directory)
    {
        string prefix = directory.EndsWith(Path.DirectorySeparatorChar) ? directory : directory + Path.DirectorySeparatorChar;
        return path.StartsWith(prefix, PathComparison) && path.Length > prefix.Length;
    }

    /// <summary>True when two paths name the same file after resolving symlinks.</summary>
    public static bool SameFile(string a, string b) =>
        string.Equals(RealPath(Path.GetFullPath(a)), RealPath(Path.GetFullPath(b)), PathComparison);

    /// <summary>
    /// The absolute path with every symbolic link resolved, component by component (like POSIX
    /// <c>realpath</c>). Components that do not exist are kept as written.
    /// </summary>
    public static string RealPath(string path)
    {
        string full = Path.GetFullPath(path);
        string root = Path.GetPathRoot(full) ?? "/";
        var pending = new Queue<string>(full[root.Length..].Split(Path.DirectorySeparatorChar, StringSplitOptions.RemoveEmptyEntries));
        string current = root;
        int linksFollowed = 0;
        while (pending.Count > 0)
        {
            string part = pending.Dequeue();
            if (part == ".") continue;
            if (part == "..")
            {
                current = Path.GetDirectoryName(current) ?? root;
                continue;
            }
            string next = Path.Combine(current, part);
            string? target = null;
            try
            {
                target = new FileInfo(next).LinkTarget;
            }
            catch (IOException) { }
            catch (UnauthorizedAccessException) { }
            if (target is null)
            {
                current = next;
                continue;
            }
            if (++linksFollowed > 40)
                throw new InvalidModelException($"Too many levels of symbolic links while resolving '{path}'.");
            // Resolve the target's components physically, in order, as the kernel does: a '..' after a
            // linked folder goes to that folder's real parent, which lexical normalization would get wrong.
            var rest = pending.ToArray();
            pending.Clear();
            if (Path.IsPathRooted(target))
            {
                current = Path.GetPathRoot(target) ?? root;
                target = target[current.Length..];
            }
            foreach (var p in target.Split(Path.DirectorySeparatorChar, StringSplitOptions.RemoveEmptyEntries)) pending.Enqueue(p);
            foreach (var p in rest) pending.Enqueue(p);
        }
        return current;
    }
}
