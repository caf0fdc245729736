using SparseOnnx.Runtime.Inference;
using SparseOnnx.Runtime.Tokenization;

namespace SparseOnnx.Runtime.Tests;

/// <summary>The committed reference model (models/llama-brown), opened once for the test classes that share it.</summary>
public sealed class ReferenceModel : IDisposable
{
    public static string Folder => Path.Combine(RepositoryPaths.Models, "llama-brown");
    public static string ModelPath => Path.Combine(Folder, "model.onnx");
    public static string TokenizerPath => Path.Combine(Folder, "tokenizer.model");
    public static string TestText => Path.Combine(Folder, "data", "test.txt");

    public CausalLm Model { get; } = CausalLm.Open(ModelPath, new CausalLmOptions { Threads = 2 });
    public TextTokenizer Tokenizer { get; } = TextTokenizer.Load(TokenizerPath);

    public void Dispose() => Model.Dispose();
}
