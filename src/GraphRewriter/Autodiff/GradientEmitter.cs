using SparseOnnx.GraphRewriter.Analysis.Projections;
using SparseOnnx.GraphRewriter.Ir;

namespace SparseOnnx.GraphRewriter.Autodiff;

/// <summary>
/// What a gradient rule builds with: standard-domain nodes appended to the graph, named through the model,
/// constants as initializers, and the shape-driven helpers most rules need. Every helper works on runtime
/// shapes, so gradients hold for any batch and sequence length and the rules need no shape inference.
/// The nodes it emits exist in ONNX opset 13 and every later opset up to the model's.
/// </summary>
public sealed class GradientEmitter
{
    private readonly Model _model;
    private readonly GraphBuilder _builder;
    private readonly Dictionary<Value, Value> _shapes = new();
    private readonly Dictionary<float, Value> _floatConstants = new();
    private readonly Dictionary<string, Value> _intConstants = new();

    internal GradientEmitter(Model model, string prefix, long opset)
    {
        _model = model;
        Opset = opset;
        Prefix = prefix;
        _builder = new GraphBuilder(model.Graph, hint => model.UniqueName(prefix + hint));
    }

    /// <summary>Name prefix of everything the backward graph adds.</summary>
    public string Prefix { get; }

    /// <summary>The model's ONNX opset, which the emitted nodes follow.</summary>
    public long Opset { get; }

    /// <summary>Appends <c>opType(inputs)</c> and returns its output.</summary>
    public Value Op(string opType, params Value?[] inputs) => _builder.Op(opType, inputs);

    /// <summary>Appends <c>opType(inputs)</c> with attributes and returns its output.</summary>
    public Value Op(string opType, Value?[] inputs, params OnnxAttribute[] attributes) => _builder.Op(opType, inputs, attributes);

    /// <summary>ReduceMean over <paramref name="axes"/> keeping them: axes as an attribute before opset 18, an input from 18.</summary>
    public Value ReduceMean(Value value, long[] axes) => Opset >= 18
        ? Op("ReduceMean", [value, Ints(axes)], OnnxAttribute.Int("keepdims", 1))
        : Op("ReduceMean", [value], OnnxAttribute.Ints("axes", axes), OnnxAttribute.Int("keepdims", 1));

    /// <summary>A float32 scalar constant.</summary>
    public Value Scalar(float value)
    {
        if (_floatConstants.TryGetValue(value, out var existing)) return existing;
        var constant = _builder.Initializer(_model.UniqueName(Prefix + "const"), [], [value]);
        _floatConstants[value] = constant;
        return constant;
    }

    /// <summary>A 1-D int64 constant.</summary>
    public Value Ints(params long[] values)
    {
        string key = string.Join(",", values);
        if (_intConstants.TryGetValue(key, out var existing)) return existing;
        var constant = _builder.Initializer(_model.UniqueName(Prefix + "ints"), [values.Length], values);
        _intConstants[key] = constant;
        return constant;
    }

    /// <summary>An int64 scalar constant.</summary>
    public Value IntScalar(long value)
    {
        string key = "scalar:" + value;
        if (_intConstants.TryGetValue(key, out var existing)) return existing;
        var constant = _builder.Graph.Initializers.Add(Tensor.FromElements<long>(_model.UniqueName(Prefix + "int"), DataType.Int64, [], [value]));
        _intConstants[key] = constant;
        return constant;
    }

    /// <summary>Shape(value), emitted once per value.</summary>
    public Value ShapeOf(Value value)
    {
        if (!_shapes.TryGetValue(value, out var shape)) _shapes[value] = shape = Op("Shape", value);
        return shape;
    }

    /// <summary>A float32 tensor of zeros shaped like <paramref name="value"/>.</summary>
    public Value ZerosLike(Value value) => Op("ConstantOfShape", [ShapeOf(value)],
        OnnxAttribute.FromTensor("value", Tensor.FromElements<float>("zero", DataType.Float, [1], [0f])));

    /// <summary>
    /// The gradient of a broadcast operand: <paramref name="gradient"/> has the broadcast result's shape; it is
    /// summed over the axes <paramref name="operand"/> was broadcast along (leading axes it lacks, and axes
    /// where it has 1 and the result does not), then reshaped to the operand's shape. With numpy broadcasting
    /// these axes are where the operand's shape, padded with leading 1s, differs from the result's.
    /// Skipped when both shapes are declared and equal.
    /// </summary>
    public Value Unbroadcast(Value gradient, Value operand)
    {
        if (operand.Shape is { IsFullyKnown: true } known && gradient.Shape is { } result && known.Equals(result)) return gradient;
        if (operand.Shape is { Rank: 0 }) return Op("ReduceSum", [gradient], OnnxAttribute.Int("keepdims", 0));
        var operandShape = ShapeOf(operand);
        var resultShape = Op("Shape", gradient);
        var missing = Op("Sub", Op("Shape", resultShape), Op("Shape", operandShape));
        var ones = Op("ConstantOfShape", [missing], OnnxAttribute.FromTensor("value", Tensor.FromElements<long>("one", DataType.Int64, [1], [1L])));
        var padded = Op("Concat", [ones, operandShape], OnnxAttribute.Int("axis", 0));
        var axes = Op("Reshape", Op("NonZero", Op("Not", Op("Equal", padded, resultShape))), Ints(-1));
        var summed = Op("ReduceSum", [gradient, axes], OnnxAttribute.Int("keepdims", 1), OnnxAttribute.Int("noop_with_empty_axes", 1));
        return Op("Reshape", summed, operandShape);
    }

    /// <summary>Reshapes <paramref name="gradient"/> to the runtime shape of <paramref name="like"/>.</summary>
    public Value ReshapeLike(Value gradient, Value like) => Op("Reshape", gradient, ShapeOf(like));

    /// <summary>The constant tensor behind <paramref name="value"/> (initializer or Constant node), or null.</summary>
    public static Tensor? Constant(Value? value) => value is null ? null : ProjectionFinder.ConstantTensor(value);

    /// <summary>The int64 values of a constant 1-D tensor (int32 or int64), or null when it is not constant.</summary>
    public static long[]? ConstantInts(Value? value)
    {
        if (Constant(value) is not { } tensor) return null;
        using var lease = tensor.Data.Acquire();
        return tensor.DataType switch
        {
            DataType.Int64 => lease.AsSpan<long>().ToArray(),
            DataType.Int32 => lease.AsSpan<int>().ToArray().Select(v => (long)v).ToArray(),
            _ => null,
        };
    }

    /// <summary>The float values of a constant float32 tensor, or null.</summary>
    public static float[]? ConstantFloats(Value? value)
    {
        if (Constant(value) is not { DataType: DataType.Float } tensor) return null;
        using var lease = tensor.Data.Acquire();
        return lease.AsSpan<float>().ToArray();
    }
}
