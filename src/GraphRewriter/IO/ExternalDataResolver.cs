using System.Globalization;
using SparseOnnx.GraphRewriter.Ir;
using SparseOnnx.GraphRewriter.Protobuf;

namespace SparseOnnx.GraphRewriter.IO;

/// <summary>
/// Turns a tensor's <c>external_data</c> entries into an <see cref="ExternalTensorData"/>: checks the location
/// is safe, opens (once) and maps the file, and checks the byte range lies inside it and matches the
/// tensor's type and shape. Every problem is reported at load time, naming the tensor.
/// </summary>
internal sealed class ExternalDataResolver
{
    private readonly string _modelDirectory;
    private readonly Dictionary<string, ExternalDataFile> _files = new(StringComparer.Ordinal);

    public ExternalDataResolver(string modelDirectory) => _modelDirectory = modelDirectory;

    /// <summary>Every file opened so far (the caller owns and disposes them).</summary>
    public IReadOnlyCollection<ExternalDataFile> Files => _files.Values;

    public ExternalTensorData Resolve(IEnumerable<StringStringEntryProto> entries, string what, long? expectedBytes, string typeAndShape)
    {
        string? location = null, offsetText = null, lengthText = null;
        foreach (var entry in entries)
        {
            switch (entry.Key)
            {
                case "location": location = Unique(location, entry, what); break;
                case "offset": offsetText = Unique(offsetText, entry, what); break;
                case "length": lengthText = Unique(lengthText, entry, what); break;
                // "checksum" and unknown keys do not affect where the bytes are.
            }
        }
        if (location is null)
            throw new InvalidModelException($"The {what} is stored externally but its external_data has no 'location'.");

        string path = SafePaths.ResolveExternalLocation(_modelDirectory, location, what);
        if (!_files.TryGetValue(path, out var file))
        {
            try
            {
                file = new ExternalDataFile(path);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                throw new InvalidModelException($"Cannot open external data file '{location}' of the {what}: {e.Message}", e);
            }
            _files.Add(path, file);
        }

        long offset = ParseNonNegative(offsetText, "offset", what) ?? 0;
        if (offset > file.Length)
            throw new InvalidModelException(
                $"The {what} starts at offset {offset} of '{location}', past the end of the file ({file.Length} bytes).");
        long length = ParseNonNegative(lengthText, "length", what) ?? file.Length - offset;
        if (length > file.Length - offset)
            throw new InvalidModelException(
                $"The {what} needs bytes {offset}..{offset + (decimal)length} of '{location}', but the file has only {file.Length} bytes.");
        if (expectedBytes is not null && length != expectedBytes)
            throw new InvalidModelException(
                $"The {what} of {typeAndShape} needs {expectedBytes} bytes, but its external data in '{location}' is {length} bytes long.");
        return new ExternalTensorData(file, offset, length);
    }

    private static string Unique(string? existing, StringStringEntryProto entry, string what) =>
        existing is null ? entry.Value : throw new InvalidModelException($"The {what} lists external_data key '{entry.Key}' twice.");

    private static long? ParseNonNegative(string? text, string key, string what)
    {
        if (text is null) return null;
        if (!long.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out long value))
            throw new InvalidModelException($"The {what} has external_data {key} '{text}', which is not a non-negative integer.");
        return value;
    }
}
