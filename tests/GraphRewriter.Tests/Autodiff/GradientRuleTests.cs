using SparseOnnx.GraphRewriter.Autodiff;
using static SparseOnnx.GraphRewriter.Tests.Autodiff.GradientCheck;

namespace SparseOnnx.GraphRewriter.Tests.Autodiff;

/// <summary>Every gradient rule against finite differences, with broadcasting and symbolic shapes where the rule has to handle them.</summary>
public sealed class GradientRuleTests
{
    private static Dictionary<string, (long[] Shape, float[] Values)> Feeds(params (string Name, (long[], float[]) Tensor)[] feeds) =>
        feeds.ToDictionary(f => f.Name, f => f.Tensor);

    /// <summary>An input with symbolic dims, so the rules cannot rely on declared shapes.</summary>
    private static Value Symbolic(GraphBuilder b, string name, int rank) =>
        b.Input(name, DataType.Float, Enumerable.Range(0, rank).Select(i => (object)$"{name}{i}").ToArray());

    [Theory]
    [InlineData("Add")]
    [InlineData("Sub")]
    [InlineData("Mul")]
    [InlineData("Div")]
    public void Binary_BroadcastBothWays(string op)
    {
        // a [2, 1, 4] with b [3, 1]: both are broadcast (a on axis 1, b on the leading and last axes).
        Verify(b => b.Op(op, Symbolic(b, "a", 3), Symbolic(b, "b", 2)),
            Feeds(("a", Tensor(1, 2, 1, 4)), ("b", PositiveTensor(2, 3, 1))), ["a", "b"]);
    }

    [Fact]
    public void Binary_DeclaredEqualShapes_SkipTheReduction()
    {
        Verify(b => b.Op("Mul", b.Input("a", DataType.Float, 2L, 3L), b.Input("b", DataType.Float, 2L, 3L)),
            Feeds(("a", Tensor(1, 2, 3)), ("b", Tensor(2, 2, 3))), ["a", "b"]);
    }

    [Fact]
    public void SameValueTwice_AccumulatesBothUses()
    {
        Verify(b => { var a = Symbolic(b, "a", 2); return b.Op("Mul", a, b.Op("Add", a, a)); }, Feeds(("a", Tensor(3, 2, 3))), ["a"]);
    }

    [Theory]
    [InlineData("Neg")]
    [InlineData("Sqrt")]
    [InlineData("Reciprocal")]
    [InlineData("Exp")]
    [InlineData("Log")]
    [InlineData("Abs")]
    [InlineData("Sigmoid")]
    [InlineData("Tanh")]
    [InlineData("Erf")]
    [InlineData("Relu")]
    [InlineData("Identity")]
    public void Unary(string op)
    {
        bool positive = op is "Sqrt" or "Log";
        // 1/x has a large third derivative near ±0.2, where a 1e-2 step would dominate the comparison.
        float step = op == "Reciprocal" ? 1e-3f : 1e-2f;
        Verify(b => b.Op(op, Symbolic(b, "a", 2)), Feeds(("a", positive ? PositiveTensor(4, 3, 5) : Tensor(4, 3, 5))), ["a"], step);
    }

    [Theory]
    [InlineData(2f)]
    [InlineData(3f)]
    [InlineData(0.5f)]
    public void Pow_ConstantExponent(float exponent)
    {
        Verify(b => b.Op("Pow", Symbolic(b, "a", 2), b.Initializer("p", [], [exponent])), Feeds(("a", PositiveTensor(5, 2, 4))), ["a"]);
    }

    [Fact]
    public void Cast_FloatToFloat()
    {
        Verify(b => b.Op("Cast", [Symbolic(b, "a", 2)], OnnxAttribute.Int("to", (long)DataType.Float)), Feeds(("a", Tensor(6, 2, 3))), ["a"]);
    }

    [Fact]
    public void Where_ConditionFromTheParameterItself_HasNoGradient()
    {
        // The sparsifier's pattern: keep = |x| > t; S(x) = where(keep, x, 0).
        Verify(b =>
        {
            var x = Symbolic(b, "x", 2);
            var keep = b.Op("Greater", b.Op("Abs", x), b.Initializer("t", [], [0.7f]));
            return b.Op("Where", keep, x, b.Initializer("zero", [], [0f]));
        }, Feeds(("x", Tensor(7, 4, 6))), ["x"]);
    }

    [Fact]
    public void Where_BothBranches()
    {
        Verify(b => b.Op("Where", b.Op("Greater", Symbolic(b, "c", 2), b.Initializer("z", [], [0f])), Symbolic(b, "a", 2), Symbolic(b, "bb", 1)),
            Feeds(("c", Tensor(8, 3, 4)), ("a", Tensor(9, 3, 4)), ("bb", Tensor(10, 4))), ["a", "bb"]);
    }

