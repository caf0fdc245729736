// AVX2 + FMA + F16C inner kernels (compiled with -mavx2 -mfma -mf16c; called only on CPUs that have them).
//
// Rows are taken four at a time so each pass over y (load, four FMAs, store) reads four rows of B: y
// traffic is a quarter of a row-at-a-time loop, and the four row streams keep the memory system busy.
// Two vectors per iteration give two independent FMA chains. Per element the order is still row order,
// so results equal the scalar kernel bit for bit; the column tail uses the scalar formula.
#include <immintrin.h>

#include <cmath>
#include <cstring>

#include "element_convert.h"
#include "kernel_table.h"

namespace sparseonnx::detail {
namespace {

// Loads 8 consecutive elements of B as floats.
inline __m256 Load8(const float* p) { return _mm256_loadu_ps(p); }
inline __m256 Load8(const uint16_t* p, ElementType type) {
  const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
  if (type == ElementType::kFloat16) return _mm256_cvtph_ps(h);
  return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));  // bfloat16: upper half
}

inline float ScalarLoad(const float* p) { return *p; }
inline float ScalarLoad(const uint16_t* p, ElementType type) {
  return type == ElementType::kFloat16 ? Float16ToFloat(*p) : BFloat16ToFloat(*p);
}

template <typename T, typename LoadVec, typename LoadOne>
void Accumulate(const float* coef, const int32_t* rows, size_t count, const T* B, int64_t ldb, int64_t n0,
                int64_t n, float* y, LoadVec load_vec, LoadOne load_one) {
  size_t r = 0;
  for (; r + 4 <= count; r += 4) {
    const T* b0 = B + static_cast<int64_t>(rows[r]) * ldb + n0;
    const T* b1 = B + static_cast<int64_t>(rows[r + 1]) * ldb + n0;
    const T* b2 = B + static_cast<int64_t>(rows[r + 2]) * ldb + n0;
    const T* b3 = B + static_cast<int64_t>(rows[r + 3]) * ldb + n0;
    const __m256 c0 = _mm256_set1_ps(coef[r]), c1 = _mm256_set1_ps(coef[r + 1]);
    const __m256 c2 = _mm256_set1_ps(coef[r + 2]), c3 = _mm256_set1_ps(coef[r + 3]);
    int64_t j = 0;
    for (; j + 16 <= n; j += 16) {
      __m256 y0 = _mm256_loadu_ps(y + j), y1 = _mm256_loadu_ps(y + j + 8);
      y0 = _mm256_fmadd_ps(c0, load_vec(b0 + j), y0);
      y1 = _mm256_fmadd_ps(c0, load_vec(b0 + j + 8), y1);
      y0 = _mm256_fmadd_ps(c1, load_vec(b1 + j), y0);
      y1 = _mm256_fmadd_ps(c1, load_vec(b1 + j + 8), y1);
      y0 = _mm256_fmadd_ps(c2, load_vec(b2 + j), y0);
      y1 = _mm256_fmadd_ps(c2, load_vec(b2 + j + 8), y1);
      y0 = _mm256_fmadd_ps(c3, load_vec(b3 + j), y0);
      y1 = _mm256_fmadd_ps(c3, load_vec(b3 + j + 8), y1);
      _mm256_storeu_ps(y + j, y0);
      _mm256_storeu_ps(y + j + 8, y1);
    }
    for (; j + 8 <= n; j += 8) {
      __m256 y0 = _mm256_loadu_ps(y + j);
      y0 = _mm256_fmadd_ps(c0, load_vec(b0 + j), y0);
      y0 = _mm256_fmadd_ps(c1, load_vec(b1 + j), y0);
      y0 = _mm256_fmadd_ps(c2, load_vec(b2 + j), y0);
      y0 = _mm256_fmadd_ps(c3, load_vec(b3 + j), y0);
      _mm256_storeu_ps(y + j, y0);
    }
    for (; j < n; ++j) {
      float v = y[j];
      v = std::fma(coef[r], load_one(b0 + j), v);
      v = std::fma(coef[r + 1], load_one(b1 + j), v);
      v = std::fma(coef[r + 2], load_one(b2 + j), v);
      v = std::fma(coef[r + 3], load_one(b3 + j), v);
      y[j] = v;
    }
  }
  for (; r < count; ++r) {
    const T* b0 = B + static_cast<int64_t>(rows[r]) * ldb + n0;
    const __m256 c0 = _mm256_set1_ps(coef[r]);
    int64_t j = 0;
    for (; j + 8 <= n; j += 8) _mm256_storeu_ps(y + j, _mm256_fmadd_ps(c0, load_vec(b0 + j), _mm256_loadu_ps(y + j)));
    for (; j < n; ++j) y[j] = std::fma(coef[r], load_one(b0 + j), y[j]);
  }
}

