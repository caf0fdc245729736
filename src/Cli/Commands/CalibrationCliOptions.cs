using System.CommandLine;
using System.Globalization;
using System.Text.Json.Nodes;
using Spectre.Console;
using SparseOnnx.Calibration;
using SparseOnnx.Calibration.Data;
using SparseOnnx.Calibration.Training;
using SparseOnnx.GraphRewriter.Analysis.Projections;
using SparseOnnx.GraphRewriter.Sparsify;
using SparseOnnx.Runtime.Inference;

namespace SparseOnnx.Cli.Commands;

/// <summary>
/// The calibration options of <c>sparsify</c>: with <c>--calibration FILE</c> (or <c>--calibration-ids FILE</c>),
/// sparsify first runs <see cref="Calibrator"/> and rewrites with the plan it produced, which it also saves.
/// </summary>
internal sealed class CalibrationCliOptions
{
    public Option<FileInfo?> Text { get; } = new("--calibration") { Description = "Calibration text (UTF-8; read as --documents says, as eval reads text): thresholds, allocation and compensation are measured on it." };
    public TextReadingCliOptions Reading { get; } = new();
    public Option<FileInfo?> Ids { get; } = new("--calibration-ids") { Description = "Calibration data as pre-tokenized ids, whitespace-separated, one sequence per line." };
    public Option<FileSystemInfo?> Tokenizer { get; } = RuntimeOptions.TokenizerOption();
    public Option<int> SequenceLength { get; } = new("--seq-len") { Description = "Tokens per calibration window.", DefaultValueFactory = _ => 128 };
    public Option<int> Samples { get; } = new("--samples") { Description = "Calibration windows the statistics are measured on.", DefaultValueFactory = _ => 64 };
    public Option<int> ValidationSamples { get; } = new("--validation-samples") { Description = "Windows held out to judge decisions (greedy vs uniform, which compensation to keep).", DefaultValueFactory = _ => 16 };
    public Option<int> Seed { get; } = new("--seed") { Description = "Seed of the split into calibration and held-out windows.", DefaultValueFactory = _ => 0 };
    public Option<string> Method { get; } = new("--calibration-method") { Description = "sequential: block by block, each block cut out of the model and calibrated on its own inputs (GPTQ's and SparseGPT's way; minutes on a 1B model), then an optional end-to-end KL phase; full: every decision on the whole model's held-out loss, training by KL on the logits.", DefaultValueFactory = _ => "sequential" };
    public Option<int> BlockTrainSteps { get; } = new("--block-train-steps") { Description = "Sequential: most Adam steps training a block's spontaneous neurons against the block target (default 0, closed form only: on llama-brown block-trained vectors raised the held-out loss).", DefaultValueFactory = _ => 0 };
    public Option<int> BlockTrainBatch { get; } = new("--block-train-batch") { Description = "Sequential: calibration windows per block training step.", DefaultValueFactory = _ => 2 };
    public Option<double> EndToEndBudget { get; } = new("--end-to-end-budget") { Description = "Sequential: the most seconds the default end-to-end phase may be estimated to take (from the first block's dense pass); over it the phase is left out with a note (--end-to-end-steps N always runs).", DefaultValueFactory = _ => 600 };
    public Option<int?> EndToEndSteps { get; } = new("--end-to-end-steps") { Description = "Sequential: steps of whole-model KL training of the vectors after the blocks (0: none; default: 60 where the whole-model training fits in memory, none otherwise; --train-* set the rest)." };
    public Option<string> BlockTarget { get; } = new("--block-target") { Description = "Sequential: what a block's output is compared with: dense-model (the dense model's hidden state there, so vectors also undo earlier blocks' drift) or dense-block (the dense block on the same input, as GPTQ).", DefaultValueFactory = _ => "dense-model" };
    public Option<string> Allocation { get; } = new("--allocation") { Description = "auto: greedy where its search fits memory and --greedy-budget (sequential method), else uniform; uniform: every projection group at --sparsity; greedy: TEAL's block-wise search at the same parameter-weighted average.", DefaultValueFactory = _ => "auto" };
    public Option<double> GreedyBudget { get; } = new("--greedy-budget") { Description = "With --allocation auto: the most seconds the greedy search may be estimated to take before uniform allocation is used instead.", DefaultValueFactory = _ => 300 };
    public Option<string> Compensation { get; } = new("--compensation") { Description = "Closed-form compensation s = W·E[x − S(x)]: auto (kept only where it lowers the held-out loss), on, off.", DefaultValueFactory = _ => "auto" };
    public Option<string> Spontaneous { get; } = new("--spontaneous") { Description = "Spontaneous-neuron vectors: trained (by KL to the dense model, from the closed form; kept only when they lower the held-out loss), closed-form (--compensation decides), off.", DefaultValueFactory = _ => "trained" };
    public Option<string> TrainSpace { get; } = new("--train-space") { Description = "Trained vectors: output (one per projection, what its Add holds) or input (the paper's α per shared input; each projection adds W·α).", DefaultValueFactory = _ => "output" };
    public Option<string> TrainInit { get; } = new("--train-init") { Description = "Training starts from the closed-form vectors calibration kept (closed-form) or from zero (zero, as the paper).", DefaultValueFactory = _ => "closed-form" };
    public Option<int> TrainSteps { get; } = new("--train-steps") { Description = "Most Adam steps.", DefaultValueFactory = _ => 150 };
    public Option<int> TrainBatch { get; } = new("--train-batch") { Description = "Calibration windows per step.", DefaultValueFactory = _ => 8 };
    public Option<double> TrainLearningRate { get; } = new("--train-lr") { Description = "Peak learning rate (warm-up, then cosine decay to a tenth).", DefaultValueFactory = _ => 0.01 };
    public Option<int> TrainPatience { get; } = new("--train-patience") { Description = "Held-out checks (every 10 steps) without improvement before stopping; 0: no early stopping, keep the last step's vectors.", DefaultValueFactory = _ => 3 };
    public Option<string> TrainKeep { get; } = new("--train-keep") { Description = "checked: keep the trained vectors only when they lower the held-out loss; always: keep them regardless.", DefaultValueFactory = _ => "checked" };
    public Option<string> GreedyObjective { get; } = new("--greedy-objective") { Description = "Greedy: logits (KL of the next-token distribution from the dense model's) or block (TEAL: the block output's relative squared error).", DefaultValueFactory = _ => "logits" };
    public Option<double> GreedyStep { get; } = new("--greedy-step") { Description = "Greedy: sparsity step of one group per iteration.", DefaultValueFactory = _ => 0.05 };
    public Option<double> GreedyStartBelow { get; } = new("--greedy-start-below") { Description = "Greedy: every group starts this far below --sparsity (1: from dense, TEAL's start).", DefaultValueFactory = _ => 0.3 };
    public Option<string> GreedySearch { get; } = new("--greedy-search") { Description = "Greedy: lazy (re-measure a group's step only when it ranks cheapest) or exhaustive (every group every step, TEAL's).", DefaultValueFactory = _ => "lazy" };
    public Option<int> GreedySamples { get; } = new("--greedy-samples") { Description = "Greedy: calibration windows the block-output error is measured on.", DefaultValueFactory = _ => 8 };
    public Option<int> Threads { get; } = new("--threads") { Description = "ONNX Runtime threads for calibration (0: all cores).", DefaultValueFactory = _ => 0 };
    public Option<ExecutionDevice> Device { get; } = new("--device")
    {
        Description = "Where calibration runs the model: cpu, cuda (fails without ONNX Runtime's CUDA provider: a GPU build of ONNX Runtime, " +
                      "or ORT's libonnxruntime_providers_cuda.so named in $SPARSEONNX_ORT_CUDA_PROVIDER), or auto (CUDA when available).",
        DefaultValueFactory = _ => ExecutionDevice.Cpu,
    };
    public Option<FileInfo?> PlanOutput { get; } = new("--plan-out") { Description = "Where to save the calibrated plan (default: beside the output, <name>.plan.json)." };

