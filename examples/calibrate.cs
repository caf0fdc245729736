// Calibrates llama-brown (or any model folder laid out like it) through the SparseOnnx libraries, sparsifies it
// with the plan, saves both, and compares test perplexity of the dense and the sparsified model.
//
//   cd examples && dotnet run -c Release calibrate.cs -- ../models/llama-brown ../out/brown-calibrated [--sparsity 0.5]
//
// The model folder holds model.onnx, tokenizer.model, data/valid.txt (calibration text) and data/test.txt
// (evaluation text), each text one document per line, as llama-brown was trained. The output folder receives
// model.onnx, model.plan.json and model.plan.spontaneous.bin (the plan is re-applicable with
// `sparseonnx sparsify --plan`). Progress goes to stderr as plain lines, the summary to stdout.
//
// The packages come from ../artifacts/packages (NuGet.config here; ./build.sh pack fills it) at the versions
// in Directory.Packages.props, so the directives below name no versions.
#:package SparseOnnx.Calibration
#:package SparseOnnx.GraphRewriter
#:package SparseOnnx.Runtime
#:package Microsoft.ML.OnnxRuntime
// File-based apps default to native AOT publishing, which makes restore fetch the ILCompiler packages for nothing:
// this script is only ever run, and ONNX Runtime's managed API is not trimming-safe anyway.
#:property PublishAot=false

using System.Diagnostics;
using System.Globalization;
using SparseOnnx.Calibration;
using SparseOnnx.Calibration.Capture;
using SparseOnnx.Calibration.Data;
using SparseOnnx.Calibration.Sequential;
using SparseOnnx.Calibration.Training;
using SparseOnnx.GraphRewriter;
using SparseOnnx.GraphRewriter.IO;
using SparseOnnx.GraphRewriter.Sparsify;
using SparseOnnx.Runtime.Evaluation;
using SparseOnnx.Runtime.Inference;
using SparseOnnx.Runtime.Tokenization;

CultureInfo.CurrentCulture = CultureInfo.InvariantCulture;
if (args is ["-h" or "--help"])
{
    Console.WriteLine(Arguments.Usage);
    return 0;
}
if (Arguments.Parse(args) is not { } arguments)
    return 2;

