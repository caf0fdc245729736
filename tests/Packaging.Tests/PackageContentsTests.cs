using System.IO.Compression;
using System.Xml.Linq;

namespace SparseOnnx.Packaging.Tests;

/// <summary>Each package carries what a NuGet user reads and needs: README, license, XML docs, provenance, and the native library.</summary>
public class PackageContentsTests
{
    public static TheoryData<string> Libraries => new()
    {
        "SparseOnnx.CustomOps", "SparseOnnx.Runtime", "SparseOnnx.GraphRewriter", "SparseOnnx.Calibration", "SparseOnnx.Pruning",
    };

    [Theory]
    [MemberData(nameof(Libraries))]
    public void ALibraryPackageHasItsReadmeLicenseDocsAndVersion(string id)
    {
        using var package = ZipFile.OpenRead(PackedFolder.Package(id));
        var entries = package.Entries.Select(e => e.FullName).ToHashSet();
        Assert.Contains("README.md", entries);
        Assert.Contains($"lib/net10.0/{id}.dll", entries);
        Assert.Contains($"lib/net10.0/{id}.xml", entries);
        var metadata = Nuspec(package);
        Assert.Equal(PackedFolder.Version, Field(metadata, "version"));
        Assert.Equal("MIT", Field(metadata, "license"));
        Assert.Equal("README.md", Field(metadata, "readme"));
        Assert.False(string.IsNullOrWhiteSpace(Field(metadata, "description")));
        var repository = metadata.Elements().Single(e => e.Name.LocalName == "repository");
        Assert.Equal("git", repository.Attribute("type")?.Value);
        Assert.Matches("^[0-9a-f]{40}$", repository.Attribute("commit")?.Value ?? "");
        // Libraries depend on ONNX Runtime's managed API only: the application picks the native runtime (CPU or GPU).
        var dependencies = metadata.Descendants().Where(e => e.Name.LocalName == "dependency").Select(e => e.Attribute("id")!.Value).ToList();
        Assert.DoesNotContain("Microsoft.ML.OnnxRuntime", dependencies);
        Assert.DoesNotContain("Microsoft.ML.OnnxRuntime.Gpu", dependencies);
    }

    [Fact]
    public void TheOpPackageCarriesTheNativeLibraryWhereNuGetLooksForIt()
    {
        using var package = ZipFile.OpenRead(PackedFolder.Package("SparseOnnx.CustomOps"));
        var native = package.GetEntry("runtimes/linux-x64/native/libsparseonnx_ops.so");
        Assert.NotNull(native);
        Assert.Equal(new FileInfo(Path.Combine(RepositoryPaths.Root, "artifacts", "native", "libsparseonnx_ops.so")).Length, native.Length);
        Assert.Contains(Nuspec(package).Descendants().Where(e => e.Name.LocalName == "dependency"),
            d => d.Attribute("id")!.Value == "Microsoft.ML.OnnxRuntime.Managed");
    }

    [Fact]
    public void TheToolIsAPointerPackageWithOnePackagePerPlatform()
    {
        // A portable tool would carry every platform's ONNX Runtime and SkiaSharp (0.9 GB); the op library exists for linux-x64 here.
        using (var pointer = ZipFile.OpenRead(PackedFolder.Package("sparseonnx")))
        {
            var settings = pointer.Entries.Single(e => e.FullName.EndsWith("DotnetToolSettings.xml", StringComparison.Ordinal));
            using var stream = settings.Open();
            var document = XDocument.Load(stream);
            Assert.Equal("sparseonnx", document.Descendants("Command").Single().Attribute("Name")!.Value);
            Assert.Contains(document.Descendants("RuntimeIdentifierPackage"), p => p.Attribute("RuntimeIdentifier")!.Value == "linux-x64");
            Assert.Contains("DotnetTool", Nuspec(pointer).Descendants().Single(e => e.Name.LocalName == "packageType").Attribute("name")!.Value);
        }
        using var linux = ZipFile.OpenRead(PackedFolder.Package("sparseonnx.linux-x64"));
        Assert.Contains(linux.Entries, e => e.FullName == "tools/net10.0/linux-x64/libsparseonnx_ops.so");
        Assert.Contains(linux.Entries, e => e.FullName == "tools/net10.0/linux-x64/libonnxruntime.so");
        Assert.True(new FileInfo(PackedFolder.Package("sparseonnx.linux-x64")).Length < 100L << 20, "the linux-x64 tool package should stay well under 100 MB");
    }

    [Fact]
    public void PackingTheOpsWithoutTheNativeLibraryFails()
    {
        // The same project with its native folder pointed somewhere empty: the pack must refuse, not ship a package without it.
        string empty = Directory.CreateTempSubdirectory("sparseonnx-no-native-").FullName;
        string output = Directory.CreateTempSubdirectory("sparseonnx-pack-").FullName;
        try
        {
            var (exitCode, log) = PackedFolder.Run("dotnet", RepositoryPaths.Root,
                ["pack", Path.Combine("src", "CustomOps", "SparseOnnx.CustomOps.csproj"), "-c", "Release", "--no-build", "-o", output,
                 $"-p:NativeLibraryDirectory={empty}/"], TimeSpan.FromMinutes(5));
            Assert.NotEqual(0, exitCode);
            Assert.Contains("the native op library is missing", log);
            Assert.Empty(Directory.GetFiles(output, "*.nupkg"));
        }
        finally
        {
            Directory.Delete(empty, recursive: true);
            Directory.Delete(output, recursive: true);
        }
    }

    private static XElement Nuspec(ZipArchive package)
    {
        var entry = package.Entries.Single(e => e.FullName.EndsWith(".nuspec", StringComparison.Ordinal) && !e.FullName.Contains('/'));
        using var stream = entry.Open();
        return XDocument.Load(stream).Root!.Elements().Single(e => e.Name.LocalName == "metadata");
    }

    private static string? Field(XElement metadata, string name) => metadata.Elements().SingleOrDefault(e => e.Name.LocalName == name)?.Value;
}
