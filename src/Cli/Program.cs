using System.CommandLine;
using SparseOnnx.Cli;
using SparseOnnx.Cli.Commands;

var root = new RootCommand("SparseOnnx: rewrites exported LLMs in ONNX so they run cheaper in any ONNX Runtime host.")
{
    InspectCommand.Create(),
    RepackCommand.Create(),
    SparsifyCommand.Create(),
    SynthCommand.Create(),
    EvalCommand.Create(),
    GenerateCommand.Create(),
    BenchCommand.Create(),
    ReportCommand.Create(),
    PruneCommand.Create(),
    BenchOpCommand.Create(),
};
return CommandRunner.Run(root, args);