void AccumulateRowsAvx2(const float* coef, const int32_t* rows, size_t count, const void* B, ElementType type,
                        int64_t ldb, int64_t n0, int64_t n, float* y) {
  if (type == ElementType::kFloat32) {
    Accumulate(coef, rows, count, static_cast<const float*>(B), ldb, n0, n, y,
               [](const float* p) { return Load8(p); }, [](const float* p) { return ScalarLoad(p); });
  } else {
    Accumulate(coef, rows, count, static_cast<const uint16_t*>(B), ldb, n0, n, y,
               [type](const uint16_t* p) { return Load8(p, type); },
               [type](const uint16_t* p) { return ScalarLoad(p, type); });
  }
}

void StoreFloatsAvx2(const float* src, int64_t n, ElementType type, void* dst) {
  if (type != ElementType::kFloat16) {
    ScalarKernels().store_floats(src, n, type, dst);
    return;
  }
  auto* out = static_cast<uint16_t*>(dst);
  int64_t j = 0;
  for (; j + 8 <= n; j += 8)
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out + j),
                     _mm256_cvtps_ph(_mm256_loadu_ps(src + j), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
  for (; j < n; ++j) out[j] = FloatToFloat16(src[j]);
}

void PackBPanelAvx2(const void* B, ElementType type, int64_t ldb, int64_t kc, int64_t width, float* panel) {
  constexpr int64_t nr = 16;
  if (width < nr) {  // the last, partial panel of a block: element by element
    for (int64_t p = 0; p < kc; ++p)
      for (int64_t j = 0; j < nr; ++j) {
        float v = 0.f;
        if (j < width) v = type == ElementType::kFloat32 ? static_cast<const float*>(B)[p * ldb + j] : ScalarLoad(static_cast<const uint16_t*>(B) + p * ldb + j, type);
        panel[p * nr + j] = v;
      }
    return;
  }
  for (int64_t p = 0; p < kc; ++p) {
    float* dst = panel + p * nr;
    if (type == ElementType::kFloat32) {
      const float* src = static_cast<const float*>(B) + p * ldb;
      _mm256_storeu_ps(dst, _mm256_loadu_ps(src));
      _mm256_storeu_ps(dst + 8, _mm256_loadu_ps(src + 8));
    } else {
      const uint16_t* src = static_cast<const uint16_t*>(B) + p * ldb;
      _mm256_storeu_ps(dst, Load8(src, type));
      _mm256_storeu_ps(dst + 8, Load8(src + 8, type));
    }
  }
}

// GEMM micro-kernel, 6 rows x 16 columns: 12 accumulators, two loads of B and six broadcasts of A per step.
constexpr int64_t kAvx2Mr = 6, kAvx2Nr = 16;

void GemmMicroKernelAvx2(const float* a, const float* b, int64_t kc, float* c, int64_t ldc, int64_t m, int64_t n, bool accumulate) {
  __m256 acc[kAvx2Mr][2];
  for (int i = 0; i < kAvx2Mr; ++i) acc[i][0] = acc[i][1] = _mm256_setzero_ps();
  for (int64_t p = 0; p < kc; ++p) {
    const __m256 b0 = _mm256_loadu_ps(b + p * kAvx2Nr), b1 = _mm256_loadu_ps(b + p * kAvx2Nr + 8);
    for (int i = 0; i < kAvx2Mr; ++i) {
      const __m256 ai = _mm256_set1_ps(a[p * kAvx2Mr + i]);
      acc[i][0] = _mm256_fmadd_ps(ai, b0, acc[i][0]);
      acc[i][1] = _mm256_fmadd_ps(ai, b1, acc[i][1]);
    }
  }
  // The block's products are summed from zero, then added to C, as in the scalar kernel.
  alignas(32) float tile[kAvx2Mr][kAvx2Nr];
  for (int i = 0; i < kAvx2Mr; ++i) {
    _mm256_store_ps(tile[i], acc[i][0]);
    _mm256_store_ps(tile[i] + 8, acc[i][1]);
  }
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) c[i * ldc + j] = accumulate ? c[i * ldc + j] + tile[i][j] : tile[i][j];
}

}  // namespace

const KernelTable& Avx2Kernels() {
  static const KernelTable table{AccumulateRowsAvx2, StoreFloatsAvx2, GemmMicroKernelAvx2,
                                 kAvx2Mr, kAvx2Nr, PackBPanelAvx2};
  return table;
}

}  // namespace sparseonnx::detail
