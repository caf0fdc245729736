using System.Buffers.Binary;
using SparseOnnx.GraphRewriter.Sparsify;
using SparseOnnx.GraphRewriter.Tests.TestUtil;

namespace SparseOnnx.GraphRewriter.Tests.Sparsify;

/// <summary>The plan file (docs/plan-format.md): round trip, malformed and unsafe files, plans that do not fit the model.</summary>
public class SparsityPlanTests
{
    [Fact]
    public void SavedPlansLoadBackUnchanged()
    {
        using var dir = new TempDirectory();
        var plan = new SparsityPlan(
        [
            new PlanEntry { Node = "a", Graph = "main", Kind = "q", Layer = 3, InFeatures = 8, OutFeatures = 2, K = 5, Spontaneous = [1.5f, -0.25f] },
            new PlanEntry { Node = "b", Threshold = 0.125f },
            new PlanEntry { Node = "c", Spontaneous = [float.Epsilon, -0f, 3e38f] },
        ], "valid.txt, 4096 tokens");
        plan.Save(dir.File("plan.json"));
        Assert.Equal(["plan.json", "plan.spontaneous.bin"], dir.ListFiles());

        var loaded = SparsityPlan.Load(dir.File("plan.json"));
        Assert.Equal("valid.txt, 4096 tokens", loaded.CalibrationSource);
        Assert.Equal(dir.File("plan.json"), loaded.SourcePath);
        Assert.Equal(3, loaded.Projections.Count);
        for (int i = 0; i < 3; i++)
        {
            var (e, a) = (plan.Projections[i], loaded.Projections[i]);
            Assert.Equal(e with { Spontaneous = null }, a with { Spontaneous = null });
            Assert.Equal(e.Spontaneous?.Select(BitConverter.SingleToInt32Bits), a.Spontaneous?.Select(BitConverter.SingleToInt32Bits));
        }
    }

    public static TheoryData<string, string?, string> MalformedPlans() => new()
    {
        { "{ not json", null, "is not valid JSON" },
        { """{"format":"other","version":1,"projections":[]}""", null, "is not a SparseOnnx plan" },
        { """{"format":"sparseonnx-plan","version":2,"projections":[]}""", null, "has format version 2; this SparseOnnx reads version 1" },
        { """{"format":"sparseonnx-plan","version":1}""", null, "has no \"projections\" array" },
        { """{"format":"sparseonnx-plan","version":1,"projections":[{"k":3}]}""", null, "projections[0] has no \"node\"" },
        { """{"format":"sparseonnx-plan","version":1,"projections":[{"node":"a","k":3,"threshold":0.5}]}""", null, "gives both k and threshold" },
        { """{"format":"sparseonnx-plan","version":1,"projections":[{"node":"a","k":0}]}""", null, "k must be at least 1" },
        { """{"format":"sparseonnx-plan","version":1,"projections":[{"node":"a","k":2.5}]}""", null, "\"k\" must be an integer" },
        { """{"format":"sparseonnx-plan","version":1,"projections":[{"node":"a","threshold":-1}]}""", null, "threshold must be a finite number" },
        { """{"format":"sparseonnx-plan","version":1,"projections":[{"node":"a"},{"node":"a"}]}""", null, "appears twice" },
        { """{"format":"sparseonnx-plan","version":1,"projections":[{"node":"a","spontaneous":{"offset":0,"count":2}}]}""", null, "names no \"spontaneous_data\" file" },
        { """{"format":"sparseonnx-plan","version":1,"spontaneous_data":"../x.bin","projections":[]}""", null, "without '..'" },
        { """{"format":"sparseonnx-plan","version":1,"spontaneous_data":"/etc/passwd","projections":[]}""", null, "must be a path relative to the plan's folder" },
        { """{"format":"sparseonnx-plan","version":1,"spontaneous_data":"missing.bin","projections":[]}""", null, "spontaneous data file 'missing.bin' not found" },
        { """{"format":"sparseonnx-plan","version":1,"spontaneous_data":"v.bin","projections":[{"node":"a","spontaneous":{"offset":4,"count":2}}]}""", "8", "do not fit the 8-byte data file" },
        { """{"format":"sparseonnx-plan","version":1,"spontaneous_data":"v.bin","projections":[{"node":"a","spontaneous":{"offset":2,"count":1}}]}""", "8", "offsets are multiples of 4" },
        { """{"format":"sparseonnx-plan","version":1,"spontaneous_data":"v.bin","projections":[{"node":"a","spontaneous":{"offset":0,"count":2}}]}""", "nan", "contain NaN or infinity" },
        { """{"format":"sparseonnx-plan","version":1,"spontaneous_data":"v.bin","projections":[{"node":"a","out_features":3,"spontaneous":{"offset":0,"count":2}}]}""", "8", "2 spontaneous values for 3 output features" },
    };

