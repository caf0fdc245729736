// AVX-512 (F, BW, VL) inner kernels (compiled with -mavx512f -mavx512bw -mavx512vl -mfma -mf16c; called
// only on CPUs that have them). Same structure and arithmetic as the AVX2 file with 16-wide vectors; the
// column tail uses masked loads and stores, which keep the per-element FMA order unchanged.
#include <immintrin.h>

#include <cmath>

#include "element_convert.h"
#include "kernel_table.h"

namespace sparseonnx::detail {
namespace {

inline __mmask16 TailMask(int64_t remaining) {
  return remaining >= 16 ? static_cast<__mmask16>(0xFFFF) : static_cast<__mmask16>((1u << remaining) - 1u);
}

inline __m512 Load16(const float* p, __mmask16 mask) { return _mm512_maskz_loadu_ps(mask, p); }
inline __m512 Load16(const uint16_t* p, __mmask16 mask, ElementType type) {
  const __m256i h = _mm256_maskz_loadu_epi16(mask, p);
  if (type == ElementType::kFloat16) return _mm512_cvtph_ps(h);
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));  // bfloat16: upper half
}

template <typename T, typename LoadVec>
void Accumulate(const float* coef, const int32_t* rows, size_t count, const T* B, int64_t ldb, int64_t n0,
                int64_t n, float* y, LoadVec load) {
  const __mmask16 full = 0xFFFF;
  size_t r = 0;
  for (; r + 4 <= count; r += 4) {
    const T* b0 = B + static_cast<int64_t>(rows[r]) * ldb + n0;
    const T* b1 = B + static_cast<int64_t>(rows[r + 1]) * ldb + n0;
    const T* b2 = B + static_cast<int64_t>(rows[r + 2]) * ldb + n0;
    const T* b3 = B + static_cast<int64_t>(rows[r + 3]) * ldb + n0;
    const __m512 c0 = _mm512_set1_ps(coef[r]), c1 = _mm512_set1_ps(coef[r + 1]);
    const __m512 c2 = _mm512_set1_ps(coef[r + 2]), c3 = _mm512_set1_ps(coef[r + 3]);
    int64_t j = 0;
    for (; j + 32 <= n; j += 32) {
      __m512 y0 = _mm512_loadu_ps(y + j), y1 = _mm512_loadu_ps(y + j + 16);
      y0 = _mm512_fmadd_ps(c0, load(b0 + j, full), y0);
      y1 = _mm512_fmadd_ps(c0, load(b0 + j + 16, full), y1);
      y0 = _mm512_fmadd_ps(c1, load(b1 + j, full), y0);
      y1 = _mm512_fmadd_ps(c1, load(b1 + j + 16, full), y1);
      y0 = _mm512_fmadd_ps(c2, load(b2 + j, full), y0);
      y1 = _mm512_fmadd_ps(c2, load(b2 + j + 16, full), y1);
      y0 = _mm512_fmadd_ps(c3, load(b3 + j, full), y0);
      y1 = _mm512_fmadd_ps(c3, load(b3 + j + 16, full), y1);
      _mm512_storeu_ps(y + j, y0);
      _mm512_storeu_ps(y + j + 16, y1);
    }
    for (; j < n; j += 16) {
      const __mmask16 mask = TailMask(n - j);
      __m512 y0 = _mm512_maskz_loadu_ps(mask, y + j);
      y0 = _mm512_fmadd_ps(c0, load(b0 + j, mask), y0);
      y0 = _mm512_fmadd_ps(c1, load(b1 + j, mask), y0);
      y0 = _mm512_fmadd_ps(c2, load(b2 + j, mask), y0);
      y0 = _mm512_fmadd_ps(c3, load(b3 + j, mask), y0);
      _mm512_mask_storeu_ps(y + j, mask, y0);
    }
  }
  for (; r < count; ++r) {
    const T* b0 = B + static_cast<int64_t>(rows[r]) * ldb + n0;
    const __m512 c0 = _mm512_set1_ps(coef[r]);
    for (int64_t j = 0; j < n; j += 16) {
      const __mmask16 mask = TailMask(n - j);
      _mm512_mask_storeu_ps(y + j, mask, _mm512_fmadd_ps(c0, load(b0 + j, mask), _mm512_maskz_loadu_ps(mask, y + j)));
    }
  }
}

