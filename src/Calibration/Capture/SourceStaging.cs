using SparseOnnx.GraphRewriter.IO;

namespace SparseOnnx.Calibration.Capture;

/// <summary>
/// The model's external data files hard-linked into the work folder, so that the probe models saved there
/// (<see cref="ProbeSession"/>, through <see cref="SaveOptions.ExternalDataLinks"/>) reference the source's bytes
/// instead of copying them: for a Llama-3.2-1B-sized model, 6 GB of disk and the minute it took to write them.
/// ONNX Runtime reads external data only from inside the model's folder, hence links rather than paths. Removing
/// the work folder removes only the links.
/// </summary>
internal static class SourceStaging
{
    // Files the probes write into the work folder: a linked file of the same name would be replaced.
    private static readonly HashSet<string> Reserved = new(StringComparer.OrdinalIgnoreCase)
    {
        "probe.onnx", "probe.onnx.data", "probe-whole.onnx", "probe-whole.onnx.data", "training.onnx", "training.onnx.data",
        "embedding.onnx", "embedding.onnx.data", "block.onnx", "block.onnx.data", "head.onnx", "head.onnx.data",
    };

    /// <summary>
    /// Links every file of <paramref name="externalDataPaths"/> into <paramref name="workFolder"/> under its own name
    /// and returns the links by source path; returns none (the probes then copy the weights, as they must for inline
    /// ones) when there is no external data, when two files share a name or one has a reserved name, or when the file
    /// system refuses hard links (another device).
    /// </summary>
    public static IReadOnlyDictionary<string, string> Link(IReadOnlyList<string> externalDataPaths, string workFolder, out long linkedBytes)
    {
        linkedBytes = 0;
        var links = new Dictionary<string, string>(StringComparer.Ordinal);
        if (externalDataPaths.Count == 0) return links;
        var names = externalDataPaths.Select(Path.GetFileName).ToList();
        if (names.Distinct(StringComparer.OrdinalIgnoreCase).Count() != names.Count || names.Any(n => Reserved.Contains(n!))) return links;
        Directory.CreateDirectory(workFolder);
        foreach (string data in externalDataPaths)
        {
            string name = Path.GetFileName(data);
            string link = Path.Combine(workFolder, name);
            if (File.Exists(link) || !FileLinks.TryHardLink(data, link))
            {
                foreach (string made in links.Values) File.Delete(Path.Combine(workFolder, made));
                return new Dictionary<string, string>();
            }
            links[data] = name;
        }
        linkedBytes = externalDataPaths.Sum(d => new FileInfo(d).Length);
        return links;
    }
}
