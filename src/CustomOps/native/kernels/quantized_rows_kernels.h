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

}  // namespace sparseonnx::detail
