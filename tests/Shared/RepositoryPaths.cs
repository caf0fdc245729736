namespace SparseOnnx.Tests.Shared;

/// <summary>Locates committed fixtures relative to the repository root (shared by the test projects).</summary>
public static class RepositoryPaths
{
    public static string Root { get; } = FindRoot();

    public static string Models => Path.Combine(Root, "models");

    private static string FindRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "SparseOnnx.sln"))) return dir.FullName;
        throw new InvalidOperationException("Cannot find the repository root (SparseOnnx.sln) above " + AppContext.BaseDirectory);
    }
}