var clock = Stopwatch.StartNew();
string modelPath = Path.Combine(arguments.ModelFolder, "model.onnx");
string outputPath = Path.Combine(arguments.OutputFolder, "model.onnx");
string planPath = Path.Combine(arguments.OutputFolder, "model.plan.json");
var progress = new StderrProgress(clock);
try
{
    var tokenizer = TextTokenizer.Load(Path.Combine(arguments.ModelFolder, "tokenizer.model"));

    // Load once: the calibrator instruments a copy of this Model (sharing its weights) and leaves it as it was,
    // so the same Model is then rewritten with the plan and saved.
    using var model = ModelLoader.Load(modelPath);
    // Windows of 128 tokens from the validation text, one document per line as llama-brown was trained: half the
    // library's default counts (64 + 16), which more than halves the calibration's time (18 s against 48 s beside
    // other work on 2 cores) for the same test perplexity at 50% (122.49 against 122.53 on the default slice); each
    // threshold is still a quantile over 32 × 128 = 4,096 tokens of its input.
    var data = CalibrationSet.FromTextFile(Path.Combine(arguments.ModelFolder, "data", "valid.txt"), tokenizer,
        new CalibrationSetOptions { Samples = 32, ValidationSamples = 8 }, TextReading.PerLine);
    var options = new CalibrationOptions
    {
        Sparsity = arguments.Sparsity,
        Mode = SparsityMode.Threshold,  // per-projection thresholds: what calibration is for (top-k needs none)
        // Block by block (the library's default method): each block's thresholds, then its closed-form compensation,
        // kept where it lowers the held-out loss. The library's default then trains the spontaneous neurons by KL to
        // the dense model on the whole model for 60 steps; this script leaves that phase out unless --train-steps asks
        // for it. On 2 cores it is most of the time (38 of 46 s of calibration with 60 steps, the blocks 8 s), and at
        // 50% it buys little: about a tenth of the gap to dense with the library's 64 + 16 windows
        // (docs/calibration.md); with the 32 + 8 here the trained vectors lowered the held-out KL (0.0249 to 0.0230)
        // but not the held-out loss, so calibration did not keep them.
        Sequential = new SequentialOptions { EndToEndSteps = arguments.TrainSteps },
        Training = arguments.TrainSteps > 0 ? new SpontaneousTrainingOptions() : null,
    };
    Directory.CreateDirectory(arguments.OutputFolder);
    // The probes are written to this folder, which the calibrator deletes afterwards (it creates it).
    string workFolder = Path.Combine(arguments.OutputFolder, "calibration.work");
    var calibration = Calibrator.Run(model, data, options, workFolder, progress);
    progress.Finish();
    // The plan in memory as saved: the rewritten model records the file it can be re-made from.
    var plan = calibration.Plan.Save(planPath);

    var report = new SparsifyPass(new SparsifyOptions { Plan = plan, Mode = SparsityMode.Threshold }).Run(model).Report;
    if (report.Rewritten.Count == 0)
        throw new InvalidOperationException("The plan rewrote no projection: " + string.Join("; ", report.Skipped.Select(s => $"{s.Node}: {s.Reason}")));
    ModelSaver.Save(model, outputPath, new SaveOptions());
    Console.Error.WriteLine($"[{clock.Elapsed.TotalSeconds,6:F1} s] saved {outputPath} ({report.Rewritten.Count} projections rewritten) and {planPath}");

    // Perplexity as `sparseonnx eval --documents lines` measures it (windows of 128, no overlap), on the first
    // --eval-tokens tokens of the test text: the whole file (105k tokens) takes about a minute per model on 2 cores.
    var test = TokenStream.Read(Path.Combine(arguments.ModelFolder, "data", "test.txt"), tokenizer, TextReading.PerLine);
    var evaluation = new PerplexityOptions { MaxTokens = arguments.EvalTokens };
    PerplexityResult Perplexity(string path, string name)
    {
        using var lm = CausalLm.Open(path);
        var result = PerplexityEvaluator.Evaluate(lm, test.Ids, evaluation);
        Console.Error.WriteLine($"[{clock.Elapsed.TotalSeconds,6:F1} s] {name} perplexity over {result.Tokens:N0} tokens");
        return result;
    }
    var dense = Perplexity(modelPath, "dense");
    var sparse = Perplexity(outputPath, "sparse");

    Console.WriteLine($"dense perplexity:  {dense.Perplexity:F3}");
    Console.WriteLine($"sparse perplexity: {sparse.Perplexity:F3} ({(sparse.Perplexity / dense.Perplexity - 1) * 100:+0.0;-0.0}%)");
    Console.WriteLine($"evaluated tokens:  {sparse.Tokens:N0} of data/test.txt");
    Console.WriteLine($"sparsity:          {arguments.Sparsity:F3} target, {calibration.MeasuredSparsity:F3} measured on held-out windows");
    Console.WriteLine($"rewritten:         {report.Rewritten.Count} projections, {calibration.Groups.Count(g => g.Compensated)} of {calibration.Groups.Count} groups with vectors");
    if (calibration.Training is { } training)
        Console.WriteLine($"training:          {training.Steps} steps, {(training.Kept ? "kept" : "not kept")} (held-out KL {training.InitialHeldOutKl:F4} -> {training.FinalHeldOutKl:F4})");
    Console.WriteLine($"time:              calibration {calibration.Elapsed.TotalSeconds:F1} s, total {clock.Elapsed.TotalSeconds:F1} s");
    Console.WriteLine($"model:             {outputPath}");
    Console.WriteLine($"plan:              {planPath}");
    return 0;
}
catch (Exception e) when (e is IOException or UnauthorizedAccessException or ArgumentException or InvalidOperationException
                              or SparseOnnxException or TokenizerLoadException or UnsupportedModelException
                              or CalibrationDataException or CalibrationModelException)
{
    // Errors the libraries report to a user, with messages that name the problem (a missing file is an IOException).
    Console.Error.WriteLine($"error: {e.Message}");
    return 1;
}

