using SparseOnnx.GraphRewriter.Analysis.Projections;
using SparseOnnx.GraphRewriter.Sparsify;

namespace SparseOnnx.GraphRewriter.Tests.TestUtil;

/// <summary>How a single projection is written in a test model.</summary>
public enum ProjectionStyle
{
    /// <summary>MatMul(X, W[K, N]).</summary>
    MatMul,

    /// <summary>MatMul(X, Transpose(W[N, K])).</summary>
    MatMulTransposed,

    /// <summary>MatMul(X, Identity(W)) followed by Add(bias).</summary>
    MatMulIdentityBias,

    /// <summary>Gemm(X2d, W[K, N], C) with transB = 0.</summary>
    Gemm,

    /// <summary>Gemm(X2d, W[N, K], C) with transB = 1, alpha 0.5, beta 2.</summary>
    GemmTransBScaled,
}

/// <summary>
/// Small runnable models around one projection, built in code with a seeded RNG: X → projection → Tanh → "Y",
/// with the projection's own output also a graph output ("P") so rewrites must keep its name.
/// </summary>
public static class ProjectionModels
{
    public static Model Single(ProjectionStyle style, DataType type, int k = 48, int n = 40, int seed = 1)
    {
        var random = new Random(seed);
        var graph = new Graph("single");
        var b = new GraphBuilder(graph);
        bool gemm = style is ProjectionStyle.Gemm or ProjectionStyle.GemmTransBScaled;
        var x = gemm ? b.Input("X", type, "rows", k) : b.Input("X", type, "batch", "seq", k);
        bool transposed = style is ProjectionStyle.MatMulTransposed or ProjectionStyle.GemmTransBScaled;
        var weight = b.Initializer(Constant("proj.weight", type, transposed ? [n, k] : [k, n], random));
        Node node;
        Value p;
        switch (style)
        {
            case ProjectionStyle.MatMul:
                node = b.Node("", "MatMul", [x, weight], 1, "proj/MatMul");
                p = node.Outputs[0];
                break;
            case ProjectionStyle.MatMulTransposed:
                node = b.Node("", "MatMul", [x, b.Op("Transpose", [weight], OnnxAttribute.Ints("perm", [1, 0]))], 1, "proj/MatMul");
                p = node.Outputs[0];
                break;
            case ProjectionStyle.MatMulIdentityBias:
                node = b.Node("", "MatMul", [x, b.Op("Identity", weight)], 1, "proj/MatMul");
                p = b.Node("", "Add", [node.Outputs[0], b.Initializer(Constant("proj.bias", type, [n], random))], 1, "proj/Add").Outputs[0];
                break;
            case ProjectionStyle.Gemm:
                node = b.Node("", "Gemm", [x, weight, b.Initializer(Constant("proj.bias", type, [n], random))], 1, "proj/Gemm");
                p = node.Outputs[0];
                break;
            default:
                node = b.Node("", "Gemm", [x, weight, b.Initializer(Constant("proj.bias", type, [n], random))], 1, "proj/Gemm",
                    OnnxAttribute.Int("transB", 1), OnnxAttribute.Float("alpha", 0.5f), OnnxAttribute.Float("beta", 2f));
                p = node.Outputs[0];
                break;
        }
        p.Name = "P";
        b.Output(p, type);
        var y = b.Op("Identity", p);
        y.Name = "Y";
        b.Output(y, type);
        return NewModel(graph);
    }

    public static Model NewModel(Graph graph)
    {
        var model = new Model(graph) { IrVersion = 8, ProducerName = "test" };
        model.OpsetImports.Set("", 17);
        return model;
    }

    public static Tensor Constant(string name, DataType type, long[] dims, Random random, float scale = 0.5f)
    {
        var values = new float[dims.Aggregate(1L, (a, d) => a * d)];
        for (int i = 0; i < values.Length; i++) values[i] = (float)(random.NextDouble() * 2 - 1) * scale;
        return type == DataType.Double
            ? Tensor.FromElements<double>(name, type, dims, values.Select(v => (double)v).ToArray())
            : new Tensor(name, type, dims, new InMemoryTensorData(FloatElements.Encode(values, type)));
    }

    /// <summary>Every kind, unknown and lm_head included.</summary>
    public static IReadOnlySet<ProjectionKind> AllKinds { get; } = new HashSet<ProjectionKind>(Enum.GetValues<ProjectionKind>());

    /// <summary>Sparsifies every projection (kind unknown included) at the given setting and returns the pass's report.</summary>
    public static SparsifyReport SparsifyAll(Model model, double sparsity = 0, bool spontaneous = true, SparsityPlan? plan = null)
    {
        var pass = new SparsifyPass(new SparsifyOptions { Sparsity = plan is null ? sparsity : null, Kinds = AllKinds, SpontaneousNeurons = spontaneous, Plan = plan });
        return pass.Run(model).Report;
    }
}