    [Theory]
    [MemberData(nameof(MalformedPlans))]
    public void MalformedPlansAreRefusedWithTheProblemNamed(string json, string? data, string expected)
    {
        using var dir = new TempDirectory();
        File.WriteAllText(dir.File("plan.json"), json);
        if (data is not null)
        {
            var bytes = new byte[8];
            if (data == "nan") BinaryPrimitives.WriteSingleLittleEndian(bytes.AsSpan(4), float.NaN);
            File.WriteAllBytes(dir.File("v.bin"), bytes);
        }
        var error = Assert.Throws<InvalidPlanException>(() => SparsityPlan.Load(dir.File("plan.json")));
        Assert.Contains(expected, error.Message);
        Assert.Contains("plan.json", error.Message);
    }

    [Fact]
    public void ADataFileThatIsASymlinkOutOfThePlanFolderIsRefused()
    {
        using var dir = new TempDirectory();
        Directory.CreateDirectory(dir.File("plans"));
        File.WriteAllBytes(dir.File("secret.bin"), new byte[8]);
        File.CreateSymbolicLink(dir.File("plans/v.bin"), dir.File("secret.bin"));
        File.WriteAllText(dir.File("plans/plan.json"), """{"format":"sparseonnx-plan","version":1,"spontaneous_data":"v.bin","projections":[]}""");
        var error = Assert.Throws<InvalidPlanException>(() => SparsityPlan.Load(dir.File("plans/plan.json")));
        Assert.Contains("lies outside the plan's folder", error.Message);
    }

    public static TheoryData<PlanEntry, string> EntriesThatDoNotFit() => new()
    {
        { new PlanEntry { Node = "proj/Nope", K = 3 }, "'proj/Nope' is not a projection of this model" },
        { new PlanEntry { Node = "proj/MatMul", Graph = "main/If/then_branch", K = 3 }, "is not a projection of this model" },
        { new PlanEntry { Node = "proj/MatMul", Kind = "down", K = 3 }, "is a lm_head projection, the plan says down" },
        { new PlanEntry { Node = "proj/MatMul", Layer = 2, K = 3 }, "is in layer -, the plan says 2" },
        { new PlanEntry { Node = "proj/MatMul", InFeatures = 64, K = 3 }, "has 48 input features, the plan says 64" },
        { new PlanEntry { Node = "proj/MatMul", K = 49 }, "k = 49 exceeds its 48 input features" },
        { new PlanEntry { Node = "proj/MatMul", K = 3, Spontaneous = new float[39] }, "has 40 outputs but the plan gives 39 spontaneous values" },
    };

    /// <summary>A plan made for another model is refused before anything changes.</summary>
    [Theory]
    [MemberData(nameof(EntriesThatDoNotFit))]
    public void APlanThatDoesNotFitTheModelIsRefusedAndTheModelIsUntouched(PlanEntry entry, string expected)
    {
        using var model = ProjectionModels.Single(ProjectionStyle.MatMul, DataType.Float);
        byte[] before = ModelSaver.ToBytes(model);
        var error = Assert.Throws<InvalidPlanException>(() => ProjectionModels.SparsifyAll(model, plan: new SparsityPlan([entry])));
        Assert.Contains(expected, error.Message);
        Assert.Equal(before, ModelSaver.ToBytes(model));
    }

    [Fact]
    public void ProjectionsThePlanLeavesOutAreSkippedUnlessAUniformSettingCoversThem()
    {
        var graph = new Graph("two");
        var b = new GraphBuilder(graph);
        var random = new Random(2);
        var x = b.Input("X", DataType.Float, "n", 16L);
        var h = b.Node("", "MatMul", [x, b.Initializer(ProjectionModels.Constant("w1", DataType.Float, [16, 16], random))], 1, "first").Outputs[0];
        var y = b.Node("", "MatMul", [b.Op("Relu", h), b.Initializer(ProjectionModels.Constant("w2", DataType.Float, [16, 8], random))], 1, "second").Outputs[0];
        b.Output(y, DataType.Float, "n", 8L);
        var plan = new SparsityPlan([new PlanEntry { Node = "first", Threshold = 0.25f }]);

        using var model = ProjectionModels.NewModel(graph);
        byte[] original = ModelSaver.ToBytes(model);
        var report = ProjectionModels.SparsifyAll(model, plan: plan);
        Assert.Equal("first", Assert.Single(report.Rewritten).Node);
        Assert.Equal(0.25f, report.Rewritten[0].Threshold);
        Assert.Equal("not in the plan, and no uniform sparsity or threshold was given", Assert.Single(report.Skipped).Reason);

        using var again = ModelLoader.Load(original);
        var pass = new SparsifyPass(new SparsifyOptions { Plan = plan, Sparsity = 0.5, Kinds = ProjectionModels.AllKinds });
        var byNode = pass.Run(again).Report.Rewritten.ToDictionary(r => r.Node);
        Assert.Equal((null, 0.25f), (byNode["first"].K, byNode["first"].Threshold));
        Assert.Equal((8L, null), (byNode["second"].K, byNode["second"].Threshold));
    }
}