void AccumulateRowsAvx512(const float* coef, const int32_t* rows, size_t count, const void* B, ElementType type,
                          int64_t ldb, int64_t n0, int64_t n, float* y) {
  if (type == ElementType::kFloat32) {
    Accumulate(coef, rows, count, static_cast<const float*>(B), ldb, n0, n, y,
               [](const float* p, __mmask16 m) { return Load16(p, m); });
  } else {
    Accumulate(coef, rows, count, static_cast<const uint16_t*>(B), ldb, n0, n, y,
               [type](const uint16_t* p, __mmask16 m) { return Load16(p, m, type); });
  }
}

void StoreFloatsAvx512(const float* src, int64_t n, ElementType type, void* dst) {
  if (type != ElementType::kFloat16) {
    ScalarKernels().store_floats(src, n, type, dst);
    return;
  }
  auto* out = static_cast<uint16_t*>(dst);
  for (int64_t j = 0; j < n; j += 16) {
    const __mmask16 mask = TailMask(n - j);
    const __m256i h = _mm512_cvtps_ph(_mm512_maskz_loadu_ps(mask, src + j), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    _mm256_mask_storeu_epi16(out + j, mask, h);
  }
}

void PackBPanelAvx512(const void* B, ElementType type, int64_t ldb, int64_t kc, int64_t width, float* panel) {
  constexpr int64_t nr = 32;
  const __mmask16 m0 = TailMask(width), m1 = width > 16 ? TailMask(width - 16) : static_cast<__mmask16>(0);
  for (int64_t p = 0; p < kc; ++p) {
    float* dst = panel + p * nr;
    if (type == ElementType::kFloat32) {
      const float* src = static_cast<const float*>(B) + p * ldb;
      _mm512_storeu_ps(dst, Load16(src, m0));
      _mm512_storeu_ps(dst + 16, Load16(src + 16, m1));
    } else {
      const uint16_t* src = static_cast<const uint16_t*>(B) + p * ldb;
      _mm512_storeu_ps(dst, Load16(src, m0, type));
      _mm512_storeu_ps(dst + 16, Load16(src + 16, m1, type));
    }
  }
}

// GEMM micro-kernel, 8 rows x 32 columns: 16 accumulators, two loads of B and eight broadcasts of A per step
// (A is packed so the eight values of a step share a cache line). The block's products are summed from
// zero, then added to C, as in the scalar kernel; partial tiles use masks.
constexpr int64_t kAvx512Mr = 8, kAvx512Nr = 32;

void GemmMicroKernelAvx512(const float* a, const float* b, int64_t kc, float* c, int64_t ldc, int64_t m, int64_t n, bool accumulate) {
  __m512 acc0[kAvx512Mr], acc1[kAvx512Mr];
  for (int i = 0; i < kAvx512Mr; ++i) acc0[i] = acc1[i] = _mm512_setzero_ps();
  for (int64_t p = 0; p < kc; ++p) {
    const __m512 b0 = _mm512_loadu_ps(b + p * kAvx512Nr), b1 = _mm512_loadu_ps(b + p * kAvx512Nr + 16);
    const float* ap = a + p * kAvx512Mr;
    for (int i = 0; i < kAvx512Mr; ++i) {
      const __m512 ai = _mm512_set1_ps(ap[i]);
      acc0[i] = _mm512_fmadd_ps(ai, b0, acc0[i]);
      acc1[i] = _mm512_fmadd_ps(ai, b1, acc1[i]);
    }
  }
  const __mmask16 m0 = TailMask(n), m1 = n > 16 ? TailMask(n - 16) : static_cast<__mmask16>(0);
  for (int64_t i = 0; i < m; ++i) {
    float* ci = c + i * ldc;
    __m512 v0 = acc0[i], v1 = acc1[i];
    if (accumulate) {
      v0 = _mm512_add_ps(_mm512_maskz_loadu_ps(m0, ci), v0);
      v1 = _mm512_add_ps(_mm512_maskz_loadu_ps(m1, ci + 16), v1);
    }
    _mm512_mask_storeu_ps(ci, m0, v0);
    _mm512_mask_storeu_ps(ci + 16, m1, v1);
  }
}

}  // namespace

const KernelTable& Avx512Kernels() {
  static const KernelTable table{AccumulateRowsAvx512, StoreFloatsAvx512, GemmMicroKernelAvx512,
                                 kAvx512Mr, kAvx512Nr, PackBPanelAvx512};
  return table;
}

}  // namespace sparseonnx::detail
