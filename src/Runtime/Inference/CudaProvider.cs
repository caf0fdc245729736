using Microsoft.ML.OnnxRuntime;

namespace SparseOnnx.Runtime.Inference;

/// <summary>
/// ONNX Runtime's CUDA execution provider for a session: the built-in one of a GPU build of ONNX Runtime
/// (NuGet <c>Microsoft.ML.OnnxRuntime.Gpu</c>), else ORT's CUDA provider library registered as a plugin
/// (ONNX Runtime ≥ 1.22: a CPU runtime plus <c>libonnxruntime_providers_cuda.so</c>, how the npm 1.29 runtime
/// ships it). The SparseOnnx op library runs TopKSparseMatMul on CUDA in either.
/// </summary>
internal static class CudaProvider
{
    /// <summary>The environment variable naming the provider library when no path is given.</summary>
    public const string LibraryVariable = "SPARSEONNX_ORT_CUDA_PROVIDER";

    private const string ProviderName = "CUDAExecutionProvider";
    private static readonly object RegistrationGate = new();
    private static string? _registeredLibrary;

    /// <summary>
    /// Appends the CUDA provider (device 0) to <paramref name="options"/>. Returns false, with what each way
    /// answered, when neither is available.
    /// </summary>
    public static bool TryAppend(SessionOptions options, string? providerLibrary, out Exception? failure)
    {
        failure = null;
        Exception builtIn;
        try
        {
            options.AppendExecutionProvider_CUDA(0);
            return true;
        }
        catch (Exception e) when (e is OnnxRuntimeException or EntryPointNotFoundException or DllNotFoundException)
        {
            // The CPU-only package lacks the entry point; a GPU package without CUDA libraries fails to load them.
            builtIn = e;
        }

        string? library = providerLibrary ?? Environment.GetEnvironmentVariable(LibraryVariable);
        if (string.IsNullOrEmpty(library))
        {
            failure = builtIn;
            return false;
        }
        try
        {
            var devices = CudaDevices(library);
            options.AppendExecutionProvider(OrtEnv.Instance(), devices, new Dictionary<string, string>());
            return true;
        }
        catch (Exception e) when (e is OnnxRuntimeException or InvalidOperationException or FileNotFoundException)
        {
            failure = new InvalidOperationException($"{builtIn.Message}; and the CUDA provider library {library}: {e.Message}", e);
            return false;
        }
    }

    // The CUDA provider's devices, registering its library with the process's ORT environment once.
    private static List<OrtEpDevice> CudaDevices(string library)
    {
        lock (RegistrationGate)
        {
            if (_registeredLibrary is null)
            {
                if (!File.Exists(library)) throw new FileNotFoundException("the file does not exist", library);
                OrtEnv.Instance().RegisterExecutionProviderLibrary("CUDA", library);
                _registeredLibrary = library;
            }
            else if (_registeredLibrary != library)
            {
                throw new InvalidOperationException($"another CUDA provider library ({_registeredLibrary}) is already registered in this process");
            }
        }
        var all = OrtEnv.Instance().GetEpDevices();
        var cuda = all.Where(d => d.EpName == ProviderName).Take(1).ToList();
        if (cuda.Count == 0)
            throw new InvalidOperationException($"it offers no device (execution providers: {string.Join(", ", all.Select(d => d.EpName))})");
        return cuda;
    }
}