    public IEnumerable<Option> All => [Text, Ids, Tokenizer, Reading.Documents, Reading.Bos, SequenceLength, Samples, ValidationSamples, Seed, Method, BlockTrainSteps, BlockTrainBatch, BlockTarget, EndToEndSteps, EndToEndBudget, Allocation, GreedyBudget, Compensation, Spontaneous,
        TrainSpace, TrainInit, TrainSteps, TrainBatch, TrainLearningRate, TrainPatience, TrainKeep, GreedyObjective, GreedyStep, GreedyStartBelow, GreedySearch, GreedySamples, Threads, Device, PlanOutput];

    /// <summary>The options that say which text to read and how to cut it (what pruning needs).</summary>
    public IEnumerable<Option> DataOptions => [Text, Ids, Tokenizer, Reading.Documents, Reading.Bos, SequenceLength, Samples, ValidationSamples, Seed, Threads];

    public CalibrationCliOptions()
    {
        Method.AcceptOnlyFromAmong("sequential", "full");
        BlockTarget.AcceptOnlyFromAmong("dense-model", "dense-block");
        Allocation.AcceptOnlyFromAmong("auto", "uniform", "greedy");
        GreedySearch.AcceptOnlyFromAmong("lazy", "exhaustive");
        Compensation.AcceptOnlyFromAmong("auto", "on", "off");
        GreedyObjective.AcceptOnlyFromAmong("logits", "block");
        Spontaneous.AcceptOnlyFromAmong("trained", "closed-form", "off");
        TrainSpace.AcceptOnlyFromAmong("output", "input");
        TrainInit.AcceptOnlyFromAmong("closed-form", "zero");
        TrainKeep.AcceptOnlyFromAmong("checked", "always");
    }

