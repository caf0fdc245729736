// The AVX2 micro-kernel of the int8 prefill GEMM (quantized_int8_gemm.cc). Per 64-column chunk and pair of W
// rows: the two rows' 32 bytes are byte-interleaved and split into nibbles once (four vectors of 16 columns
// × 2 rows, unsigned), then each of the MR rows of A multiplies them by its broadcast pair of int8
// activations with vpmaddubsw into int16 sums. The unpacking is shared by MR rows of A, which is what the
// decode kernel (one row of A at a time) cannot do.
//
// Symmetric weights: the int16 sums of a q wrap freely; sum a * (q - 8) = sum a q - 8 * asum fits int16
// for a group of 32 rows, so subtracting 8 * asum in int16 gives it exactly. With zero points the group is
// 16 rows and sum a q itself fits.
#include <immintrin.h>

#include <cstring>

#include "quantized_rows_kernels.h"

namespace sparseonnx::detail {
namespace {

// c[0..16) += (sa * s) * t for the 16 int16 column sums t (less the zero-point term).
template <bool Symmetric>
inline void Flush16(__m256i sum, __m256 sa, __m256i correction, __m256 asum, const float* scales, const float* zeros, float* c) {
  if constexpr (Symmetric) sum = _mm256_sub_epi16(sum, correction);
  __m256 lo = _mm256_cvtepi32_ps(_mm256_cvtepi16_epi32(_mm256_castsi256_si128(sum)));
  __m256 hi = _mm256_cvtepi32_ps(_mm256_cvtepi16_epi32(_mm256_extracti128_si256(sum, 1)));
  if constexpr (!Symmetric) {
    lo = _mm256_fnmadd_ps(_mm256_loadu_ps(zeros), asum, lo);
    hi = _mm256_fnmadd_ps(_mm256_loadu_ps(zeros + 8), asum, hi);
  }
  _mm256_storeu_ps(c, _mm256_fmadd_ps(_mm256_mul_ps(sa, _mm256_loadu_ps(scales)), lo, _mm256_loadu_ps(c)));
  _mm256_storeu_ps(c + 8, _mm256_fmadd_ps(_mm256_mul_ps(sa, _mm256_loadu_ps(scales + 8)), hi, _mm256_loadu_ps(c + 8)));
}

inline int16_t PairOf(const int8_t* a) {
  int16_t pair;
  std::memcpy(&pair, a, sizeof(pair));  // low byte: the first row of the pair, as the byte interleave puts it
  return pair;
}

template <int MR, bool Symmetric>
void Tile(const Int8GemmGroup& g, int64_t width, float* C, int64_t ldc) {
  const __m256i low_nibbles = _mm256_set1_epi8(0x0F);
  __m256 sa[MR], asum[MR];
  __m256i correction[MR];
  for (int m = 0; m < MR; ++m) {
    const int32_t sum = g.activation_sums[m * g.sum_stride];
    sa[m] = _mm256_set1_ps(g.activation_scales[m * g.scale_stride]);
    asum[m] = _mm256_set1_ps(static_cast<float>(sum));
    correction[m] = _mm256_set1_epi16(static_cast<int16_t>(8 * sum));  // |8 * sum| <= 8 * 32 * 127 < 2^15
  }
  for (int64_t c = 0; c < width; c += 64) {
    __m256i acc[MR][4];
    for (int m = 0; m < MR; ++m)
      for (int i = 0; i < 4; ++i) acc[m][i] = _mm256_setzero_si256();
    const int64_t at = c / 2;
    for (int64_t p = 0; p < g.pairs; ++p) {
      const __m256i v1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(g.rows[2 * p] + at));
      const __m256i v2 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(g.rows[2 * p + 1] + at));
      const __m256i u_lo = _mm256_unpacklo_epi8(v1, v2), u_hi = _mm256_unpackhi_epi8(v1, v2);
      const __m256i w0 = _mm256_and_si256(u_lo, low_nibbles), w1 = _mm256_and_si256(u_hi, low_nibbles);
      const __m256i w2 = _mm256_and_si256(_mm256_srli_epi16(u_lo, 4), low_nibbles);
      const __m256i w3 = _mm256_and_si256(_mm256_srli_epi16(u_hi, 4), low_nibbles);
      for (int m = 0; m < MR; ++m) {
        const __m256i a = _mm256_set1_epi16(PairOf(g.a + m * g.lda + 2 * p));
        acc[m][0] = _mm256_add_epi16(acc[m][0], _mm256_maddubs_epi16(w0, a));
        acc[m][1] = _mm256_add_epi16(acc[m][1], _mm256_maddubs_epi16(w1, a));
        acc[m][2] = _mm256_add_epi16(acc[m][2], _mm256_maddubs_epi16(w2, a));
        acc[m][3] = _mm256_add_epi16(acc[m][3], _mm256_maddubs_epi16(w3, a));
      }
    }
    for (int m = 0; m < MR; ++m)
      for (int i = 0; i < 4; ++i)
        Flush16<Symmetric>(acc[m][i], sa[m], correction[m], asum[m], g.scales + c + 16 * i, Symmetric ? nullptr : g.zeros + c + 16 * i,
                           C + m * ldc + c + 16 * i);
  }
}

template <bool Symmetric>
void Rows(const Int8GemmGroup& g, int64_t rows, int64_t width, float* C, int64_t ldc) {
  static_assert(kInt8GemmRows <= 4);
  switch (rows) {
    case 1:
      return Tile<1, Symmetric>(g, width, C, ldc);
    case 2:
      return Tile<2, Symmetric>(g, width, C, ldc);
    case 3:
      return Tile<3, Symmetric>(g, width, C, ldc);
    default:
      return Tile<4, Symmetric>(g, width, C, ldc);
  }
}

}  // namespace

void Int8GemmAvx2(const Int8GemmGroup& g, int64_t rows, int64_t width, float* C, int64_t ldc) {
  if (g.zeros) return Rows<false>(g, rows, width, C, ldc);
  return Rows<true>(g, rows, width, C, ldc);
}

}  // namespace sparseonnx::detail
