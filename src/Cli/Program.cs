using System.CommandLine;
using System.Globalization;
using System.Runtime.InteropServices;
using SparseOnnx.Cli;
using SparseOnnx.Cli.Commands;

// Numbers and dates print the same in every locale (the process loads ICU for Unicode normalization only).
CultureInfo.DefaultThreadCurrentCulture = CultureInfo.DefaultThreadCurrentUICulture = CultureInfo.InvariantCulture;
CultureInfo.CurrentCulture = CultureInfo.CurrentUICulture = CultureInfo.InvariantCulture;

var root = new RootCommand("SparseOnnx: rewrites exported LLMs in ONNX so they run cheaper in any ONNX Runtime host.")
{
    InspectCommand.Create(),
    RepackCommand.Create(),
    SparsifyCommand.Create(),
    GenAiConfigCommand.Create(),
    QuantizeCommand.Create(),
    SynthCommand.Create(),
    EvalCommand.Create(),
    GenerateCommand.Create(),
    BenchCommand.Create(),
    ReportCommand.Create(),
    PruneCommand.Create(),
    BenchOpCommand.Create(),
    TokenizeCommand.Create(),
};
// Ctrl-C and SIGTERM end the command without leaving half-written models or work folders behind.
using var interrupt = PosixSignalRegistration.Create(PosixSignal.SIGINT, CommandRunner.OnInterrupt);
using var terminate = PosixSignalRegistration.Create(PosixSignal.SIGTERM, CommandRunner.OnInterrupt);
return CommandRunner.Run(root, args);