/// <summary>The command line, checked: <see cref="Parse"/> prints the problem and the usage to stderr and returns null when it is wrong.</summary>
sealed record Arguments(string ModelFolder, string OutputFolder, double Sparsity, int EvalTokens, int TrainSteps)
{
    public const string Usage = """
        usage: dotnet run -c Release calibrate.cs -- MODEL_FOLDER OUTPUT_FOLDER [--sparsity S] [--eval-tokens N] [--train-steps N]

          MODEL_FOLDER    model.onnx, tokenizer.model, data/valid.txt and data/test.txt (one document per line)
          OUTPUT_FOLDER   where model.onnx and model.plan.json are written (created; an existing model there is replaced)
          --sparsity S    target average sparsity in [0, 1) (default 0.5)
          --eval-tokens N tokens of data/test.txt the perplexities are measured on, at least 2 (default 16384; 0: all)
          --train-steps N steps of end-to-end KL training of the spontaneous neurons (default 0: none; the library's is 60)
        """;

    public static Arguments? Parse(string[] args)
    {
        var positional = new List<string>();
        double sparsity = 0.5;
        int evalTokens = 16384, trainSteps = 0;
        for (int i = 0; i < args.Length; i++)
        {
            string arg = args[i];
            if (arg is "--sparsity" or "--eval-tokens" or "--train-steps")
            {
                if (i + 1 == args.Length) return Fail($"{arg} needs a value");
                string value = args[++i];
                if (arg == "--sparsity")
                {
                    if (!double.TryParse(value, NumberStyles.Float, CultureInfo.InvariantCulture, out sparsity) || !(sparsity >= 0 && sparsity < 1))
                        return Fail($"--sparsity must be a number in [0, 1), not '{value}'");
                }
                else if (arg == "--eval-tokens")
                {
                    if (!int.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out evalTokens) || evalTokens == 1)
                        return Fail($"--eval-tokens must be 0 (all) or a whole number of at least 2, not '{value}'");
                }
                else if (!int.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out trainSteps))
                    return Fail($"--train-steps must be a whole number, 0 or more, not '{value}'");
            }
            else if (arg.StartsWith('-')) return Fail($"unknown option '{arg}'");
            else positional.Add(arg);
        }
        if (positional.Count != 2) return Fail($"expected MODEL_FOLDER and OUTPUT_FOLDER, got {positional.Count} argument(s)");
        if (!Directory.Exists(positional[0])) return Fail($"the model folder '{positional[0]}' does not exist");
        return new Arguments(Path.GetFullPath(positional[0]), Path.GetFullPath(positional[1]), sparsity, evalTokens, trainSteps);
    }

    private static Arguments? Fail(string problem)
    {
        Console.Error.WriteLine($"error: {problem}");
        Console.Error.WriteLine(Usage);
        return null;
    }
}

/// <summary>
/// Calibration progress as plain lines on stderr: one when a stage starts and then at most one every 10 s with how
/// far it is. Reports arrive on the calibrating thread (this is not <see cref="Progress{T}"/>, which would post them
/// to the thread pool and print them late and out of order).
/// </summary>
sealed class StderrProgress(Stopwatch clock) : IProgress<CalibrationProgress>
{
    private string? _stage;
    private TimeSpan _lastLine;

    public void Report(CalibrationProgress value)
    {
        bool newStage = value.Stage != _stage;
        if (!newStage && clock.Elapsed - _lastLine < TimeSpan.FromSeconds(10)) return;
        _stage = value.Stage;
        _lastLine = clock.Elapsed;
        string share = value.Total > 0 ? $"{100 * value.Done / value.Total,3:F0}%" : "    ";
        Console.Error.WriteLine($"[{clock.Elapsed.TotalSeconds,6:F1} s] {share} {value.Stage}");
    }

    public void Finish() => Console.Error.WriteLine($"[{clock.Elapsed.TotalSeconds,6:F1} s] calibration done");
}
