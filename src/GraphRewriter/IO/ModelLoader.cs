using System.IO.MemoryMappedFiles;
using Google.Protobuf;
using SparseOnnx.GraphRewriter.Ir;
using SparseOnnx.GraphRewriter.Protobuf;
using SparseOnnx.GraphRewriter.Serialization;

namespace SparseOnnx.GraphRewriter.IO;

/// <summary>
/// Loads ONNX models. The model file is parsed from a memory mapping; external data files are mapped but
/// not read, so loading a model with tens of gigabytes of weights costs only the size of its graph.
/// Every malformed or unsafe input ends in an <see cref="InvalidModelException"/> that names the problem.
/// </summary>
public static class ModelLoader
{
    /// <summary>The largest model file protobuf can parse (its messages are limited to 2 GiB).</summary>
    public const long MaxModelFileBytes = int.MaxValue;

    /// <summary>Loads the model at <paramref name="path"/> with its external data. Dispose the model when done.</summary>
    public static Model Load(string path)
    {
        string fullPath = Path.GetFullPath(path);
        if (Directory.Exists(fullPath)) throw new InvalidModelException($"'{path}' is a folder, not an ONNX model file.");
        if (!File.Exists(fullPath)) throw new InvalidModelException($"Model file '{path}' not found.");

        ModelProto proto = ParseFile(fullPath, path);
        string directory = Path.GetDirectoryName(fullPath) ?? ".";
        var resolver = new ExternalDataResolver(directory);
        try
        {
            var model = new ProtoReader(resolver).ReadModel(proto);
            model.SourcePath = SafePaths.RealPath(fullPath);
            model.ExternalDataPaths = resolver.Files.Select(f => f.FullPath).ToArray();
            foreach (var file in resolver.Files) model.AddResource(file);
            return model;
        }
        catch
        {
            foreach (var file in resolver.Files) file.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Loads a model from bytes. It has no folder, so a model that refers to external data is rejected.
    /// </summary>
    public static Model Load(ReadOnlySpan<byte> bytes)
    {
        var proto = Parse(bytes, "the given bytes");
        return new ProtoReader(external: null).ReadModel(proto);
    }

    private static ModelProto ParseFile(string fullPath, string displayPath)
    {
        long length = new FileInfo(fullPath).Length;
        if (length == 0) throw new InvalidModelException($"'{displayPath}' is empty, not an ONNX model.");
        if (length > MaxModelFileBytes)
            throw new InvalidModelException(
                $"'{displayPath}' is {length} bytes; a protobuf model file cannot exceed 2 GiB " +
                "(models this large keep their weights in external data).");
        try
        {
            using var map = MemoryMappedFile.CreateFromFile(fullPath, FileMode.Open, null, 0, MemoryMappedFileAccess.Read);
            using var view = map.CreateViewAccessor(0, length, MemoryMappedFileAccess.Read);
            unsafe
            {
                byte* pointer = null;
                view.SafeMemoryMappedViewHandle.AcquirePointer(ref pointer);
                try
                {
                    return Parse(new ReadOnlySpan<byte>(pointer + view.PointerOffset, (int)length), $"'{displayPath}'");
                }
                finally
                {
                    view.SafeMemoryMappedViewHandle.ReleasePointer();
                }
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new InvalidModelException($"Cannot read model file '{displayPath}': {e.Message}", e);
        }
    }

    private static ModelProto Parse(ReadOnlySpan<byte> bytes, string what)
    {
        try
        {
            return ModelProto.Parser.ParseFrom(bytes);
        }
        catch (InvalidProtocolBufferException e)
        {
            throw new InvalidModelException($"{what} is not a valid ONNX model (protobuf parse error: {e.Message})", e);
        }
    }
}
