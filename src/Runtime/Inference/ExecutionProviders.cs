using Microsoft.ML.OnnxRuntime;

namespace SparseOnnx.Runtime.Inference;

/// <summary>The execution provider a session gets for an <see cref="ExecutionDevice"/>: what every SparseOnnx session that runs a model (decoding, calibration probes) uses.</summary>
public static class ExecutionProviders
{
    /// <summary>
    /// Appends the provider <paramref name="device"/> asks for to <paramref name="options"/> and returns the
    /// device the session will run on: CUDA when asked (or, for <see cref="ExecutionDevice.Auto"/>, when
    /// available), else the CPU. <paramref name="cudaProviderLibrary"/>: ORT's CUDA provider library to register
    /// when the runtime has no built-in one (default: $SPARSEONNX_ORT_CUDA_PROVIDER).
    /// </summary>
    /// <exception cref="ExecutionProviderUnavailableException">CUDA was asked for and is not available, with ONNX Runtime's reason.</exception>
    public static ExecutionDevice Apply(SessionOptions options, ExecutionDevice device, string? cudaProviderLibrary = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        if (device == ExecutionDevice.Cpu) return ExecutionDevice.Cpu;
        if (CudaProvider.TryAppend(options, cudaProviderLibrary, out var failure)) return ExecutionDevice.Cuda;
        if (device == ExecutionDevice.Cuda) throw new ExecutionProviderUnavailableException("CUDA", failure!);
        return ExecutionDevice.Cpu;
    }
}
