// Per-instruction-set entry points of the inner kernels; dispatch.cc picks one table at load.
#pragma once

#include "sparseonnx/kernels.h"

namespace sparseonnx::detail {

using AccumulateRowsFn = void (*)(const float* coef, const int32_t* rows, size_t count, const void* B,
                                  ElementType type, int64_t ldb, int64_t n0, int64_t n, float* y);
using AccumulateRowsMultiFn = void (*)(const float* coef, int64_t ldc, int64_t m, const int32_t* rows, size_t count,
                                       const void* B, ElementType type, int64_t ldb, int64_t n0, int64_t n, float* y,
                                       int64_t ldy);
using StoreFloatsFn = void (*)(const float* src, int64_t n, ElementType type, void* dst);

// Rows of A one AccumulateRowsMulti call handles at most (its register tile).
constexpr int64_t kMultiRowsMax = 8;

struct KernelTable {
  AccumulateRowsFn accumulate_rows;
  AccumulateRowsMultiFn accumulate_rows_multi;
  StoreFloatsFn store_floats;
};

const KernelTable& ScalarKernels();
const KernelTable& Avx2Kernels();    // defined only when the build compiles the AVX2 file
const KernelTable& Avx512Kernels();  // defined only when the build compiles the AVX-512 file

}  // namespace sparseonnx::detail
