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

// Several rows of A against the same rows of B: an MR x 8 register tile of y per column step, each vector of
// B loaded once and used by all MR rows. Per element the FMAs still run in row order.
template <int MR, typename T, typename LoadVec, typename LoadOne>
void AccumulateMulti(const float* coef, int64_t ldc, const int32_t* rows, size_t count, const T* B, int64_t ldb, int64_t n0,
                     int64_t n, float* y, int64_t ldy, LoadVec load_vec, LoadOne load_one) {
  int64_t j = 0;
  for (; j + 8 <= n; j += 8) {
    __m256 acc[MR];
    for (int i = 0; i < MR; ++i) acc[i] = _mm256_loadu_ps(y + i * ldy + j);
    for (size_t r = 0; r < count; ++r) {
      const __m256 b = load_vec(B + static_cast<int64_t>(rows[r]) * ldb + n0 + j);
      for (int i = 0; i < MR; ++i) acc[i] = _mm256_fmadd_ps(_mm256_set1_ps(coef[i * ldc + r]), b, acc[i]);
    }
    for (int i = 0; i < MR; ++i) _mm256_storeu_ps(y + i * ldy + j, acc[i]);
  }
  for (; j < n; ++j)
    for (int i = 0; i < MR; ++i) {
      float v = y[i * ldy + j];
      for (size_t r = 0; r < count; ++r) v = std::fma(coef[i * ldc + r], load_one(B + static_cast<int64_t>(rows[r]) * ldb + n0 + j), v);
      y[i * ldy + j] = v;
    }
}

template <typename T, typename LoadVec, typename LoadOne>
void AccumulateMultiRows(int64_t m, const float* coef, int64_t ldc, const int32_t* rows, size_t count, const T* B, int64_t ldb,
                         int64_t n0, int64_t n, float* y, int64_t ldy, LoadVec load_vec, LoadOne load_one) {
  switch (m) {
    case 1: AccumulateMulti<1>(coef, ldc, rows, count, B, ldb, n0, n, y, ldy, load_vec, load_one); break;
    case 2: AccumulateMulti<2>(coef, ldc, rows, count, B, ldb, n0, n, y, ldy, load_vec, load_one); break;
    case 3: AccumulateMulti<3>(coef, ldc, rows, count, B, ldb, n0, n, y, ldy, load_vec, load_one); break;
    case 4: AccumulateMulti<4>(coef, ldc, rows, count, B, ldb, n0, n, y, ldy, load_vec, load_one); break;
    case 5: AccumulateMulti<5>(coef, ldc, rows, count, B, ldb, n0, n, y, ldy, load_vec, load_one); break;
    case 6: AccumulateMulti<6>(coef, ldc, rows, count, B, ldb, n0, n, y, ldy, load_vec, load_one); break;
    case 7: AccumulateMulti<7>(coef, ldc, rows, count, B, ldb, n0, n, y, ldy, load_vec, load_one); break;
    default: AccumulateMulti<8>(coef, ldc, rows, count, B, ldb, n0, n, y, ldy, load_vec, load_one); break;
  }
}

void AccumulateRowsMultiAvx2(const float* coef, int64_t ldc, int64_t m, const int32_t* rows, size_t count, const void* B,
                             ElementType type, int64_t ldb, int64_t n0, int64_t n, float* y, int64_t ldy) {
  if (type == ElementType::kFloat32) {
    AccumulateMultiRows(m, coef, ldc, rows, count, static_cast<const float*>(B), ldb, n0, n, y, ldy,
                        [](const float* p) { return Load8(p); }, [](const float* p) { return ScalarLoad(p); });
  } else {
    AccumulateMultiRows(m, coef, ldc, rows, count, static_cast<const uint16_t*>(B), ldb, n0, n, y, ldy,
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

}  // namespace

const KernelTable& Avx2Kernels() {
  static const KernelTable table{AccumulateRowsAvx2, AccumulateRowsMultiAvx2, StoreFloatsAvx2};
  return table;
}

}  // namespace sparseonnx::detail
