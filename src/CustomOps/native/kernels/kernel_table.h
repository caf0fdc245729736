// Per-instruction-set entry points of the inner kernels; dispatch.cc picks one table at load.
#pragma once

#include "sparseonnx/kernels.h"

namespace sparseonnx::detail {

using AccumulateRowsFn = void (*)(const float* coef, const int32_t* rows, size_t count, const void* B,
                                  ElementType type, int64_t ldb, int64_t n0, int64_t n, float* y);
using StoreFloatsFn = void (*)(const float* src, int64_t n, ElementType type, void* dst);

// The GEMM micro-kernel: C[i, j] (+)= sum over p < kc of a[p * mr + i] * b[p * nr + j] for i < m, j < n, with
// a and b packed float32 panels of the table's mr rows and nr columns (zero-padded). accumulate = false
// starts C from zero. Per element the FMAs run in p order.
using GemmMicroKernelFn = void (*)(const float* a, const float* b, int64_t kc, float* c, int64_t ldc, int64_t m, int64_t n,
                                   bool accumulate);

// Packs a panel of B for the GEMM micro-kernel: panel[p * nr + j] = float(B[p * ldb + j]) for p < kc,
// j < width, and 0 for width <= j < nr (exact conversion; NaN made quiet as F16C does).
using PackBPanelFn = void (*)(const void* B, ElementType type, int64_t ldb, int64_t kc, int64_t width, float* panel);

struct KernelTable {
  AccumulateRowsFn accumulate_rows;
  StoreFloatsFn store_floats;
  GemmMicroKernelFn gemm_micro_kernel;
  int64_t gemm_mr;  // rows of A per micro-kernel
  int64_t gemm_nr;  // columns of B per micro-kernel
  PackBPanelFn pack_b_panel;
};

const KernelTable& ActiveKernels();

const KernelTable& ScalarKernels();
const KernelTable& Avx2Kernels();    // defined only when the build compiles the AVX2 file
const KernelTable& Avx512Kernels();  // defined only when the build compiles the AVX-512 file

}  // namespace sparseonnx::detail
