namespace SparseOnnx.GraphRewriter;

/// <summary>
/// An error SparseOnnx reports to its user: the message names the problem (file, tensor, node) and,
/// where there is one, the fix. Anything else that escapes the library is a bug.
/// </summary>
public class SparseOnnxException : Exception
{
    /// <summary>Creates the exception.</summary>
    public SparseOnnxException(string message, Exception? inner = null) : base(message, inner) { }
}

/// <summary>The input is not a valid ONNX model, or refers to data that is missing, malformed or unsafe.</summary>
public class InvalidModelException : SparseOnnxException
{
    /// <summary>Creates the exception.</summary>
    public InvalidModelException(string message, Exception? inner = null) : base(message, inner) { }
}

/// <summary>An external data location that could read outside the model's folder.</summary>
public sealed class UnsafeExternalDataException : InvalidModelException
{
    /// <summary>Creates the exception.</summary>
    public UnsafeExternalDataException(string message) : base(message) { }
}

/// <summary>Saving failed; no output file was left behind.</summary>
public sealed class ModelSaveException : SparseOnnxException
{
    /// <summary>Creates the exception.</summary>
    public ModelSaveException(string message, Exception? inner = null) : base(message, inner) { }
}

/// <summary>A sparsity plan file is malformed, unsafe, or does not fit the model it is applied to.</summary>
public sealed class InvalidPlanException : SparseOnnxException
{
    /// <summary>Creates the exception.</summary>
    public InvalidPlanException(string message, Exception? inner = null) : base(message, inner) { }
}

/// <summary>A rewrite found nothing it could change; the message lists what it looked at and why it left each alone.</summary>
public sealed class NothingToRewriteException : SparseOnnxException
{
    /// <summary>Creates the exception.</summary>
    public NothingToRewriteException(string message) : base(message) { }
}
