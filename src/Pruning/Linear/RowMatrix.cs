namespace SparseOnnx.Pruning.Linear;

/// <summary>A dense float32 matrix stored row-major, the layout ONNX Runtime's tensors use.</summary>
public sealed class RowMatrix
{
    /// <summary>A zero matrix.</summary>
    public RowMatrix(int rows, int columns) : this(rows, columns, new float[checked(rows * columns)]) { }

    /// <summary>Wraps <paramref name="data"/> ([rows × columns], row-major) without copying.</summary>
    public RowMatrix(int rows, int columns, float[] data)
    {
        if (data.Length != (long)rows * columns) throw new ArgumentException($"A {rows}×{columns} matrix needs {(long)rows * columns} values, not {data.Length}.");
        Rows = rows;
        Columns = columns;
        Data = data;
    }

    /// <summary>Rows.</summary>
    public int Rows { get; }
    /// <summary>Columns.</summary>
    public int Columns { get; }
    /// <summary>The elements, row-major.</summary>
    public float[] Data { get; }

    /// <summary>Element (row, column).</summary>
    public float this[int row, int column]
    {
        get => Data[row * Columns + column];
        set => Data[row * Columns + column] = value;
    }

    /// <summary>Row <paramref name="row"/> as a span.</summary>
    public Span<float> Row(int row) => Data.AsSpan(row * Columns, Columns);

    /// <summary>A copy in double precision for MathNet.</summary>
    public MathNet.Numerics.LinearAlgebra.Matrix<double> ToMathNet() =>
        MathNet.Numerics.LinearAlgebra.Matrix<double>.Build.Dense(Rows, Columns, (r, c) => Data[r * Columns + c]);

    /// <summary>A float32 row-major copy of a MathNet matrix.</summary>
    public static RowMatrix FromMathNet(MathNet.Numerics.LinearAlgebra.Matrix<double> matrix)
    {
        var result = new RowMatrix(matrix.RowCount, matrix.ColumnCount);
        for (int r = 0; r < matrix.RowCount; r++)
            for (int c = 0; c < matrix.ColumnCount; c++) result.Data[r * matrix.ColumnCount + c] = (float)matrix[r, c];
        return result;
    }
}
