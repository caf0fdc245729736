using System.CommandLine;
using SparseOnnx.GraphRewriter;
using SparseOnnx.GraphRewriter.IO;

namespace SparseOnnx.Cli;

/// <summary>Exit codes of the <c>sparseonnx</c> command.</summary>
public static class ExitCodes
{
    /// <summary>Success.</summary>
    public const int Success = 0;

    /// <summary>The input was rejected (invalid or unsafe model, bad arguments); the message says why.</summary>
    public const int InputError = 1;

    /// <summary>A bug in SparseOnnx: an error it did not anticipate.</summary>
    public const int InternalError = 70;
}

/// <summary>
/// Runs a command line and turns every failure into a message and an exit code: the tool never ends with
/// an unhandled exception, whatever the input.
/// </summary>
public static class CommandRunner
{
    /// <summary>
    /// The process's SIGINT/SIGTERM handler: removes every unfinished file and work folder (<see cref="ScratchPaths"/>),
    /// says so on stderr, and exits with 128 + the signal number (130, 143) as a shell does.
    /// </summary>
    public static void OnInterrupt(System.Runtime.InteropServices.PosixSignalContext context)
    {
        context.Cancel = true; // this handler ends the process itself, after the cleanup
        var removed = ScratchPaths.Current;
        ScratchPaths.DeleteAll();
        string name = context.Signal == System.Runtime.InteropServices.PosixSignal.SIGINT ? "SIGINT" : "SIGTERM";
        Console.Error.WriteLine($"interrupted ({name}); removed {removed.Count} unfinished file(s) and folder(s)");
        Console.Error.Flush();
        Console.Out.Flush();
        ExitNow(context.Signal == System.Runtime.InteropServices.PosixSignal.SIGINT ? 130 : 143);
    }

    /// <summary>
    /// Ends the process at once. Environment.Exit runs the runtime's shutdown and the native libraries' exit
    /// handlers while ONNX Runtime's worker threads may still be inside a kernel, and CI once saw that end in
    /// SIGSEGV (exit 139) instead of 130; after the cleanup above nothing is left to flush, so on Unix the process
    /// leaves through _exit, which runs no handlers.
    /// </summary>
    private static void ExitNow(int code)
    {
        if (!OperatingSystem.IsWindows())
            try
            {
                ImmediateExit(code);
            }
            catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
            {
            }
        Environment.Exit(code);
    }

    [System.Runtime.InteropServices.DllImport("libc", EntryPoint = "_exit")]
    private static extern void ImmediateExit(int code);

    public static int Run(RootCommand root, string[] args, TextWriter? output = null, TextWriter? error = null)
    {
        output ??= Console.Out;
        error ??= Console.Error;
        var configuration = new InvocationConfiguration { Output = output, Error = error, EnableDefaultExceptionHandler = false };
        // --progress applies to every command: added here, so every root (the tool's, and the tests') has it.
        var progress = root.Options.OfType<Option<string>>().FirstOrDefault(o => o.Name == ProgressDisplay.OptionName);
        if (progress is null) root.Options.Add(progress = ProgressDisplay.CreateOption());
        var previousStyle = ProgressDisplay.Style;
        try
        {
            var parse = root.Parse(args);
            ProgressDisplay.Style = ProgressDisplay.Parse(parse.GetValue(progress));
            return parse.Invoke(configuration);
        }
        catch (SparseOnnxException e)
        {
            error.WriteLine($"error: {e.Message}");
            return ExitCodes.InputError;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or ArgumentException or FormatException
                                      or Runtime.Tokenization.TokenizerLoadException or Runtime.Inference.UnsupportedModelException
                                      or Runtime.Inference.ExecutionProviderUnavailableException
                                      or Calibration.Data.CalibrationDataException or Calibration.Capture.CalibrationModelException)
        {
            error.WriteLine($"error: {e.Message}");
            return ExitCodes.InputError;
        }
        catch (Microsoft.ML.OnnxRuntime.OnnxRuntimeException e)
        {
            // ONNX Runtime refused the model or its inputs (invalid graph, missing op, out-of-range ids).
            error.WriteLine($"error: ONNX Runtime: {e.Message}");
            return ExitCodes.InputError;
        }
        catch (Exception e)
        {
            error.WriteLine($"internal error: {e.GetType().Name}: {e.Message}");
            error.WriteLine("This is a bug in SparseOnnx; please report it with the command line and, if you can, the model.");
            if (Environment.GetEnvironmentVariable("SPARSEONNX_DEBUG") == "1") error.WriteLine(e);
            return ExitCodes.InternalError;
        }
        finally
        {
            ProgressDisplay.Style = previousStyle;
        }
    }
}
