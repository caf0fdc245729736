using Microsoft.ML.OnnxRuntime;
using SparseOnnx.GraphRewriter.Autodiff;
using SparseOnnx.GraphRewriter.Tests.TestUtil;

namespace SparseOnnx.GraphRewriter.Tests.Autodiff;

/// <summary>
/// Checks a backward graph against central finite differences through ONNX Runtime. The loss is
/// L = Σ sin(y) over the checked output y, so its seed dL/dy = cos(y) needs no shapes and every element of y
/// weighs differently (a plain sum would hide transposed or misplaced gradients).
/// </summary>
internal static class GradientCheck
{
    /// <summary>
    /// Builds a model with <paramref name="build"/> (float32 parameters as graph inputs, returns y), appends the
    /// backward graph, and compares every gradient element with (L(p + h) − L(p − h)) / 2h.
    /// </summary>
    public static void Verify(Func<GraphBuilder, Value> build, IReadOnlyDictionary<string, (long[] Shape, float[] Values)> feeds,
        IReadOnlyList<string> parameters, float step = 1e-2f, float tolerance = 2e-2f)
    {
        var graph = new Graph("check");
        var model = new Model(graph) { IrVersion = 8 };
        model.OpsetImports.Set("", 17);
        var builder = new GraphBuilder(graph, model.UniqueName);
        var y = build(builder);
        var loss = builder.Op("ReduceSum", [builder.Op("Sin", y)], OnnxAttribute.Int("keepdims", 0));
        builder.Output(loss, DataType.Float);
        var parameterValues = parameters.Select(n => graph.Inputs.First(i => i.Name == n)).ToArray();
        var gradients = GradientGraphBuilder.Build(model, new GradientRequest(parameterValues, [(y, builder.Op("Cos", y))]));
        foreach (var p in parameterValues)
            builder.Output(gradients[p], DataType.Float, p.Shape!.Dims.Select(d => d.Value is { } n ? (object)n : d.Symbol!).ToArray());

        using var folder = new TempDirectory();
        string path = folder.File("check.onnx");
        ModelSaver.Save(model, path);
        using var options = new SessionOptions { GraphOptimizationLevel = GraphOptimizationLevel.ORT_DISABLE_ALL };
        using var session = new InferenceSession(path, options);
        var outputNames = new[] { loss.Name }.Concat(parameterValues.Select(p => gradients[p].Name)).ToArray();

        float[][] Run(Dictionary<string, float[]> values)
        {
            var inputs = feeds.Select(f => OrtValue.CreateTensorValueFromMemory(values[f.Key], f.Value.Shape)).ToList();
            try
            {
                using var results = session.Run(new RunOptions(), feeds.Keys.ToArray(), inputs, outputNames);
                return results.Select(r => r.GetTensorDataAsSpan<float>().ToArray()).ToArray();
            }
            finally
            {
                foreach (var v in inputs) v.Dispose();
            }
        }

        var current = feeds.ToDictionary(f => f.Key, f => (float[])f.Value.Values.Clone());
        var analytic = Run(current);
        for (int pi = 0; pi < parameterValues.Length; pi++)
        {
            var name = parameterValues[pi].Name;
            var gradient = analytic[1 + pi];
            Assert.Equal(feeds[name].Values.Length, gradient.Length);
            float scale = Math.Max(1f, gradient.Max(MathF.Abs));
            for (int i = 0; i < gradient.Length; i++)
            {
                float original = current[name][i];
                current[name][i] = original + step;
                float up = Run(current)[0][0];
                current[name][i] = original - step;
                float down = Run(current)[0][0];
                current[name][i] = original;
                float numeric = (up - down) / (2 * step);
                Assert.True(MathF.Abs(numeric - gradient[i]) <= tolerance * scale,
                    $"d loss / d {name}[{i}]: backward graph {gradient[i]}, finite differences {numeric} (tolerance {tolerance * scale})");
            }
        }
    }

    /// <summary>Seeded values in ±[0.2, 1.2], away from 0 so kinks (|x|, ReLU) are not straddled by the step.</summary>
    public static float[] Values(int count, int seed, bool positive = false)
    {
        var random = new Random(seed);
        return Enumerable.Range(0, count).Select(_ =>
        {
            float magnitude = 0.2f + (float)random.NextDouble();
            return positive || random.Next(2) == 0 ? magnitude : -magnitude;
        }).ToArray();
    }

    public static (long[], float[]) Tensor(int seed, params long[] shape) => (shape, Values((int)shape.Aggregate(1L, (a, b) => a * b), seed));

    public static (long[], float[]) PositiveTensor(int seed, params long[] shape) => (shape, Values((int)shape.Aggregate(1L, (a, b) => a * b), seed, positive: true));
}
