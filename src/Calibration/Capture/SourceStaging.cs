using SparseOnnx.GraphRewriter.IO;

namespace SparseOnnx.Calibration.Capture;

/// <summary>
/// The model as calibration reads it: its file and its external data files hard-linked into the work folder,
/// so that the probe models saved there (<see cref="ProbeSession"/>, with the saver reusing external data of
/// their own folder) reference the source's bytes instead of copying them: for a Llama-3.2-1B-sized model,
/// 6 GB of disk and the minute it took to write them. Removing the work folder removes only the links.
/// </summary>
internal static class SourceStaging
{
    /// <summary>The staged model's file name in the work folder.</summary>
    public const string StagedModelName = "source.onnx";

    // Files the probes write into the work folder: a linked file of the same name would be replaced.
    private static readonly HashSet<string> Reserved = new(StringComparer.OrdinalIgnoreCase)
    {
        StagedModelName, "probe.onnx", "probe.onnx.data", "training.onnx", "training.onnx.data",
    };

    /// <summary>
    /// Links <paramref name="modelPath"/>'s external data into <paramref name="workFolder"/> and returns the
    /// model path to load there; returns <paramref name="modelPath"/> itself (the probes then copy the weights,
    /// as they must for inline ones) when the model has no external data, when a data file is not directly in
    /// the model's folder or has a reserved name, or when the file system refuses hard links (another device).
    /// </summary>
    public static string Stage(string modelPath, IReadOnlyList<string> externalDataPaths, string workFolder, out long linkedBytes)
    {
        linkedBytes = 0;
        if (externalDataPaths.Count == 0) return modelPath;
        string folder = Path.GetDirectoryName(Path.GetFullPath(modelPath))!;
        foreach (string data in externalDataPaths)
            if (!string.Equals(Path.GetDirectoryName(Path.GetFullPath(data)), folder, StringComparison.Ordinal) || Reserved.Contains(Path.GetFileName(data)))
                return modelPath;
        Directory.CreateDirectory(workFolder);
        var created = new List<string>();
        bool Link(string source, string name)
        {
            string link = Path.Combine(workFolder, name);
            if (File.Exists(link) || !FileLinks.TryHardLink(source, link)) return false;
            created.Add(link);
            return true;
        }
        if (externalDataPaths.All(data => Link(data, Path.GetFileName(data))))
        {
            // The model file holds the graph (small beside its data), so a copy is fine where a link is not possible.
            string staged = Path.Combine(workFolder, StagedModelName);
            if (!Link(modelPath, StagedModelName))
            {
                File.Copy(modelPath, staged);
                created.Add(staged);
            }
            linkedBytes = externalDataPaths.Sum(d => new FileInfo(d).Length);
            return staged;
        }
        foreach (string link in created) File.Delete(link);
        return modelPath;
    }
}