    /// <summary>Whether --spontaneous was given on the command line (not its default).</summary>
    public bool SpontaneousGiven(ParseResult parse) => parse.GetResult(Spontaneous) is { Implicit: false };

    public bool Requested(ParseResult parse) => parse.GetValue(Text) is not null || parse.GetValue(Ids) is not null;

    /// <summary>Reads the calibration windows named on the command line.</summary>
    public CalibrationSet ReadData(ParseResult parse, string modelPath)
    {
        var text = parse.GetValue(Text);
        var ids = parse.GetValue(Ids);
        if (text is not null && ids is not null) throw new ArgumentException("Give one of --calibration and --calibration-ids, not both.");
        var options = new CalibrationSetOptions
        {
            SequenceLength = parse.GetValue(SequenceLength),
            Samples = parse.GetValue(Samples),
            ValidationSamples = parse.GetValue(ValidationSamples),
            Seed = parse.GetValue(Seed),
        };
        if (ids is not null) return CalibrationSet.FromIdsFile(ids.FullName, options);
        return CalibrationSet.FromTextFile(text!.FullName, RuntimeOptions.LoadTokenizer(parse, Tokenizer, modelPath), options, Reading.Read(parse));
    }

    /// <summary>A time budget given in seconds (0 to 10 000 000), named in the error as the option is.</summary>
    private static TimeSpan Budget(ParseResult parse, Option<double> option)
    {
        double seconds = parse.GetValue(option);
        if (!(seconds is >= 0 and <= 1e7)) throw new ArgumentException($"{option.Name} is a number of seconds from 0 to 10 000 000, not {seconds}.");
        return TimeSpan.FromSeconds(seconds);
    }

