using System.CommandLine;
using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Text.Json.Nodes;
using SparseOnnx.Cli.Commands;
using SparseOnnx.GraphRewriter.IO;
using SparseOnnx.GraphRewriter.Ir;

namespace SparseOnnx.Cli.Tests;

public class SparsifyCommandTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "sparseonnx-cli-tests", Guid.NewGuid().ToString("N"));

    public SparsifyCommandTests() => Directory.CreateDirectory(_dir);

    public void Dispose()
    {
        if (!OperatingSystem.IsWindows())
            foreach (string folder in Directory.GetDirectories(_dir)) File.SetUnixFileMode(folder, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        Directory.Delete(_dir, recursive: true);
    }

    private static (int ExitCode, string Output, string Error) Run(params string[] args)
    {
        var output = new StringWriter();
        var error = new StringWriter();
        int code = CommandRunner.Run(new RootCommand { SparsifyCommand.Create(), InspectCommand.Create() }, args, output, error);
        return (code, output.ToString(), error.ToString());
    }

    private static string Llama => Path.Combine(RepositoryPaths.Models, "llama-brown", "model.onnx");

    private static string Fixture(string family) => Path.Combine(RepositoryPaths.Models, "families", family, "model.onnx");

    [Fact]
    public void PrintsALayerByKindTableAndEverySkippedProjection()
    {
        string output = Path.Combine(_dir, "sparse.onnx");
        var (code, stdout, error) = Run("sparsify", Llama, "-o", output, "--sparsity", "0.5");
        Assert.True(code == 0, error);
        var lines = stdout.Split('\n');
        Assert.Contains(lines, l => l.Contains("│ layer │") && l.Contains("q │") && l.Contains("gate │") && l.Contains("down │"));
        Assert.Equal(6, lines.Count(l => l.Contains("128/256 50%") && l.Contains("344/688 50%")));
        Assert.Contains("skipped /lm_head/MatMul (lm_head, layer -): kind lm_head is not among the kinds to rewrite", stdout);
        Assert.Contains("rewrote 42 of 43 projections", stdout);
        Assert.Contains("42 zeros until calibrated", stdout);
        Assert.True(File.Exists(output));

        var inspected = JsonNode.Parse(Run("inspect", output, "--json").Output)!;
        Assert.Contains(inspected["opsets"]!.AsArray(), o => (string)o!["domain"]! == "ai.sparseonnx" && (long)o["version"]! == 1);
        Assert.Equal(42, (long)inspected["op_histogram"]!["ai.sparseonnx::TopKSparseMatMul"]!);
        Assert.Equal("lm_head", (string)Assert.Single(inspected["projections"]!.AsArray())!["kind"]!);
    }

    /// <summary>The committed onnxruntime-genai int4 graph: every MatMulNBits layer projection (packed qkv, o, gate, up,
    /// down) becomes TopKSparseMatMulNBits with its vector in the bias input (no Adds), and the model still runs.</summary>
    [Fact]
    public void AGenaiInt4ModelBecomesTheQuantizedSparseOp()
    {
        string output = Path.Combine(_dir, "sparse.onnx");
        var (code, stdout, error) = Run("sparsify", Fixture("genai-int4"), "-o", output, "--sparsity", "0.5");
        Assert.True(code == 0, error);
        Assert.Contains("rewrote 10 of 11 projections; they read 50% of their weight rows per token", stdout);
        Assert.Contains("spontaneous-neuron vectors: 10", stdout);
        var inspected = JsonNode.Parse(Run("inspect", output, "--json").Output)!;
        Assert.Equal(10, (long)inspected["op_histogram"]!["ai.sparseonnx::TopKSparseMatMulNBits"]!);
        Assert.Equal(1, (long)inspected["op_histogram"]!["com.microsoft::MatMulNBits"]!);
        Assert.Null(inspected["op_histogram"]!["Add"]);
        using var model = SparseOnnx.Runtime.Inference.CausalLm.Open(output);
        using var sequence = model.StartSequence();
        float[] logits = sequence.Append([1, 17, 5, 9]);
        Assert.Equal(128, logits.Length);
        Assert.All(logits, v => Assert.True(float.IsFinite(v)));
    }

    [Fact]
    public void JsonReportListsEveryProjectionWithItsSetting()
    {
        string output = Path.Combine(_dir, "sparse.onnx");
        var (code, stdout, error) = Run("sparsify", Fixture("phi3"), "-o", output, "--mode", "threshold", "--threshold", "0.2",
            "--kinds", "qkv,down", "lm_head", "--no-spontaneous", "--json");
        Assert.True(code == 0, error);
        var report = JsonNode.Parse(stdout)!;
        var rewritten = report["rewritten"]!.AsArray();
        Assert.Equal(["down", "down", "lm_head", "qkv", "qkv"], rewritten.Select(r => (string)r!["kind"]!).Order().ToArray());
        Assert.All(rewritten, r => Assert.Equal(0.2f, (float)r!["threshold"]!));
        Assert.All(rewritten, r => Assert.False((bool)r!["spontaneous"]!));
        Assert.Equal(4, report["skipped"]!.AsArray().Count);
        Assert.Equal(output, (string)report["output"]!);
    }

    [Fact]
    public void NothingToRewriteIsAnErrorAndWritesNothing()
    {
        string output = Path.Combine(_dir, "sparse.onnx");
        var (code, _, error) = Run("sparsify", Fixture("gemma"), "-o", output, "--sparsity", "0.5", "--kinds", "qkv");
        Assert.Equal(ExitCodes.InputError, code);
        Assert.Contains("Nothing could be rewritten, so no output was written", error);
        Assert.Contains("15 projections were skipped", error);
        Assert.Empty(Directory.GetFileSystemEntries(_dir));
    }

    [Fact]
    public void AModelWithoutProjectionsIsAClearError()
    {
        var graph = new Graph("no_projections");
        var b = new GraphBuilder(graph);
        b.Output(b.Op("Relu", b.Input("X", DataType.Float, "n", 8L)), DataType.Float);
        string input = Path.Combine(_dir, "relu.onnx");
        using (var model = new Model(graph) { IrVersion = 8 })
        {
            model.OpsetImports.Set("", 17);
            ModelSaver.Save(model, input);
        }
        var (code, _, error) = Run("sparsify", input, "-o", Path.Combine(_dir, "out.onnx"), "--sparsity", "0.5");
        Assert.Equal(ExitCodes.InputError, code);
        Assert.Contains("the model has no projection", error);
        Assert.False(File.Exists(Path.Combine(_dir, "out.onnx")));
    }

    [Fact]
    public void AnUnsupportedElementTypeIsNamedInTheError()
    {
        var graph = new Graph("double");
        var b = new GraphBuilder(graph);
        var x = b.Input("X", DataType.Double, "n", 8L);
        var w = b.Initializer(Tensor.FromElements<double>("w", DataType.Double, [8, 4], new double[32]));
        var y = b.Node("", "MatMul", [x, w], 1, "proj").Outputs[0];
        b.Output(b.Op("Relu", y), DataType.Double);
        string input = Path.Combine(_dir, "double.onnx");
        using (var model = new Model(graph) { IrVersion = 8 })
        {
            model.OpsetImports.Set("", 17);
            ModelSaver.Save(model, input);
        }
        var (code, _, error) = Run("sparsify", input, "-o", Path.Combine(_dir, "out.onnx"), "--sparsity", "0.5", "--kinds", "unknown,lm_head");
        Assert.Equal(ExitCodes.InputError, code);
        Assert.Contains("the weight is float64; TopKSparseMatMul takes float32, float16 or bfloat16 (e.g. proj)", error);
        Assert.False(File.Exists(Path.Combine(_dir, "out.onnx")));
    }

    [Fact]
    public void AnAlreadySparsifiedModelHasNothingLeft()
    {
        string once = Path.Combine(_dir, "once.onnx");
        Assert.Equal(0, Run("sparsify", Fixture("gemma"), "-o", once, "--sparsity", "0.5", "--kinds", "default,lm_head").ExitCode);
        var (code, _, error) = Run("sparsify", once, "-o", Path.Combine(_dir, "twice.onnx"), "--sparsity", "0.5");
        Assert.Equal(ExitCodes.InputError, code);
        Assert.Contains("no dense projections left (15 are already TopKSparseMatMul)", error);
        Assert.False(File.Exists(Path.Combine(_dir, "twice.onnx")));
    }

    [Fact]
    public void RefusesToOverwriteItsInput()
    {
        string copy = Path.Combine(_dir, "model.onnx");
        File.Copy(Fixture("qwen2"), copy);
        byte[] original = File.ReadAllBytes(copy);
        var (code, _, error) = Run("sparsify", copy, "-o", copy, "--sparsity", "0.5");
        Assert.Equal(ExitCodes.InputError, code);
        Assert.Contains("it is the input model", error);
        Assert.Equal(original, File.ReadAllBytes(copy));
        Assert.Equal(["model.onnx"], Directory.GetFileSystemEntries(_dir).Select(f => Path.GetFileName(f)!).ToArray());
    }

    [Theory]
    [InlineData(new[] { "--sparsity", "1" }, "Sparsity must be in [0, 1)")]
    [InlineData(new[] { "--mode", "threshold", "--sparsity", "0.5" }, "cannot turn a sparsity into thresholds")]
    [InlineData(new string[0], "give a sparsity or a plan")]
    [InlineData(new[] { "--sparsity", "0.5", "--kinds", "qq" }, "Unknown projection kind 'qq'")]
    [InlineData(new[] { "--plan", "/nonexistent/plan.json" }, "Plan file '/nonexistent/plan.json' not found")]
    public void BadOptionsAreClearErrors(string[] options, string expected)
    {
        var (code, _, error) = Run(["sparsify", Fixture("qwen2"), "-o", Path.Combine(_dir, "out.onnx"), .. options]);
        Assert.Equal(ExitCodes.InputError, code);
        Assert.Contains(expected, error);
        Assert.Empty(Directory.GetFileSystemEntries(_dir));
    }

    /// <summary>
    /// An output folder that cannot be written: procfs refuses new files even to root; a folder without write
    /// permission does too when the tests do not run as root.
    /// </summary>
    [Fact]
    public void AnUnwritableOutputFolderIsAClearErrorAndLeavesNothing()
    {
        if (!OperatingSystem.IsLinux()) return;
        var (code, _, error) = Run("sparsify", Fixture("qwen2"), "-o", "/proc/self/sparse.onnx", "--sparsity", "0.5");
        Assert.Equal(ExitCodes.InputError, code);
        Assert.Contains("Could not save the model to '/proc/self/sparse.onnx'", error);

        if (geteuid() == 0) return; // root writes through permission bits; procfs above covered the case
        string readOnly = Path.Combine(_dir, "read-only");
        Directory.CreateDirectory(readOnly);
        File.SetUnixFileMode(readOnly, UnixFileMode.UserRead | UnixFileMode.UserExecute);
        (code, _, error) = Run("sparsify", Fixture("qwen2"), "-o", Path.Combine(readOnly, "sparse.onnx"), "--sparsity", "0.5");
        Assert.Equal(ExitCodes.InputError, code);
        Assert.Contains("Could not save the model", error);
        Assert.Empty(Directory.GetFileSystemEntries(readOnly));
    }

    /// <summary>
    /// A disk that fills up while the model is written, on the real command in a child process: a 2 MiB tmpfs
    /// mounted over the output folder in a private mount namespace (ENOSPC), or where namespaces are not
    /// allowed, a file-size limit (RLIMIT_FSIZE: EFBIG, the error of FAT32's 4 GiB limit). Either way: a clear
    /// message, exit code 1, no partial or temporary file left, the input untouched.
    /// </summary>
    [Theory]
    [InlineData("tmpfs")]
    [InlineData("rlimit")]
    public void AFullDiskIsAClearErrorAndLeavesNothing(string how)
    {
        if (!OperatingSystem.IsLinux()) return;
        string input = Path.Combine(_dir, "input.onnx");
        File.Copy(Llama, input);
        byte[] original = File.ReadAllBytes(input);
        string output = Path.Combine(_dir, "out");
        Directory.CreateDirectory(output);
        string cli = Path.Combine(AppContext.BaseDirectory, "sparseonnx.dll");
        // The runtime's W^X double mapping sizes a memory file, which RLIMIT_FSIZE would refuse at startup.
        string run = $"DOTNET_EnableWriteXorExecute=0 dotnet '{cli}' sparsify '{input}' -o '{output}/sparse.onnx' --sparsity 0.5; rc=$?; echo \"LEFT:$(ls -A '{output}')\" >&2; exit $rc";
        string script = how == "tmpfs"
            ? $"unshare --user --map-root-user --mount sh -c \"mount -t tmpfs -o size=2m none '{output}' && {run.Replace("\"", "\\\"").Replace("$", "\\$")}\""
            : $"ulimit -f 4096; trap '' XFSZ; {run}";
        var (exitCode, stderr) = Shell(script);
        if (how == "tmpfs" && !stderr.Contains("LEFT:"))
        {
            // No user namespaces here: the rlimit case covers the write failure.
            Assert.Contains("unshare", stderr);
            return;
        }
        Assert.True(exitCode == ExitCodes.InputError, $"exit code {exitCode}: {stderr}");
        Assert.Contains("Could not save the model", stderr);
        Assert.Contains(how == "tmpfs" ? "No space left on device" : "too large", stderr);
        Assert.Contains("LEFT:\n", stderr.Replace("\r", "") + "\n");
        Assert.Empty(Directory.GetFileSystemEntries(output));
        Assert.Equal(original, File.ReadAllBytes(input));
    }

    private static (int ExitCode, string Error) Shell(string script)
    {
        var start = new ProcessStartInfo("bash") { RedirectStandardError = true, RedirectStandardOutput = true, ArgumentList = { "-c", script } };
        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        string stderr = process.StandardError.ReadToEnd();
        stdout.Wait();
        process.WaitForExit();
        return (process.ExitCode, stderr);
    }

    [DllImport("libc", SetLastError = true)]
    private static extern uint geteuid();
}