    [Theory]
    [InlineData("Softmax", -1)]
    [InlineData("Softmax", 1)]
    [InlineData("LogSoftmax", -1)]
    public void SoftmaxFamily(string op, long axis)
    {
        Verify(b => b.Op(op, [Symbolic(b, "a", 3)], OnnxAttribute.Int("axis", axis)), Feeds(("a", Tensor(11, 2, 3, 4))), ["a"]);
    }

    [Theory]
    [InlineData("ReduceMean", 1)]
    [InlineData("ReduceMean", 0)]
    [InlineData("ReduceSum", 0)]
    public void Reductions(string op, long keepDims)
    {
        Verify(b =>
        {
            var a = Symbolic(b, "a", 3);
            return op == "ReduceMean"
                ? b.Op(op, [a], OnnxAttribute.Ints("axes", [-1, 0]), OnnxAttribute.Int("keepdims", keepDims))
                : b.Op(op, [a, b.Initializer("axes", [1], [1L])], OnnxAttribute.Int("keepdims", keepDims));
        }, Feeds(("a", Tensor(12, 2, 3, 4))), ["a"]);
    }

    [Fact]
    public void ReduceMean_AllAxes()
    {
        Verify(b => b.Op("Mul", b.Op("ReduceMean", [Symbolic(b, "a", 2)], OnnxAttribute.Int("keepdims", 0)), Symbolic(b, "w", 1)),
            Feeds(("a", Tensor(13, 3, 4)), ("w", Tensor(14, 5))), ["a", "w"]);
    }

    [Fact]
    public void MatMul_ActivationTimesWeight()
    {
        Verify(b => b.Op("MatMul", Symbolic(b, "x", 3), b.Input("w", DataType.Float, 4L, 5L)),
            Feeds(("x", Tensor(15, 2, 3, 4)), ("w", Tensor(16, 4, 5))), ["x", "w"]);
    }

    [Fact]
    public void MatMul_BatchedWithBroadcast()
    {
        // Attention-like: [2, 3, 4, 5] · [3, 5, 6]; the second operand is broadcast over the leading axis.
        Verify(b => b.Op("MatMul", Symbolic(b, "q", 4), Symbolic(b, "k", 3)),
            Feeds(("q", Tensor(17, 2, 3, 4, 5)), ("k", Tensor(18, 3, 5, 6))), ["q", "k"]);
    }

    [Theory]
    [InlineData(false, false)]
    [InlineData(true, false)]
    [InlineData(false, true)]
    [InlineData(true, true)]
    public void Gemm_AllTransposes(bool transA, bool transB)
    {
        long[] aShape = transA ? [4, 3] : [3, 4], bShape = transB ? [5, 4] : [4, 5];
        Verify(b => b.Op("Gemm", [Symbolic(b, "a", 2), Symbolic(b, "bb", 2), Symbolic(b, "c", 1)],
                OnnxAttribute.Int("transA", transA ? 1 : 0), OnnxAttribute.Int("transB", transB ? 1 : 0),
                OnnxAttribute.Float("alpha", 0.7f), OnnxAttribute.Float("beta", 1.3f)),
            Feeds(("a", Tensor(19, aShape)), ("bb", Tensor(20, bShape)), ("c", Tensor(21, 5))), ["a", "bb", "c"]);
    }

    [Fact]
    public void ReshapeTransposeUnsqueezeSqueeze()
    {
        Verify(b =>
        {
            var x = Symbolic(b, "x", 2);
            var r = b.Op("Reshape", x, b.Initializer("shape", [3], [2L, 3L, -1L]));
            var t = b.Op("Transpose", [r], OnnxAttribute.Ints("perm", [2, 0, 1]));
            var u = b.Op("Unsqueeze", t, b.Initializer("ax", [1], [1L]));
            return b.Op("Mul", b.Op("Squeeze", u, b.Initializer("ax2", [1], [1L])), b.Initializer("w", [4, 1, 1], Values(4, 22)));
        }, Feeds(("x", Tensor(23, 6, 4))), ["x"]);
    }

    [Fact]
    public void Expand()
    {
        Verify(b => b.Op("Expand", Symbolic(b, "x", 2), b.Initializer("shape", [3], [2L, 3L, 4L])), Feeds(("x", Tensor(24, 3, 1))), ["x"]);
    }

