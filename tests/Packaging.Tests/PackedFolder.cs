using System.Diagnostics;
using System.Text;
using System.Text.RegularExpressions;
using SparseOnnx.GraphRewriter.IO;
using SparseOnnx.GraphRewriter.Sparsify;

namespace SparseOnnx.Packaging.Tests;

/// <summary>
/// artifacts/packages as ./build.sh pack leaves it, and how a test uses it as a user would: projects in their own
/// temporary folder outside the repository, restoring the SparseOnnx packages from that folder only.
/// </summary>
public static partial class PackedFolder
{
    public static string Path => System.IO.Path.Combine(RepositoryPaths.Root, "artifacts", "packages");

    /// <summary>The version every package has (Version.props).</summary>
    public static string Version { get; } = ReadVersion();

    /// <summary>The ONNX Runtime version the solution pins (Directory.Packages.props).</summary>
    public static string OnnxRuntimeVersion { get; } = PinnedVersion("Microsoft.ML.OnnxRuntime");

    /// <summary>The packed file of <paramref name="id"/>; fails, saying how to make it, when it is missing.</summary>
    public static string Package(string id)
    {
        string file = System.IO.Path.Combine(Path, $"{id}.{Version}.nupkg");
        Assert.True(File.Exists(file), $"{file} is missing: ./build.sh pack (which ./build.sh test runs first) makes the packages.");
        return file;
    }

    /// <summary>
    /// A NuGet.config for a project in <paramref name="folder"/>: the packed folder and the configured registry as
    /// sources, and a package cache of its own, so an earlier pack of the same version cached elsewhere is never
    /// used; packages the machine already has (ONNX Runtime's ~0.5 GB) come from the user's cache as a fallback
    /// folder, read-only. The SparseOnnx packages are not in that cache unless a user restored them there
    /// (./build.sh pack drops such copies). <paramref name="withPackedSource"/> false leaves the packed folder out
    /// (and with it the source mapping, which <c>--add-source</c> refuses), for commands given it with <c>--add-source</c>.
    /// </summary>
    public static void WriteNuGetConfig(string folder, bool withPackedSource = true)
    {
        string userCache = UserCache;
        string cache = PackageCache(folder);
        string sources = withPackedSource ? PackedSourceWithMapping : "";
        File.WriteAllText(System.IO.Path.Combine(folder, "NuGet.config"), $"""
            <?xml version="1.0" encoding="utf-8"?>
            <configuration>
              <config>
                <add key="globalPackagesFolder" value="{cache}" />
              </config>
            {sources}
              <fallbackPackageFolders>
                <add key="user" value="{userCache}" />
              </fallbackPackageFolders>
            </configuration>
            """);
    }

    /// <summary>
    /// The same isolation for a build in place, of a project under examples/ whose own NuGet.config names the packed
    /// folder: MSBuild properties (for <c>dotnet build</c>, <c>dotnet run</c>, file-based apps included) that make the
    /// package cache <see cref="PackageCache"/>(<paramref name="folder"/>) and the user's cache a read-only fallback.
    /// </summary>
    public static string[] IsolatedRestoreProperties(string folder) =>
        [$"-p:RestorePackagesPath={PackageCache(folder)}", $"-p:RestoreFallbackFolders={UserCache}"];

    /// <summary>The package cache of a project in <paramref name="folder"/> (<see cref="WriteNuGetConfig"/>, <see cref="IsolatedRestoreProperties"/>).</summary>
    public static string PackageCache(string folder) => System.IO.Path.Combine(folder, ".packages");

    /// <summary>Asserts that <paramref name="ids"/> were restored into <paramref name="cache"/>, from the packed folder (NuGet records each package's source).</summary>
    public static void AssertRestoredFromPackedFolder(string cache, params string[] ids)
    {
        foreach (string id in ids)
        {
            string metadata = System.IO.Path.Combine(cache, id.ToLowerInvariant(), Version, ".nupkg.metadata");
            Assert.True(File.Exists(metadata), $"{id} {Version} was not restored into {cache}: it came from elsewhere (a fallback folder?)");
            using var document = System.Text.Json.JsonDocument.Parse(File.ReadAllText(metadata));
            Assert.Equal(System.IO.Path.GetFullPath(Path), System.IO.Path.GetFullPath(document.RootElement.GetProperty("source").GetString()!));
        }
    }

    /// <summary>
    /// The files under <paramref name="folder"/> with their sizes and times, leaving out bin/ and obj/ (ignored build
    /// output): equal before and after a run means the run left nothing behind there.
    /// </summary>
    public static SortedDictionary<string, string> Snapshot(string folder)
    {
        var files = new SortedDictionary<string, string>(StringComparer.Ordinal);
        foreach (string file in Directory.EnumerateFiles(folder, "*", SearchOption.AllDirectories))
        {
            string relative = System.IO.Path.GetRelativePath(folder, file);
            var parts = relative.Split(System.IO.Path.DirectorySeparatorChar);
            if (parts.Any(p => p is "bin" or "obj")) continue;
            var info = new FileInfo(file);
            files[relative] = $"{info.Length} bytes, {info.LastWriteTimeUtc:O}";
        }
        foreach (string directory in Directory.EnumerateDirectories(folder, "*", SearchOption.AllDirectories))
        {
            string relative = System.IO.Path.GetRelativePath(folder, directory);
            if (!relative.Split(System.IO.Path.DirectorySeparatorChar).Any(p => p is "bin" or "obj")) files[relative + "/"] = "folder";
        }
        return files;
    }

