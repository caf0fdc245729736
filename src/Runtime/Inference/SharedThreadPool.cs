using Microsoft.ML.OnnxRuntime;

namespace SparseOnnx.Runtime.Inference;

/// <summary>
/// ONNX Runtime's process-wide intra-op thread pool, for sessions created with
/// <c>DisablePerSessionThreads()</c>: models loaded side by side (a benchmark, a host serving several)
/// then never have two pools of spinning threads competing for the same cores. The pool exists only if
/// the process-wide environment is created with it, before anything else creates that environment.
/// </summary>
public static class SharedThreadPool
{
    private static readonly object s_lock = new();
    private static int? s_threads;

    /// <summary>The pool's size, when this process has one.</summary>
    public static int? Threads
    {
        get { lock (s_lock) return s_threads; }
    }

    /// <summary>
    /// Makes sure the process-wide pool exists with <paramref name="threads"/> threads. Returns false, and
    /// changes nothing, when it cannot: ONNX Runtime's environment already exists without a shared pool
    /// (something in the process used ONNX Runtime first) or with one of another size. Callers then use
    /// per-session pools.
    /// </summary>
    public static bool TryUse(int threads)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(threads, 1);
        lock (s_lock)
        {
            if (s_threads is int existing) return existing == threads;
            if (OrtEnv.IsCreated) return false;
            var threading = new OrtThreadingOptions { GlobalIntraOpNumThreads = threads, GlobalInterOpNumThreads = 1, GlobalSpinControl = true };
            var environment = new EnvironmentCreationOptions { threadOptions = threading, logId = "sparseonnx", logLevel = OrtLoggingLevel.ORT_LOGGING_LEVEL_WARNING };
            try
            {
                OrtEnv.CreateInstanceWithOptions(ref environment);
            }
            catch (Exception e) when (e is OnnxRuntimeException or InvalidOperationException)
            {
                return false;  // another thread created the default environment first
            }
            s_threads = threads;
            return true;
        }
    }
}