    [Fact]
    public void ConcatAndSlice_RotateHalf()
    {
        // Rotary embeddings' rotate_half: concat(−x[..., d/2:], x[..., :d/2]).
        Verify(b =>
        {
            var x = Symbolic(b, "x", 3);
            var first = b.Op("Slice", x, b.Initializer("s0", [1], [0L]), b.Initializer("e0", [1], [3L]), b.Initializer("a0", [1], [-1L]));
            var second = b.Op("Slice", x, b.Initializer("s1", [1], [3L]), b.Initializer("e1", [1], [long.MaxValue]), b.Initializer("a1", [1], [-1L]));
            return b.Op("Concat", [b.Op("Neg", second), first], OnnxAttribute.Int("axis", -1));
        }, Feeds(("x", Tensor(25, 2, 2, 6))), ["x"]);
    }

    [Fact]
    public void Slice_NegativeStartsTwoAxes_AndConcatOfTwoParameters()
    {
        Verify(b =>
        {
            var x = Symbolic(b, "x", 3);
            var s = b.Op("Slice", x, b.Initializer("s", [2], [-3L, 1L]), b.Initializer("e", [2], [-1L, 3L]), b.Initializer("a", [2], [2L, 0L]));
            return b.Op("Concat", [s, Symbolic(b, "y", 3)], OnnxAttribute.Int("axis", 1));
        }, Feeds(("x", Tensor(26, 4, 2, 5)), ("y", Tensor(27, 2, 3, 2))), ["x", "y"]);
    }

    [Fact]
    public void Split_WithAnUnusedOutput()
    {
        Verify(b =>
        {
            var parts = b.Node("", "Split", [Symbolic(b, "x", 2), b.Initializer("split", [3], [2L, 1L, 3L])], 3, null, OnnxAttribute.Int("axis", 1));
            var first = b.Op("ReduceSum", [parts.Outputs[0], b.Initializer("ax", [1], [1L])]);
            return b.Op("Add", b.Op("Mul", parts.Outputs[2], b.Initializer("w", [3], Values(3, 28))), first);
        }, Feeds(("x", Tensor(29, 3, 6))), ["x"]);
    }

    [Fact]
    public void LayerNormalization()
    {
        Verify(b => b.Op("LayerNormalization", [Symbolic(b, "x", 3), b.Initializer("scale", [5], Values(5, 30)), b.Initializer("bias", [5], Values(5, 31))],
                OnnxAttribute.Int("axis", -1), OnnxAttribute.Float("epsilon", 1e-5f)),
            Feeds(("x", Tensor(32, 2, 3, 5))), ["x"]);
    }

    [Fact]
    public void RmsNormAsExported()
    {
        // x · 1/√(mean(x²) + ε) · w, as torch.onnx exports Llama's RMSNorm.
        Verify(b =>
        {
            var x = Symbolic(b, "x", 3);
            var variance = b.Op("ReduceMean", [b.Op("Pow", x, b.Initializer("two", [], [2f]))], OnnxAttribute.Ints("axes", [-1]), OnnxAttribute.Int("keepdims", 1));
            var inverse = b.Op("Div", b.Initializer("one", [], [1f]), b.Op("Sqrt", b.Op("Add", variance, b.Initializer("eps", [], [1e-6f]))));
            return b.Op("Mul", b.Initializer("w", [4], Values(4, 33)), b.Op("Mul", x, inverse));
        }, Feeds(("x", Tensor(34, 2, 3, 4))), ["x"]);
    }

    [Fact]
    public void ParameterTheLossDoesNotReach_GetsZeros()
    {
        Verify(b =>
        {
            var unused = Symbolic(b, "unused", 1);
            b.Op("Exp", unused);
            return b.Op("Tanh", Symbolic(b, "x", 1));
        }, Feeds(("x", Tensor(35, 3)), ("unused", Tensor(36, 4))), ["x", "unused"]);
    }

    [Fact]
    public void OperatorWithoutRule_IsNamed()
    {
        var graph = new Graph("g");
        var model = new Model(graph);
        model.OpsetImports.Set("", 17);
        var b = new GraphBuilder(graph, model.UniqueName);
        var x = b.Input("x", DataType.Float, 3L);
        var y = b.Node("", "Cos", [x], 1, "the_cosine").Outputs[0];
        var error = Assert.Throws<UnsupportedGradientException>(() => GradientGraphBuilder.Build(model, new GradientRequest([x], [(y, x)])));
        Assert.Contains("Cos node 'the_cosine'", error.Message);
        Assert.Contains("no gradient rule", error.Message);
    }

    [Fact]
    public void OldOpset_IsRefused()
    {
        var graph = new Graph("g");
        var model = new Model(graph);
        model.OpsetImports.Set("", 11);
        var b = new GraphBuilder(graph, model.UniqueName);
        var x = b.Input("x", DataType.Float, 3L);
        var error = Assert.Throws<UnsupportedGradientException>(() => GradientGraphBuilder.Build(model, new GradientRequest([x], [(b.Op("Exp", x), x)])));
        Assert.Contains("opset 11", error.Message);
    }
}
