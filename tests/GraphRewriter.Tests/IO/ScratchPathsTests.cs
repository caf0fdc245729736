using SparseOnnx.GraphRewriter.IO;

namespace SparseOnnx.GraphRewriter.Tests.IO;

/// <summary>DeleteAll removes every path the process tracks, so these tests run alone, never beside a test that saves a model.</summary>
[CollectionDefinition(nameof(ScratchPathsTests), DisableParallelization = true)]
public sealed class ScratchPathsCollection;

[Collection(nameof(ScratchPathsTests))]
public class ScratchPathsTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("sparseonnx-scratch-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public void AClaimedFolderIsCreatedTrackedAndRemovedOnDispose()
    {
        string work = Path.Combine(_dir, "work");
        using (var scratch = ScratchFolder.Claim(work))
        {
            Assert.True(Directory.Exists(work));
            Assert.Contains(Path.GetFullPath(work), ScratchPaths.Current);
            File.WriteAllText(Path.Combine(work, "probe.onnx"), "x");
        }
        Assert.False(Directory.Exists(work));
        Assert.DoesNotContain(Path.GetFullPath(work), ScratchPaths.Current);
    }

    [Fact]
    public void AFolderThatAlreadyExistedIsUsedAndLeftAlone()
    {
        string work = Directory.CreateDirectory(Path.Combine(_dir, "mine")).FullName;
        File.WriteAllText(Path.Combine(work, "keep.txt"), "x");
        using (ScratchFolder.Claim(work))
            Assert.DoesNotContain(work, ScratchPaths.Current);
        Assert.True(File.Exists(Path.Combine(work, "keep.txt")));
    }

    [Fact]
    public void DeleteAllRemovesWhatIsStillTracked()
    {
        string file = Path.Combine(_dir, ".model.onnx.tmp"), folder = Path.Combine(_dir, "models");
        File.WriteAllText(file, "half-written");
        Directory.CreateDirectory(Path.Combine(folder, "topk-0.50"));
        using var a = ScratchPaths.Track(file);
        using var b = ScratchPaths.Track(folder);
        string untracked = Path.Combine(_dir, "output.onnx");
        File.WriteAllText(untracked, "finished");
        ScratchPaths.DeleteAll();
        Assert.False(File.Exists(file));
        Assert.False(Directory.Exists(folder));
        Assert.True(File.Exists(untracked));
    }
}
