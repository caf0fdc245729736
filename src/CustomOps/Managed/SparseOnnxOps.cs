using System.Runtime.InteropServices;
using Microsoft.ML.OnnxRuntime;

namespace SparseOnnx.CustomOps;

/// <summary>
/// The SparseOnnx custom-op library: where its native part is, and how to register it with ONNX Runtime.
/// </summary>
public static class SparseOnnxOps
{
    /// <summary>The operator domain of SparseOnnx ops.</summary>
    public const string Domain = "ai.sparseonnx";

    /// <summary>The operator set version of <see cref="Domain"/> the library implements.</summary>
    public const long OpsetVersion = 1;

    /// <summary>The sparse projection op.</summary>
    public const string TopKSparseMatMul = "TopKSparseMatMul";

    /// <summary>Environment variable that, when set, names the native library to use instead of the bundled one.</summary>
    public const string LibraryPathVariable = "SPARSEONNX_OPS_LIBRARY";

    /// <summary>File name of the native library on this platform.</summary>
    public static string NativeLibraryFileName =>
        OperatingSystem.IsWindows() ? "sparseonnx_ops.dll" : OperatingSystem.IsMacOS() ? "libsparseonnx_ops.dylib" : "libsparseonnx_ops.so";

    /// <summary>
    /// The native library's path: <c>SPARSEONNX_OPS_LIBRARY</c> when set, otherwise the copy next to this
    /// assembly (or under <c>runtimes/&lt;rid&gt;/native</c>). Throws <see cref="FileNotFoundException"/> naming every
    /// place it looked when there is none.
    /// </summary>
    public static string LibraryPath
    {
        get
        {
            var searched = new List<string>();
            if (Environment.GetEnvironmentVariable(LibraryPathVariable) is { Length: > 0 } requested)
            {
                if (File.Exists(requested)) return Path.GetFullPath(requested);
                throw new FileNotFoundException($"{LibraryPathVariable} names '{requested}', which does not exist.", requested);
            }
            string directory = Path.GetDirectoryName(typeof(SparseOnnxOps).Assembly.Location) is { Length: > 0 } d ? d : AppContext.BaseDirectory;
            foreach (string candidate in new[]
            {
                Path.Combine(directory, NativeLibraryFileName),
                Path.Combine(directory, "runtimes", RuntimeInformation.RuntimeIdentifier, "native", NativeLibraryFileName),
                Path.Combine(AppContext.BaseDirectory, NativeLibraryFileName),
            })
            {
                if (File.Exists(candidate)) return candidate;
                searched.Add(candidate);
            }
            throw new FileNotFoundException(
                $"The SparseOnnx op library ({NativeLibraryFileName}) was not found; looked in: {string.Join(", ", searched.Distinct())}. " +
                $"Build it with ./build.sh, or set {LibraryPathVariable}.");
        }
    }
}

/// <summary>Registration of the SparseOnnx ops with ONNX Runtime session options.</summary>
public static class SessionOptionsExtensions
{
    /// <summary>
    /// Registers the SparseOnnx custom ops (domain <c>ai.sparseonnx</c>) with these session options, so
    /// sessions created from them can run models that SparseOnnx rewrote. ONNX Runtime keeps the native
    /// library loaded for as long as it needs it.
    /// </summary>
    public static SessionOptions RegisterSparseOnnxOps(this SessionOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.RegisterCustomOpLibrary(SparseOnnxOps.LibraryPath);
        return options;
    }
}
