using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using Spectre.Console;
using SparseOnnx.Cli.Benchmarks;
using SparseOnnx.GraphRewriter.Ir;

namespace SparseOnnx.Cli.Commands;

/// <summary>
/// <c>sparseonnx bench-op [--m 1] [--k 4096] [--n 11008] [--sparsity S] [--dtype fp32|fp16|bf16|int4|int8] [--threads 2]
/// [--mode topk|threshold] [--iterations 30] [--copies C] [--json]</c>
/// </summary>
public static class BenchOpCommand
{
    public static Command Create()
    {
        var m = new Option<int>("--m") { Description = "Rows of A (1 = one decoded token; 128 = a prefill chunk).", DefaultValueFactory = _ => 1 };
        var k = new Option<int>("--k") { Description = "Input features K.", DefaultValueFactory = _ => 4096 };
        var n = new Option<int>("--n") { Description = "Output features N.", DefaultValueFactory = _ => 11008 };
        var sparsity = new Option<double?>("--sparsity") { Description = "Fraction of A's entries dropped; without it, sweeps 0, 0.25, 0.5, 0.75, 0.9." };
        var dtype = new Option<string>("--dtype")
        {
            Description = "Element type of A and B: fp32, fp16 or bf16; or int4 / int8 weights (TopKSparseMatMulNBits against ONNX Runtime's " +
                "MatMulNBits at accuracy levels 4 and 0, and float32 MatMul).",
            DefaultValueFactory = _ => "fp32",
        };
        dtype.AcceptOnlyFromAmong("fp32", "fp16", "bf16", "int4", "int8");
        var blockSize = new Option<int>("--block-size") { Description = "int4/int8: input channels per scale.", DefaultValueFactory = _ => 32 };
        var accuracyLevel = new Option<int>("--accuracy-level")
        {
            Description = "int4/int8: the sparse op's accuracy_level, 4 (int8 activations, as MatMulNBits on CPU) or 0 (float32).",
            DefaultValueFactory = _ => 4,
        };
        var scales = new Option<string>("--scales")
        {
            Description = "int4/int8: the sparse op's scales, fp16 (as sparsify --quantize writes) or fp32 (as a MatMulNBits model holds them).",
            DefaultValueFactory = _ => "fp16",
        };
        scales.AcceptOnlyFromAmong("fp16", "fp32");
        var threads = new Option<int>("--threads") { Description = "ONNX Runtime intra-op threads, for both the dense and the sparse op.", DefaultValueFactory = _ => 2 };
        var mode = new Option<string>("--mode") { Description = "topk (k = (1 - sparsity)·K) or threshold (set from the inputs to reach the sparsity).", DefaultValueFactory = _ => "topk" };
        mode.AcceptOnlyFromAmong("topk", "threshold");
        var iterations = new Option<int>("--iterations") { Description = "Timed runs of each op per sparsity level (medians are reported).", DefaultValueFactory = _ => 30 };
        var copies = new Option<int>("--copies") { Description = "Distinct weight matrices cycled through per run (default: enough to exceed twice the L3 cache)." };
        var json = new Option<bool>("--json") { Description = "Print the results as JSON." };
        var command = new Command("bench-op",
            "Benchmark TopKSparseMatMul against ONNX Runtime's own MatMul on the same weights, same threads, in one process.")
        {
            m, k, n, sparsity, dtype, blockSize, accuracyLevel, scales, threads, mode, iterations, copies, json,
        };
        command.SetAction(parse =>
        {
            string type = parse.GetValue(dtype)!;
            var options = new OpBenchmarkOptions
            {
                M = Positive(parse.GetValue(m), "--m"),
                K = Positive(parse.GetValue(k), "--k"),
                N = Positive(parse.GetValue(n), "--n"),
                Sparsities = parse.GetValue(sparsity) is { } s ? [s] : [0, 0.25, 0.5, 0.75, 0.9],
                Type = parse.GetValue(dtype) switch { "fp16" => DataType.Float16, "bf16" => DataType.BFloat16, _ => DataType.Float },
                Threads = Positive(parse.GetValue(threads), "--threads"),
                ThresholdMode = parse.GetValue(mode) == "threshold",
                Iterations = Positive(parse.GetValue(iterations), "--iterations"),
                Copies = parse.GetValue(copies),
            };
            var output = parse.InvocationConfiguration.Output;
            bool asJson = parse.GetValue(json);
            if (type is "int4" or "int8")
            {
                if (options.ThresholdMode) throw new ArgumentException("--dtype int4/int8 benchmarks top-k only.");
                int level = parse.GetValue(accuracyLevel);
                if (level is not (0 or 4)) throw new ArgumentException($"--accuracy-level must be 0 or 4, not {level}.");
                var quantized = QuantizedOpBenchmark.Run(options, type == "int8" ? 8 : 4, parse.GetValue(blockSize), level, parse.GetValue(scales) == "fp16",
                    asJson ? null : message => parse.InvocationConfiguration.Error.WriteLine(message));
                if (asJson) output.WriteLine(ToJson(quantized).ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
                else Render(quantized, InspectCommand.ConsoleFor(output));
                return ExitCodes.Success;
            }
            var report = OpBenchmark.Run(options, asJson ? null : message => parse.InvocationConfiguration.Error.WriteLine(message));
            if (asJson) output.WriteLine(ToJson(report).ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
            else Render(report, InspectCommand.ConsoleFor(output));
            return ExitCodes.Success;
        });
        return command;
    }

    private static int Positive(int value, string name) =>
        value > 0 ? value : throw new ArgumentException($"{name} must be positive, got {value}.");

    public static JsonObject ToJson(OpBenchmarkReport r) => new()
    {
        ["machine"] = r.Machine.ToString(),
        ["onnxruntime"] = r.OrtVersion,
        ["dense_baseline"] = r.DenseBaseline,
        ["op_library"] = r.OpLibrary,
        ["m"] = r.Options.M,
        ["k"] = r.Options.K,
        ["n"] = r.Options.N,
        ["dtype"] = r.Options.Type.DisplayName(),
        ["threads"] = r.Options.Threads,
        ["mode"] = r.Options.ThresholdMode ? "threshold" : "topk",
        ["weight_copies"] = r.Copies,
        ["iterations"] = r.Options.Iterations,
        ["results"] = new JsonArray(r.Results.Select(x => (JsonNode)new JsonObject
        {
            ["sparsity"] = x.Sparsity,
            ["k"] = x.K,
            ["threshold"] = x.Threshold,
            ["dense_ms"] = Finite(x.DenseMs),
            ["sparse_ms"] = x.SparseMs,
            ["speedup"] = Finite(x.Speedup),
            ["bound"] = Finite(x.Bound),
            ["dense_gb_per_s"] = Finite(x.DenseGBps),
            ["sparse_gb_per_s"] = x.SparseGBps,
            ["rows_read_fraction"] = x.RowsReadFraction,
        }).ToArray()),
    };

    public static JsonObject ToJson(QuantizedBenchmarkReport r) => new()
    {
        ["machine"] = r.Machine.ToString(),
        ["onnxruntime"] = r.OrtVersion,
        ["op_library"] = r.OpLibrary,
        ["m"] = r.Options.M,
        ["k"] = r.Options.K,
        ["n"] = r.Options.N,
        ["dtype"] = $"int{r.Bits}",
        ["block_size"] = r.BlockSize,
        ["accuracy_level"] = r.AccuracyLevel,
        ["sparse_scales"] = r.Float16Scales ? "float16" : "float32",
        ["threads"] = r.Options.Threads,
        ["weight_copies"] = r.Copies,
        ["iterations"] = r.Options.Iterations,
        ["matmulnbits_bytes"] = r.DenseBytes,
        ["results"] = new JsonArray(r.Results.Select(x => (JsonNode)new JsonObject
        {
            ["sparsity"] = x.Sparsity,
            ["k"] = x.K,
            ["sparse_ms"] = x.SparseMs,
            ["matmulnbits_level4_ms"] = x.MatMulNBitsLevel4Ms,
            ["matmulnbits_level0_ms"] = x.MatMulNBitsLevel0Ms,
            ["float32_matmul_ms"] = x.Float32Ms,
            ["speedup_vs_level4"] = x.SpeedupVsLevel4,
            ["speedup_vs_level0"] = x.SpeedupVsLevel0,
            ["speedup_vs_float32"] = x.SpeedupVsFloat32,
            ["sparse_bytes_read"] = x.SparseBytesRead,
            ["sparse_gb_per_s"] = x.SparseGBps,
            ["matmulnbits_level4_gb_per_s"] = r.DenseBytes / (x.MatMulNBitsLevel4Ms * 1e6),
        }).ToArray()),
    };

    private static void Render(QuantizedBenchmarkReport r, IAnsiConsole console)
    {
        var o = r.Options;
        console.MarkupLine(Markup.Escape($"TopKSparseMatMulNBits [{o.M}, {o.K}] x [{o.K}, {o.N}] int{r.Bits}, block {r.BlockSize}, accuracy_level {r.AccuracyLevel}, {(r.Float16Scales ? "float16" : "float32")} scales, {o.Threads} threads"));
        console.MarkupLine(Markup.Escape($"machine: {r.Machine}"));
        console.MarkupLine(Markup.Escape($"ONNX Runtime {r.OrtVersion}; {r.Copies} weight copies per run; medians of {o.Iterations} interleaved runs"));
        console.MarkupLine(Markup.Escape($"op library: {r.OpLibrary}"));
        var table = new Table().Border(TableBorder.Rounded)
            .AddColumns("sparsity", "k", "sparse ms", "MatMulNBits L4 ms", "vs L4", "MatMulNBits L0 ms", "vs L0", "fp32 MatMul ms", "vs fp32", "sparse GB/s", "L4 GB/s");
        foreach (var x in r.Results)
            table.AddRow(F(x.Sparsity, "0.00"), x.K.ToString(CultureInfo.InvariantCulture), F(x.SparseMs, "0.000"), F(x.MatMulNBitsLevel4Ms, "0.000"),
                F(x.SpeedupVsLevel4, "0.00") + "x", F(x.MatMulNBitsLevel0Ms, "0.000"), F(x.SpeedupVsLevel0, "0.00") + "x", F(x.Float32Ms, "0.000"),
                F(x.SpeedupVsFloat32, "0.00") + "x", F(x.SparseGBps, "0.0"), F(r.DenseBytes / (x.MatMulNBitsLevel4Ms * 1e6), "0.0"));
        console.Write(table);
    }

    private static double? Finite(double value) => double.IsFinite(value) ? value : null;

    private static void Render(OpBenchmarkReport r, IAnsiConsole console)
    {
        var o = r.Options;
        console.MarkupLine(Markup.Escape($"TopKSparseMatMul [{o.M}, {o.K}] x [{o.K}, {o.N}] {o.Type.DisplayName()}, {(o.ThresholdMode ? "threshold" : "top-k")}, {o.Threads} threads"));
        console.MarkupLine(Markup.Escape($"machine: {r.Machine}"));
        console.MarkupLine(Markup.Escape($"ONNX Runtime {r.OrtVersion}; dense baseline: {r.DenseBaseline}; {r.Copies} weight copies per run; medians of {o.Iterations} interleaved runs"));
        console.MarkupLine(Markup.Escape($"op library: {r.OpLibrary}"));
        var table = new Table().Border(TableBorder.Rounded)
            .AddColumns("sparsity", o.ThresholdMode ? "threshold" : "k", "dense ms", "sparse ms", "speedup", "bound 1/(1-s)", "dense GB/s", "sparse GB/s");
        foreach (var x in r.Results)
            table.AddRow(F(x.Sparsity, "0.00"), x.K?.ToString(CultureInfo.InvariantCulture) ?? F(x.Threshold ?? 0, "0.000"),
                F(x.DenseMs, "0.000"), F(x.SparseMs, "0.000"), F(x.Speedup, "0.00") + (double.IsFinite(x.Speedup) ? "x" : ""),
                F(x.Bound, "0.00") + "x", F(x.DenseGBps, "0.0"), F(x.SparseGBps, "0.0"));
        console.Write(table);
    }

    private static string F(double value, string format) => double.IsFinite(value) ? value.ToString(format, CultureInfo.InvariantCulture) : "n/a";
}