    // The user's package cache: where ONNX Runtime and the rest already are on this machine.
    private static string UserCache => Environment.GetEnvironmentVariable("NUGET_PACKAGES") is { Length: > 0 } set
        ? set : System.IO.Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".nuget", "packages");

    private static string PackedSourceWithMapping => $"""
              <packageSources>
                <add key="sparseonnx" value="{Path}" />
              </packageSources>
              <packageSourceMapping>
                <packageSource key="sparseonnx">
                  <package pattern="SparseOnnx.*" />
                  <package pattern="sparseonnx" />
                </packageSource>
                <packageSource key="nuget.org">
                  <package pattern="*" />
                </packageSource>
              </packageSourceMapping>
            """;

    /// <summary>Runs <c>dotnet</c> with <paramref name="arguments"/> in <paramref name="folder"/>; fails with its output unless it exits with 0.</summary>
    public static string Dotnet(string folder, IEnumerable<string> arguments, TimeSpan timeout, IDictionary<string, string>? environment = null)
    {
        var (exitCode, output) = Run("dotnet", folder, arguments, timeout, environment);
        Assert.True(exitCode == 0, $"dotnet {string.Join(' ', arguments)} exited with {exitCode}:\n{output}");
        return output;
    }

    /// <summary>Runs a program and returns its exit code and its stdout and stderr together.</summary>
    public static (int ExitCode, string Output) Run(string program, string folder, IEnumerable<string> arguments, TimeSpan timeout,
        IDictionary<string, string>? environment = null)
    {
        var start = new ProcessStartInfo(program)
        {
            WorkingDirectory = folder,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (string argument in arguments) start.ArgumentList.Add(argument);
        // The test host's MSBuild variables would point a child build at the test's own SDK resolution.
        foreach (string name in start.Environment.Keys.Where(k => k.StartsWith("MSBuild", StringComparison.OrdinalIgnoreCase)).ToList())
            start.Environment.Remove(name);
        start.Environment["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1";
        start.Environment["DOTNET_NOLOGO"] = "1";
        start.Environment["DOTNET_SKIP_FIRST_TIME_EXPERIENCE"] = "1";
        if (environment is not null) foreach (var (name, value) in environment) start.Environment[name] = value;
        using var process = Process.Start(start)!;
        var output = new StringBuilder();
        var gate = new object();
        process.OutputDataReceived += (_, e) => { if (e.Data is not null) lock (gate) output.AppendLine(e.Data); };
        process.ErrorDataReceived += (_, e) => { if (e.Data is not null) lock (gate) output.AppendLine(e.Data); };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        if (!process.WaitForExit(timeout))
        {
            process.Kill(entireProcessTree: true);
            Assert.Fail($"{program} {string.Join(' ', arguments)} did not finish in {timeout}:\n{output}");
        }
        process.WaitForExit();
        lock (gate) return (process.ExitCode, output.ToString());
    }

    private static string ReadVersion()
    {
        string props = File.ReadAllText(System.IO.Path.Combine(RepositoryPaths.Root, "Version.props"));
        return VersionElement().Match(props) is { Success: true } m ? m.Groups[1].Value : throw new InvalidOperationException("Version.props has no SparseOnnxVersion");
    }

    private static string PinnedVersion(string id)
    {
        string props = File.ReadAllText(System.IO.Path.Combine(RepositoryPaths.Root, "Directory.Packages.props"));
        var m = Regex.Match(props, $"<PackageVersion Include=\"{Regex.Escape(id)}\" Version=\"([^\"]+)\"");
        return m.Success ? m.Groups[1].Value : throw new InvalidOperationException($"Directory.Packages.props pins no {id}");
    }

    [GeneratedRegex("<SparseOnnxVersion>([^<]+)</SparseOnnxVersion>")]
    private static partial Regex VersionElement();
}

/// <summary>The reference model the packaged apps run, rewritten by the in-repo rewriter.</summary>
internal static class SparseReference
{
    public static string Folder => System.IO.Path.Combine(RepositoryPaths.Models, "llama-brown");

    /// <summary>llama-brown with every projection sparsified uniformly at 50% (top-k), saved at <paramref name="path"/>; returns the path.</summary>
    public static string WriteHalfSparse(string path)
    {
        using var model = ModelLoader.Load(System.IO.Path.Combine(Folder, "model.onnx"));
        new SparsifyPass(new SparsifyOptions { Sparsity = 0.5 }).Run(model);
        ModelSaver.Save(model, path, new SaveOptions());
        return path;
    }
}
