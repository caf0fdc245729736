// Internal entry points of the quantized-weight kernels (quantized_rows.h): the per-instruction-set block
// kernels and the GEMM that takes its B panels from a callback.
#pragma once

#include <functional>

#include "sparseonnx/kernels.h"
#include "sparseonnx/quantized_rows.h"

namespace sparseonnx::detail {

// Columns per task of the decode product: each selected row is read as one contiguous stretch of up to
// this many columns (2752 bytes at 4 bits). Long stretches matter: at [4096, 11008], 1024-column tasks
// (512-byte stretches) measured 1.6× slower at 50% sparsity than 5504-column ones.
constexpr int64_t kQuantTaskColumns = 5504;
// At least this many tasks (column ranges × partitions of K) per product, for the thread pool.
constexpr int64_t kQuantMinTasks = 2;
// Whether no value is Inf or NaN (rows that are go to the float32 path, in decode and prefill).
bool AllFinite(const float* values, size_t count);
// std::thread::hardware_concurrency(), at least 1: what the column ranges are balanced for (ORT's own
// thread count is not visible to a kernel).
int64_t HardwareThreads();

// One block's kept entries of one row of A: indices (ascending, all in `block`), their values and, for
// kInt8, their int8 quantization with its scale.
struct BlockSelection {
  int64_t block = 0;
  const int32_t* indices = nullptr;
  const float* values = nullptr;
  const int8_t* quantized = nullptr;  // kInt8 only
  float activation_scale = 0.f;       // kInt8 only
  size_t count = 0;
};

// y[j] += the block's contribution to column n0 + j, for j < width (n0 and width multiples of 64, within
// the padded columns). Values are finite (other rows go to the scalar kernel in kFloat).
using QuantBlockFn = void (*)(const QuantizedRows& w, QuantAccuracy accuracy, const BlockSelection& s, int64_t n0, int64_t width,
                              float* y);

void QuantBlockScalar(const QuantizedRows& w, QuantAccuracy accuracy, const BlockSelection& s, int64_t n0, int64_t width, float* y);
void QuantBlockAvx2(const QuantizedRows& w, QuantAccuracy accuracy, const BlockSelection& s, int64_t n0, int64_t width,
                    float* y);  // defined only when the build compiles the AVX2 file
QuantBlockFn ActiveQuantBlock();

// Writes B[k0 .. k0 + kc)[n0 .. n0 + width) as float32 into panel[p * nr + j], zero for width <= j < nr.
using PanelSource = std::function<void(int64_t k0, int64_t kc, int64_t n0, int64_t width, int64_t nr, float* panel)>;

// DenseGemm's blocked GEMM for float32 A and B panels from `pack_b`: Y[M, N] = A[M, K] · B.
void PanelGemm(const float* A, int64_t lda, const PanelSource& pack_b, int64_t M, int64_t K, int64_t N, float* Y, int64_t ldy,
               const ParallelFor& parallel_for, ScratchAllocator& scratch);

// W[k0 .. k0 + kc)[n0 .. n0 + width) dequantized into panel[p * nr + j] (zero for width <= j < nr): the
// scalar definition, and the AVX2 one (eight columns at a time, n0 a multiple of 8; the same values).
void DequantizePanel(const QuantizedRows& w, int64_t k0, int64_t kc, int64_t n0, int64_t width, int64_t nr, float* panel);
void DequantizePanelAvx2(const QuantizedRows& w, int64_t k0, int64_t kc, int64_t n0, int64_t width, int64_t nr, float* panel);
using DequantizePanelFn = void (*)(const QuantizedRows& w, int64_t k0, int64_t kc, int64_t n0, int64_t width, int64_t nr, float* panel);
DequantizePanelFn ActiveDequantizePanel();

// The int8 prefill GEMM (kInt8, 4-bit codes): one group of W's rows (group_rows consecutive input channels,
// within one block) against `rows` rows of A quantized to int8. Pairs of W rows are byte-interleaved and
// multiplied by vpmaddubsw as in the decode kernel, but one unpacked pair serves several rows of A.
struct Int8GemmGroup {
  const uint8_t* const* rows = nullptr;  // group_rows pointers to each W row's codes at this tile's first column
  int64_t pairs = 0;                     // pairs of rows (rows past K point at a real row; their activations are 0)
  const int8_t* a = nullptr;             // a[m * lda + 2p], a[m * lda + 2p + 1]: the pair's activations of row m
  int64_t lda = 0;
  const float* activation_scales = nullptr;  // [m * scale_stride]: the block's sa of row m
  int64_t scale_stride = 0;
  const int32_t* activation_sums = nullptr;  // [m * sum_stride]: sum of the group's int8 activations of row m
  int64_t sum_stride = 0;
  const float* scales = nullptr;  // the block's weight scales for the tile's columns, float32
  const float* zeros = nullptr;   // the block's zero points for the tile's columns, or null (symmetric: 8)
};

// C[m][j] += the group's contribution for m < rows, j < width (width a multiple of 64, rows <= kInt8GemmRows):
//   C[m][j] += (sa_m * s[j]) * (sum over the group of a q - z[j] * asum_m), the integer part exact.
// Symmetric groups may hold up to 32 rows (the sum of a * (q - 8) fits int16); with zero points, 16.
constexpr int64_t kInt8GemmRows = 3;
using Int8GemmFn = void (*)(const Int8GemmGroup& g, int64_t rows, int64_t width, float* C, int64_t ldc);
void Int8GemmScalar(const Int8GemmGroup& g, int64_t rows, int64_t width, float* C, int64_t ldc);
void Int8GemmAvx2(const Int8GemmGroup& g, int64_t rows, int64_t width, float* C, int64_t ldc);
Int8GemmFn ActiveInt8Gemm();

// QuantizedDenseProduct for kInt8 and 4-bit codes (quantized_int8_gemm.cc).
void Int8DenseProduct(const QuantizedRows& w, const float* A, int64_t M, const float* bias, float* Y, const ParallelFor& parallel_for,
                      ScratchAllocator& scratch);

}  // namespace sparseonnx::detail