    public CalibrationOptions Options(ParseResult parse, double sparsity, SparsityMode mode, IReadOnlySet<ProjectionKind> kinds)
    {
        string spontaneous = parse.GetValue(Spontaneous)!;
        var compensation = parse.GetValue(Compensation) switch { "on" => CompensationMode.On, "off" => CompensationMode.Off, _ => CompensationMode.Auto };
        if (spontaneous == "off")
        {
            if (compensation == CompensationMode.On) throw new ArgumentException("--spontaneous off leaves no vectors; drop --compensation on.");
            compensation = CompensationMode.Off;
        }
        var training = spontaneous == "trained" ? new SpontaneousTrainingOptions
        {
            Space = parse.GetValue(TrainSpace) == "input" ? SpontaneousSpace.Input : SpontaneousSpace.Output,
            WarmStart = parse.GetValue(TrainInit) != "zero",
            Steps = parse.GetValue(TrainSteps),
            BatchWindows = parse.GetValue(TrainBatch),
            LearningRate = parse.GetValue(TrainLearningRate),
            Patience = parse.GetValue(TrainPatience),
            KeepOnlyIfBetter = parse.GetValue(TrainKeep) != "always",
            Seed = parse.GetValue(Seed),
            Required = SpontaneousGiven(parse),
        } : null;
        var endToEndBudget = Budget(parse, EndToEndBudget);
        var greedyBudget = Budget(parse, GreedyBudget);
        return new()
        {
            Sparsity = sparsity,
            Mode = mode,
            Method = parse.GetValue(Method) == "full" ? Calibration.Sequential.CalibrationMethod.FullModel : Calibration.Sequential.CalibrationMethod.Sequential,
            Sequential = new Calibration.Sequential.SequentialOptions
            {
                TrainingSteps = parse.GetValue(BlockTrainSteps),
                TrainingWindows = parse.GetValue(BlockTrainBatch),
                EndToEndSteps = parse.GetValue(EndToEndSteps),
                EndToEndBudget = endToEndBudget,
                Target = parse.GetValue(BlockTarget) == "dense-block" ? Calibration.Sequential.BlockTarget.DenseBlock : Calibration.Sequential.BlockTarget.DenseModel,
            },
            Kinds = kinds,
            Allocation = parse.GetValue(Allocation) switch { "greedy" => AllocationMethod.Greedy, "uniform" => AllocationMethod.Uniform, _ => AllocationMethod.Auto },
            GreedyBudget = greedyBudget,
            Compensation = compensation,
            Training = training,
            GreedyObjective = parse.GetValue(GreedyObjective) == "block" ? Calibration.GreedyObjective.BlockOutput : Calibration.GreedyObjective.Logits,
            GreedyStep = parse.GetValue(GreedyStep),
            GreedySamples = parse.GetValue(GreedySamples),
            GreedyStartBelow = parse.GetValue(GreedyStartBelow),
            GreedyLazy = parse.GetValue(GreedySearch) == "lazy",
            Threads = parse.GetValue(Threads),
            Device = parse.GetValue(Device),
        };
    }

    /// <summary>The plan's path: --plan-out, or <c>&lt;output without extension&gt;.plan.json</c> beside the output.</summary>
    public string PlanPath(ParseResult parse, string outputPath) =>
        parse.GetValue(PlanOutput)?.FullName
        ?? Path.Combine(Path.GetDirectoryName(outputPath)!, Path.GetFileNameWithoutExtension(outputPath) + ".plan.json");

