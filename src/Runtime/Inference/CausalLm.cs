using Microsoft.ML.OnnxRuntime;
using SparseOnnx.CustomOps;

namespace SparseOnnx.Runtime.Inference;

/// <summary>Where a <see cref="CausalLm"/> runs.</summary>
public enum ExecutionDevice
{
    /// <summary>ONNX Runtime's CPU execution provider.</summary>
    Cpu,
    /// <summary>The CUDA execution provider; opening fails when the ONNX Runtime in use has none.</summary>
    Cuda,
    /// <summary>CUDA when the ONNX Runtime in use has it and a GPU answers, otherwise CPU.</summary>
    Auto,
}

/// <summary>How to open a <see cref="CausalLm"/>.</summary>
public sealed record CausalLmOptions
{
    /// <summary>Threads for one node's work (ONNX Runtime's intra-op pool); 0 lets ONNX Runtime choose.</summary>
    public int Threads { get; init; }

    /// <summary>Where to run; CPU by default.</summary>
    public ExecutionDevice Device { get; init; } = ExecutionDevice.Cpu;

    /// <summary>ONNX Runtime's graph optimization level; all optimizations by default, as a service would run.</summary>
    public GraphOptimizationLevel OptimizationLevel { get; init; } = GraphOptimizationLevel.ORT_ENABLE_ALL;

    /// <summary>
    /// Run on the process-wide ONNX Runtime thread pool (<see cref="Inference.SharedThreadPool"/>) instead of a
    /// pool of <see cref="Threads"/> per session: models loaded side by side (a benchmark, a host serving
    /// several) then never have two pools of spinning threads competing for the same cores.
    /// </summary>
    public bool SharedThreadPool { get; init; }

    /// <summary>When set, ONNX Runtime writes a per-node profile (chrome://tracing JSON) to files starting with this prefix.</summary>
    public string? ProfilePrefix { get; init; }

    /// <summary>Registers the SparseOnnx op library (needed by sparsified models; harmless for dense ones).</summary>
    public bool RegisterSparseOnnxOps { get; init; } = true;

    /// <summary>
    /// ONNX Runtime's CUDA provider library (<c>libonnxruntime_providers_cuda.so</c>) to register as a plugin when
    /// the ONNX Runtime in use has no built-in CUDA provider; by default <c>$SPARSEONNX_ORT_CUDA_PROVIDER</c>.
    /// </summary>
    public string? CudaProviderLibrary { get; init; }
}

/// <summary>
/// A causal language model loaded in ONNX Runtime, with the SparseOnnx ops registered. One instance serves
/// any number of concurrent requests: each request keeps its own state in a <see cref="DecoderSequence"/>,
/// and ONNX Runtime's <c>Run</c> is safe to call from several threads on one session.
/// </summary>
public sealed class CausalLm : IDisposable
{
    private readonly InferenceSession _session;

    private CausalLm(InferenceSession session, string path, DecoderSignature signature, ExecutionDevice device)
    {
        _session = session;
        ModelPath = path;
        Signature = signature;
        Device = device;
    }

    /// <summary>The model file.</summary>
    public string ModelPath { get; }

    /// <summary>The decoder's inputs and outputs.</summary>
    public DecoderSignature Signature { get; }

    /// <summary>Where the model actually runs (never <see cref="ExecutionDevice.Auto"/>).</summary>
    public ExecutionDevice Device { get; }

    internal InferenceSession Session => _session;

    /// <summary>
    /// Opens <paramref name="modelPath"/>. Throws <see cref="FileNotFoundException"/>, <see cref="UnsupportedModelException"/>
    /// when it is not a KV-cache decoder, or <see cref="OnnxRuntimeException"/> when ONNX Runtime rejects it.
    /// </summary>
    public static CausalLm Open(string modelPath, CausalLmOptions? options = null)
    {
        options ??= new CausalLmOptions();
        if (!File.Exists(modelPath)) throw new FileNotFoundException($"The model '{modelPath}' does not exist.", modelPath);
        using var sessionOptions = new SessionOptions
        {
            GraphOptimizationLevel = options.OptimizationLevel,
            ExecutionMode = ExecutionMode.ORT_SEQUENTIAL,
        };
        if (options.SharedThreadPool)
        {
            if (Inference.SharedThreadPool.Threads is null)
                throw new InvalidOperationException("SharedThreadPool needs SharedThreadPool.TryUse(threads) to have succeeded first.");
            sessionOptions.DisablePerSessionThreads();
        }
        else
        {
            sessionOptions.IntraOpNumThreads = options.Threads;
            sessionOptions.InterOpNumThreads = 1;
        }
        if (options.RegisterSparseOnnxOps) sessionOptions.RegisterSparseOnnxOps();
        if (options.ProfilePrefix is { } prefix)
        {
            // The prefix first: setting EnableProfiling hands the current prefix to ONNX Runtime.
            sessionOptions.ProfileOutputPathPrefix = prefix;
            sessionOptions.EnableProfiling = true;
        }
        var device = ExecutionProviders.Apply(sessionOptions, options.Device, options.CudaProviderLibrary);
        var session = new InferenceSession(modelPath, sessionOptions);
        try
        {
            return new CausalLm(session, modelPath, DecoderSignature.Discover(session, modelPath), device);
        }
        catch
        {
            session.Dispose();
            throw;
        }
    }

    /// <summary>Starts a new request with an empty KV cache. Dispose it when the request ends.</summary>
    public DecoderSequence StartSequence() => new(this);

    /// <summary>
    /// Runs <paramref name="batch"/> independent windows of <paramref name="length"/> tokens each with no past
    /// (all positions attended), and returns the logits [batch, length, vocabulary] as float32.
    /// </summary>
    public float[] ForwardWindows(ReadOnlySpan<long> tokens, int batch, int length, out int vocabulary)
    {
        if (batch <= 0 || length <= 0 || tokens.Length != (long)batch * length)
            throw new ArgumentException($"Expected {batch} × {length} tokens, got {tokens.Length}.", nameof(tokens));
        var (mask, positions) = DecoderInputs.ForWindows(batch, length);
        using var run = new DecoderRun(this, tokens.ToArray(), mask, positions, batch, length, pastValues: null);
        var logits = run.LogitsAsFloat(out var shape);
        vocabulary = (int)shape[2];
        return logits;
    }

    /// <summary>Ends ONNX Runtime profiling (when <see cref="CausalLmOptions.ProfilePrefix"/> was set) and returns the profile's path.</summary>
    public string EndProfiling() => _session.EndProfiling();

    /// <inheritdoc />
    public void Dispose() => _session.Dispose();
}

/// <summary>The execution provider asked for is not available in the ONNX Runtime this process loaded.</summary>
public sealed class ExecutionProviderUnavailableException(string provider, Exception inner)
    : Exception($"The {provider} execution provider is not available in this ONNX Runtime ({inner.Message}). " +
                $"Use the GPU build of ONNX Runtime (NuGet Microsoft.ML.OnnxRuntime.Gpu, or the command line built by ./build.sh --gpu) with its " +
                $"{provider} libraries (CUDA 13, cuDNN 9) on the library path, or name ORT's {provider} provider library " +
                $"in ${CudaProvider.LibraryVariable}, or run on the CPU (device cpu or auto).", inner)
{
    /// <summary>The provider that was asked for.</summary>
    public string Provider { get; } = provider;
}
