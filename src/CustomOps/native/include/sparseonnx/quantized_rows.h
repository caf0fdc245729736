// SparseOnnx kernel core, quantized weights: TopKSparseMatMulNBits as plain functions.
//
// The weight is stored by input row, so that a dropped entry of A costs neither its row's bytes nor its
// row's work (docs/topk-sparse-matmul-nbits.md). Nothing here includes ONNX Runtime headers; the native
// tests call these functions against a naive dequantize-then-multiply reference.
#pragma once

#include <cstddef>
#include <cstdint>

#include "sparseonnx/kernels.h"

namespace sparseonnx {

// Columns per chunk of a stored row: rows are padded to a multiple of it.
constexpr int64_t kQuantChunkColumns = 64;

// A [K, N] weight of `bits`-bit codes q with float scales s and zero points z, quantized in blocks of
// block_size consecutive rows (input channels) per column, as ONNX Runtime's MatMulNBits quantizes:
//   W[k][n] = s[k / block_size][n] * (q[k][n] - z[k / block_size][n])
// codes: [K][row_bytes], row_bytes = padded_n * bits / 8 with padded_n = N rounded up to 64. Each row is
//   chunks of 64 columns. 8 bits: byte j of a chunk is its column j. 4 bits: a chunk is 32 bytes; byte b
//   holds column PermutedColumn(b) in its low nibble and column 32 + PermutedColumn(b) in its high nibble,
//   where PermutedColumn swaps the second and third groups of 8 (so that the AVX2 byte interleave of two
//   rows yields columns in order). Columns past N are 0.
// scales: [ceil(K / block_size)][padded_n], float32 or float16 (float16_scales), columns past N 0.
// zero_points: the same shape, float32, or null (z = 2^(bits-1), symmetric).
struct QuantizedRows {
  int bits = 4;             // 4 or 8
  int64_t K = 0, N = 0;
  int64_t block_size = 32;  // a power of two, at least 16
  const uint8_t* codes = nullptr;
  const void* scales = nullptr;
  bool float16_scales = false;  // float16 scales read half the bytes; a dropped row cannot skip its block's scales
  const float* zero_points = nullptr;
};

// Scale number `index` of the scales array, as float.
float QuantScale(const QuantizedRows& w, size_t index);

// How the product treats A (ONNX Runtime's MatMulNBits accuracy_level, the two it implements on CPU for
// these weights):
//   kFloat (level 0): Y = (A ⊙ mask) · W in float32, W dequantized exactly.
//   kInt8 (level 4): each block of block_size entries of A ⊙ mask is quantized to int8 with its own scale
//     (absmax / 127, round to nearest even), summed against the codes in integers, then scaled:
//       Y[n] = sum over blocks b, ascending, of fma(sa_b * s[b][n], isum_b[n] - z[b][n] * asum_b, ...)
//     with isum_b[n] = sum a_int q and asum_b = sum a_int (both exact).
enum class QuantAccuracy : uint8_t { kFloat = 0, kInt8 = 4 };

int64_t QuantPaddedColumns(int64_t N);
int64_t QuantRowBytes(int bits, int64_t N);
size_t QuantCodesBytes(int bits, int64_t K, int64_t N);
size_t QuantScaleCount(int64_t K, int64_t N, int64_t block_size);
// Null when the layout's parameters are valid, else what is wrong with them.
const char* QuantLayoutProblem(int bits, int64_t K, int64_t N, int64_t block_size);

// Where column j (< 32) of a 4-bit chunk half lives: byte PermutedColumn(j) (an involution).
constexpr int64_t PermutedColumn(int64_t j) {
  return (j / 8 == 1 ? 2 : j / 8 == 2 ? 1 : j / 8) * 8 + j % 8;
}

// The code and the dequantized value of W[k][n] (the reference every kernel is held to).
int QuantCode(const QuantizedRows& w, int64_t k, int64_t n);
float QuantWeight(const QuantizedRows& w, int64_t k, int64_t n);

// The int8 quantization of one block of kept values (kInt8): a_int[i] = round(values[i] * 127 / absmax),
// returns the scale absmax / 127 (0 for an all-zero block).
float QuantizeActivations(const float* values, size_t count, int8_t* a_int);

// The decode product for M rows of A whose selections are given (SelectRow's output):
//   Y[m][n] = sum over r < counts[m] of values[m * K + r] * W[indices[m * K + r]][n]   (+ bias[n])
// under `accuracy`, indices ascending per row. Reads only the selected rows of W, each as one contiguous
// stretch per task of columns. Parallel over column ranges; the result does not depend on the thread count.
// A row whose kept values include Inf or NaN is multiplied weight by weight in float32 (kFloat semantics),
// so Inf times a zero weight gives NaN exactly as the reference.
void QuantizedSelectedProduct(const QuantizedRows& w, QuantAccuracy accuracy, int64_t M, const int32_t* indices,
                              const float* values, const size_t* counts, const float* bias, float* Y,
                              const ParallelFor& parallel_for, ScratchAllocator& scratch);

// The prefill product Y[M, N] = A[M, K] · W (+ bias), A float32 (already masked).
//   kInt8, 4-bit codes: the decode product's arithmetic on every entry of each row (the same int8
//     quantization per block, the same exact integer sums), in an integer GEMM; rows with Inf or NaN in
//     float32, as in decode.
//   kFloat, or 8-bit codes: float32, the packed GEMM of DenseGemm with W dequantized into its panels.
void QuantizedDenseProduct(const QuantizedRows& w, QuantAccuracy accuracy, const float* A, int64_t M, const float* bias, float* Y,
                           const ParallelFor& parallel_for, ScratchAllocator& scratch);

}  // namespace sparseonnx
