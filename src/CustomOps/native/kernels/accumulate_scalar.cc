// Portable inner kernels. They define the arithmetic every SIMD version reproduces bit for bit: for each
// output element, one fused multiply-add per selected row, in row order.
#include <cmath>
#include <cstring>

#include "element_convert.h"
#include "kernel_table.h"

namespace sparseonnx::detail {
namespace {

template <typename Load>
void AccumulateTyped(const float* coef, const int32_t* rows, size_t count, int64_t ldb, int64_t n0, int64_t n,
                     float* y, Load load) {
  for (size_t r = 0; r < count; ++r) {
    const int64_t base = static_cast<int64_t>(rows[r]) * ldb + n0;
    const float c = coef[r];
    for (int64_t j = 0; j < n; ++j) y[j] = std::fma(c, load(base + j), y[j]);
  }
}

void AccumulateRowsScalar(const float* coef, const int32_t* rows, size_t count, const void* B, ElementType type,
                          int64_t ldb, int64_t n0, int64_t n, float* y) {
  switch (type) {
    case ElementType::kFloat32: {
      const auto* b = static_cast<const float*>(B);
      AccumulateTyped(coef, rows, count, ldb, n0, n, y, [b](int64_t i) { return b[i]; });
      break;
    }
    case ElementType::kFloat16: {
      const auto* b = static_cast<const uint16_t*>(B);
      AccumulateTyped(coef, rows, count, ldb, n0, n, y, [b](int64_t i) { return Float16ToFloat(b[i]); });
      break;
    }
    case ElementType::kBFloat16: {
      const auto* b = static_cast<const uint16_t*>(B);
      AccumulateTyped(coef, rows, count, ldb, n0, n, y, [b](int64_t i) { return BFloat16ToFloat(b[i]); });
      break;
    }
  }
}

void StoreFloatsScalar(const float* src, int64_t n, ElementType type, void* dst) {
  switch (type) {
    case ElementType::kFloat32:
      std::memcpy(dst, src, static_cast<size_t>(n) * sizeof(float));
      break;
    case ElementType::kFloat16:
      for (int64_t j = 0; j < n; ++j) static_cast<uint16_t*>(dst)[j] = FloatToFloat16(src[j]);
      break;
    case ElementType::kBFloat16:
      for (int64_t j = 0; j < n; ++j) static_cast<uint16_t*>(dst)[j] = FloatToBFloat16(src[j]);
      break;
  }
}

void PackBPanelScalar(const void* B, ElementType type, int64_t ldb, int64_t kc, int64_t width, float* panel) {
  constexpr int64_t nr = 16;
  for (int64_t p = 0; p < kc; ++p) {
    for (int64_t j = 0; j < width; ++j) {
      switch (type) {
        case ElementType::kFloat32: panel[p * nr + j] = static_cast<const float*>(B)[p * ldb + j]; break;
        case ElementType::kFloat16: panel[p * nr + j] = Float16ToFloat(static_cast<const uint16_t*>(B)[p * ldb + j]); break;
        case ElementType::kBFloat16: panel[p * nr + j] = BFloat16ToFloat(static_cast<const uint16_t*>(B)[p * ldb + j]); break;
      }
    }
    for (int64_t j = width; j < nr; ++j) panel[p * nr + j] = 0.f;
  }
}

constexpr int64_t kScalarMr = 4, kScalarNr = 16;

void GemmMicroKernelScalar(const float* a, const float* b, int64_t kc, float* c, int64_t ldc, int64_t m, int64_t n, bool accumulate) {
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) {
      // The block's products are summed from zero, then added to C: every instruction set does the same.
      float v = 0.f;
      for (int64_t p = 0; p < kc; ++p) v = std::fma(a[p * kScalarMr + i], b[p * kScalarNr + j], v);
      c[i * ldc + j] = accumulate ? c[i * ldc + j] + v : v;
    }
}

}  // namespace

const KernelTable& ScalarKernels() {
  static const KernelTable table{AccumulateRowsScalar, StoreFloatsScalar, GemmMicroKernelScalar,
                                 kScalarMr, kScalarNr, PackBPanelScalar};
  return table;
}

}  // namespace sparseonnx::detail
