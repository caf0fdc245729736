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