    public static JsonObject ToJson(CalibrationResult result, string planPath) => new()
    {
        ["plan"] = planPath,
        ["method"] = result.Method == Calibration.Sequential.CalibrationMethod.Sequential ? "sequential" : "full",
        ["allocation"] = result.Allocation.ToString().ToLowerInvariant(),
        ["measured_sparsity"] = result.MeasuredSparsity,
        ["seconds"] = Math.Round(result.Elapsed.TotalSeconds, 3),
        ["validation_nll"] = new JsonObject
        {
            ["dense"] = result.Validation.Dense,
            ["uniform"] = result.Validation.Uniform,
            ["greedy"] = result.Validation.Greedy,
            ["final"] = result.Validation.Final,
            ["trained"] = result.Validation.Trained,
        },
        ["training"] = result.Training is not { } t ? null : new JsonObject
        {
            ["kept"] = t.Kept,
            ["steps"] = t.Steps,
            ["best_step"] = t.BestStep,
            ["held_out_kl_before"] = t.InitialHeldOutKl,
            ["held_out_kl_after"] = t.FinalHeldOutKl,
            ["stopped"] = t.Stopped,
            ["seconds"] = Math.Round(t.Elapsed.TotalSeconds, 3),
            ["history"] = new JsonArray(t.History.Select(h => (JsonNode)new JsonObject
            {
                ["step"] = h.Step,
                ["training_kl"] = double.IsNaN(h.TrainingLoss) ? null : h.TrainingLoss,
                ["held_out_kl"] = h.HeldOutKl,
            }).ToArray()),
        },
        ["groups"] = new JsonArray(result.Groups.Select(g => (JsonNode)new JsonObject
        {
            ["id"] = g.Id,
            ["layer"] = g.Layer,
            ["kinds"] = g.Kinds,
            ["in_features"] = g.InFeatures,
            ["parameters"] = g.Parameters,
            ["sparsity"] = g.Sparsity,
            ["threshold"] = g.Threshold,
            ["k"] = g.K,
            ["measured_sparsity"] = g.MeasuredSparsity,
            ["compensated"] = g.Compensated,
        }).ToArray()),
        ["notes"] = new JsonArray(result.Notes.Select(n => (JsonNode)JsonValue.Create(n)!).ToArray()),
        ["stages"] = new JsonArray(result.Stages.Select(st => (JsonNode)new JsonObject
        {
            ["name"] = st.Name,
            ["seconds"] = Math.Round(st.Elapsed.TotalSeconds, 3),
        }).ToArray()),
    };

    public static void Render(CalibrationResult result, string planPath, IAnsiConsole console)
    {
        var table = new Table().Border(TableBorder.Rounded).AddColumn("group").AddColumn("sparsity", c => c.RightAligned())
            .AddColumn("τ / k", c => c.RightAligned()).AddColumn("measured", c => c.RightAligned()).AddColumn("compensated");
        foreach (var g in result.Groups)
            table.AddRow(Markup.Escape(g.Id), $"{100 * g.Sparsity:0.#}%",
                g.Threshold is { } t ? t.ToString("0.#####", CultureInfo.InvariantCulture) : $"{g.K}/{g.InFeatures}",
                $"{100 * g.MeasuredSparsity:0.#}%", g.Compensated ? "yes" : "");
        console.MarkupLine($"[bold]Calibration[/] ({result.Allocation.ToString().ToLowerInvariant()} allocation, measured average sparsity {100 * result.MeasuredSparsity:0.##}%)");
        console.Write(table);
        var v = result.Validation;
        string Ppl(double nll) => Math.Exp(nll).ToString("0.###", CultureInfo.InvariantCulture);
        console.MarkupLine($"held-out perplexity: dense {Ppl(v.Dense)}, uniform {Ppl(v.Uniform)}" +
            (v.Greedy is { } g2 ? $", greedy {Ppl(g2)}" : "") + (v.Trained is { } t2 ? $", trained spontaneous {Ppl(t2)}" : "") + $", plan {Ppl(v.Final)}");
        foreach (var note in result.Notes) console.MarkupLine($"note: {Markup.Escape(note)}");
        console.MarkupLine($"calibrated in {result.Elapsed.TotalSeconds:0.0} s ({Markup.Escape(string.Join(", ", result.Stages.Select(st => $"{st.Name} {st.Elapsed.TotalSeconds:0.0} s")))}); plan saved to {Markup.Escape(planPath)}");
    }
}
