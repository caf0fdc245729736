using SparseOnnx.Runtime.Evaluation;
using SparseOnnx.Calibration.Data;
using SparseOnnx.Runtime.Tokenization;

namespace SparseOnnx.Pruning.Tests;

/// <summary>The committed llama-brown model and calibration windows cut from its validation text.</summary>
internal static class ReferenceModel
{
    public static string Folder => Path.Combine(RepositoryPaths.Models, "llama-brown");

    public static string ModelPath => Path.Combine(Folder, "model.onnx");

    /// <summary><paramref name="samples"/> calibration windows of <paramref name="length"/> tokens (and one held out).</summary>
    public static CalibrationSet Windows(int length, int samples) => CalibrationSet.FromTextFile(Path.Combine(Folder, "data", "valid.txt"),
        TextTokenizer.Load(Path.Combine(Folder, "tokenizer.model")), new CalibrationSetOptions { SequenceLength = length, Samples = samples, ValidationSamples = 1 }, TextReading.PerLine);
}
