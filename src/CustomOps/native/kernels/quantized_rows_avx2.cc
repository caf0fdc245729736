// AVX2 + FMA + F16C block kernels for quantized weights (compiled with -mavx2 -mfma -mf16c; called only on
// CPUs that have them).
//
// kInt8, 4 bits (the decode hot path): kept rows are taken two at a time. For each chunk of 64 columns,
// each row's 32 bytes are split into low and high nibbles, the two rows' codes are byte-interleaved (the
// layout's column permutation makes the interleave come out in column order) and one vpmaddubsw per 16
// columns multiplies them by the pair of int8 activations and adds the two products: 64 weights of one
// row per two multiply-adds. Sums stay in int16 for up to 8 pairs with zero points (|sum| <= 8 * 2 * 127 * 15
// < 2^15), 16 for symmetric weights (see kSymmetricPairsPerFlush), then are scaled into the float
// accumulators: y += (sa * s) * (isum - z * asum).
// kFloat, and 8-bit codes: each code is widened to float and multiplied in float32 (t), then
// y += s * (t - z * asum) per block.
#include <immintrin.h>

#include <algorithm>
#include <cstring>

#include "quantized_rows_kernels.h"

namespace sparseonnx::detail {
namespace {

// Pairs of rows summed in int16 before the sums are scaled into float: with zero points the sum of a * q
// must itself fit (8 pairs: 16 * 127 * 15 < 2^15); symmetric weights need only sum a * (q - 8) to fit, since
// int16 additions wrap and subtracting 8 * asum at the end recovers it exactly (16 pairs: 32 * 127 * 8 < 2^15).
constexpr size_t kPairsPerFlush = 8, kSymmetricPairsPerFlush = 16;

[[maybe_unused]] inline void PrefetchRow(const uint8_t* row, int64_t bytes) {
  for (int64_t i = 0; i < bytes; i += 64) _mm_prefetch(reinterpret_cast<const char*>(row + i), _MM_HINT_T0);
}

// Eight scales as floats, from float32 or float16.
template <bool Float16>
inline __m256 LoadScales(const void* scales, int64_t index) {
  if constexpr (Float16) return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(static_cast<const uint16_t*>(scales) + index)));
  else return _mm256_loadu_ps(static_cast<const float*>(scales) + index);
}

// Adds one int16 vector of 16 column sums into y: y += (sa * s) * (isum - z * asum).
template <bool Float16>
inline void Flush16(__m256i sum, __m256 sa, __m256 asum, const void* scales, int64_t at, const float* zeros, __m256 default_zero, float* y) {
  const __m256 isum_lo = _mm256_cvtepi32_ps(_mm256_cvtepi16_epi32(_mm256_castsi256_si128(sum)));
  const __m256 isum_hi = _mm256_cvtepi32_ps(_mm256_cvtepi16_epi32(_mm256_extracti128_si256(sum, 1)));
  const __m256 z_lo = zeros ? _mm256_loadu_ps(zeros) : default_zero, z_hi = zeros ? _mm256_loadu_ps(zeros + 8) : default_zero;
  const __m256 t_lo = _mm256_fnmadd_ps(z_lo, asum, isum_lo), t_hi = _mm256_fnmadd_ps(z_hi, asum, isum_hi);
  _mm256_storeu_ps(y, _mm256_fmadd_ps(_mm256_mul_ps(sa, LoadScales<Float16>(scales, at)), t_lo, _mm256_loadu_ps(y)));
  _mm256_storeu_ps(y + 8, _mm256_fmadd_ps(_mm256_mul_ps(sa, LoadScales<Float16>(scales, at + 8)), t_hi, _mm256_loadu_ps(y + 8)));
}

// Symmetric weights: y += (sa * s) * (isum - 8 * asum), the subtraction exact in int16 (see kSymmetricPairsPerFlush).
template <bool Float16>
inline void FlushSymmetric16(__m256i sum, __m256 sa, __m256i correction, const void* scales, int64_t at, float* y) {
  sum = _mm256_sub_epi16(sum, correction);
  const __m256 t_lo = _mm256_cvtepi32_ps(_mm256_cvtepi16_epi32(_mm256_castsi256_si128(sum)));
  const __m256 t_hi = _mm256_cvtepi32_ps(_mm256_cvtepi16_epi32(_mm256_extracti128_si256(sum, 1)));
  _mm256_storeu_ps(y, _mm256_fmadd_ps(_mm256_mul_ps(sa, LoadScales<Float16>(scales, at)), t_lo, _mm256_loadu_ps(y)));
  _mm256_storeu_ps(y + 8, _mm256_fmadd_ps(_mm256_mul_ps(sa, LoadScales<Float16>(scales, at + 8)), t_hi, _mm256_loadu_ps(y + 8)));
}

// Chunk by chunk of 64 columns, the group's pairs of rows accumulate in four int16 registers, which are
// then scaled into y: the group's rows are read as parallel streams, each row's stretch front to back.
template <bool Float16, bool Symmetric>
void Int8Block4Bit(const QuantizedRows& w, const BlockSelection& s, int64_t n0, int64_t width, float* y) {
  constexpr size_t kPairs = Symmetric ? kSymmetricPairsPerFlush : kPairsPerFlush;
  const int64_t row_bytes = QuantRowBytes(4, w.N), padded = QuantPaddedColumns(w.N);
  const int64_t scales = s.block * padded + n0;  // index of this task's first scale
  const float* zeros = w.zero_points ? w.zero_points + s.block * padded + n0 : nullptr;
  const uint8_t* codes = w.codes + n0 / 2;
  const __m256i low_nibbles = _mm256_set1_epi8(0x0F);
  const __m256 sa = _mm256_set1_ps(s.activation_scale), default_zero = _mm256_set1_ps(8.f);
  for (size_t r0 = 0; r0 < s.count; r0 += 2 * kPairs) {
    const size_t rows = std::min(2 * kPairs, s.count - r0), pairs = (rows + 1) / 2;
    const uint8_t* first[kPairs];
    const uint8_t* second[kPairs];
    int16_t weights[kPairs];
    int32_t activation_sum = 0;
    for (size_t p = 0; p < pairs; ++p) {
      const size_t r = r0 + 2 * p;
      const bool single = r + 1 == s.count;
      first[p] = codes + static_cast<int64_t>(s.indices[r]) * row_bytes;
      second[p] = single ? first[p] : codes + static_cast<int64_t>(s.indices[r + 1]) * row_bytes;
      const int8_t a1 = s.quantized[r], a2 = single ? int8_t{0} : s.quantized[r + 1];
      activation_sum += a1 + a2;
      weights[p] = static_cast<int16_t>(static_cast<uint16_t>(static_cast<uint8_t>(a1)) | static_cast<uint16_t>(static_cast<uint8_t>(a2)) << 8);
    }
    const __m256 asum = _mm256_set1_ps(static_cast<float>(activation_sum));
    const __m256i correction = _mm256_set1_epi16(static_cast<int16_t>(8 * activation_sum));  // |8 asum| <= 8 * 32 * 127
    for (int64_t c = 0; c < width; c += 64) {
      __m256i acc0 = _mm256_setzero_si256(), acc1 = acc0, acc2 = acc0, acc3 = acc0;
      const int64_t at = c / 2;
#pragma GCC unroll 2
      for (size_t p = 0; p < pairs; ++p) {
        if ((c & 127) == 0) {  // one line of each row ahead, every other chunk
          _mm_prefetch(reinterpret_cast<const char*>(first[p] + at + 128), _MM_HINT_T0);
          _mm_prefetch(reinterpret_cast<const char*>(second[p] + at + 128), _MM_HINT_T0);
        }
        const __m256i a = _mm256_set1_epi16(weights[p]);
        const __m256i v1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(first[p] + at));
        const __m256i v2 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(second[p] + at));
        // Interleave the two rows' bytes first, then split nibbles: low nibbles are columns 0-31, high 32-63.
        const __m256i u_lo = _mm256_unpacklo_epi8(v1, v2), u_hi = _mm256_unpackhi_epi8(v1, v2);
        acc0 = _mm256_add_epi16(acc0, _mm256_maddubs_epi16(_mm256_and_si256(u_lo, low_nibbles), a));
        acc1 = _mm256_add_epi16(acc1, _mm256_maddubs_epi16(_mm256_and_si256(u_hi, low_nibbles), a));
        acc2 = _mm256_add_epi16(acc2, _mm256_maddubs_epi16(_mm256_and_si256(_mm256_srli_epi16(u_lo, 4), low_nibbles), a));
        acc3 = _mm256_add_epi16(acc3, _mm256_maddubs_epi16(_mm256_and_si256(_mm256_srli_epi16(u_hi, 4), low_nibbles), a));
      }
      if constexpr (Symmetric) {
        FlushSymmetric16<Float16>(acc0, sa, correction, w.scales, scales + c, y + c);
        FlushSymmetric16<Float16>(acc1, sa, correction, w.scales, scales + c + 16, y + c + 16);
        FlushSymmetric16<Float16>(acc2, sa, correction, w.scales, scales + c + 32, y + c + 32);
        FlushSymmetric16<Float16>(acc3, sa, correction, w.scales, scales + c + 48, y + c + 48);
      } else {
        Flush16<Float16>(acc0, sa, asum, w.scales, scales + c, zeros ? zeros + c : nullptr, default_zero, y + c);
        Flush16<Float16>(acc1, sa, asum, w.scales, scales + c + 16, zeros ? zeros + c + 16 : nullptr, default_zero, y + c + 16);
        Flush16<Float16>(acc2, sa, asum, w.scales, scales + c + 32, zeros ? zeros + c + 32 : nullptr, default_zero, y + c + 32);
        Flush16<Float16>(acc3, sa, asum, w.scales, scales + c + 48, zeros ? zeros + c + 48 : nullptr, default_zero, y + c + 48);
      }
    }
  }
}

// Eight codes of a row, as floats, for columns 8g .. 8g + 7 of a 64-column chunk (g < 8).
template <int Bits>
inline __m256 CodesAsFloats(const uint8_t* chunk, int g) {
  if constexpr (Bits == 8) {
    return _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(chunk + 8 * g))));
  } else {
    const int half = g / 4, group = g % 4;
    const __m256i bytes =
        _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(chunk + PermutedColumn(8 * group))));
    const __m256i codes = half == 0 ? _mm256_and_si256(bytes, _mm256_set1_epi32(0x0F)) : _mm256_srli_epi32(bytes, 4);
    return _mm256_cvtepi32_ps(codes);
  }
}

// t[j] = sum over kept rows of a * q[j] (float, or int8 activations as floats), then y += scale * (t - z * asum).
template <int Bits, bool Float16>
void FloatBlock(const QuantizedRows& w, QuantAccuracy accuracy, const BlockSelection& s, int64_t n0, int64_t width, float* y) {
  const int64_t row_bytes = QuantRowBytes(Bits, w.N), padded = QuantPaddedColumns(w.N);
  const int64_t chunk_bytes = 64 * Bits / 8;
  const int64_t scales = s.block * padded + n0;
  const float* zeros = w.zero_points ? w.zero_points + s.block * padded + n0 : nullptr;
  const uint8_t* codes = w.codes + n0 * Bits / 8;
  const bool int8 = accuracy == QuantAccuracy::kInt8;
  alignas(32) float t[kQuantTaskColumns];
  std::memset(t, 0, static_cast<size_t>(width) * sizeof(float));
  float activation_sum = 0.f;
  for (size_t r = 0; r < s.count; ++r) {
    const float value = int8 ? static_cast<float>(s.quantized[r]) : s.values[r];
    activation_sum += value;
    const __m256 a = _mm256_set1_ps(value);
    const uint8_t* row = codes + static_cast<int64_t>(s.indices[r]) * row_bytes;
    if (r + 2 < s.count) PrefetchRow(codes + static_cast<int64_t>(s.indices[r + 2]) * row_bytes, width * Bits / 8);
    for (int64_t c = 0; c < width; c += 64) {
      const uint8_t* chunk = row + c / 64 * chunk_bytes;
      for (int g = 0; g < 8; ++g) {
        float* o = t + c + 8 * g;
        _mm256_storeu_ps(o, _mm256_fmadd_ps(a, CodesAsFloats<Bits>(chunk, g), _mm256_loadu_ps(o)));
      }
    }
  }
  const __m256 asum = _mm256_set1_ps(activation_sum);
  const __m256 dz = _mm256_set1_ps(static_cast<float>(1 << (Bits - 1)));
  const __m256 sa = _mm256_set1_ps(int8 ? s.activation_scale : 1.f);
  for (int64_t j = 0; j < width; j += 8) {
    const __m256 z = zeros ? _mm256_loadu_ps(zeros + j) : dz;
    const __m256 d = _mm256_fnmadd_ps(z, asum, _mm256_loadu_ps(t + j));
    const __m256 scale = int8 ? _mm256_mul_ps(sa, LoadScales<Float16>(w.scales, scales + j)) : LoadScales<Float16>(w.scales, scales + j);
    _mm256_storeu_ps(y + j, _mm256_fmadd_ps(scale, d, _mm256_loadu_ps(y + j)));
  }
}

// Eight dequantized weights of row `row` (codes of the whole row), columns n .. n + 7 (n a multiple of 8).
template <int Bits, bool Float16>
inline __m256 DequantizeEight(const uint8_t* row, const void* scales, const float* zeros, int64_t at, int64_t n, __m256 default_zero) {
  const int64_t chunk = n / 64, group = (n % 64) / 8;
  __m256 codes;
  if constexpr (Bits == 8) {
    codes = CodesAsFloats<8>(row + chunk * 64, static_cast<int>(group));
  } else {
    codes = CodesAsFloats<4>(row + chunk * 32, static_cast<int>(group));
  }
  const __m256 z = zeros ? _mm256_loadu_ps(zeros + at + n) : default_zero;
  return _mm256_mul_ps(LoadScales<Float16>(scales, at + n), _mm256_sub_ps(codes, z));
}

template <int Bits, bool Float16>
void DequantizePanelVector(const QuantizedRows& w, int64_t k0, int64_t kc, int64_t n0, int64_t width, int64_t nr, float* panel) {
  const int64_t padded = QuantPaddedColumns(w.N), row_bytes = QuantRowBytes(Bits, w.N);
  const __m256 default_zero = _mm256_set1_ps(static_cast<float>(1 << (Bits - 1)));
  const int64_t whole = width / 8 * 8;
  for (int64_t p = 0; p < kc; ++p) {
    const int64_t k = k0 + p;
    const uint8_t* row = w.codes + k * row_bytes;
    const int64_t at = (k / w.block_size) * padded;
    float* out = panel + p * nr;
    int64_t j = 0;
    for (; j < whole; j += 8) _mm256_storeu_ps(out + j, DequantizeEight<Bits, Float16>(row, w.scales, w.zero_points, at, n0 + j, default_zero));
    if (j < width) {  // a partial group: columns past N are stored as codes 0 with scale 0, so it is safe to read
      alignas(32) float tail[8];
      _mm256_store_ps(tail, DequantizeEight<Bits, Float16>(row, w.scales, w.zero_points, at, n0 + j, default_zero));
      for (int64_t i = 0; j + i < width; ++i) out[j + i] = tail[i];
      j += 8;
    }
    for (int64_t i = width; i < nr; ++i) out[i] = 0.f;
  }
}

}  // namespace

void DequantizePanelAvx2(const QuantizedRows& w, int64_t k0, int64_t kc, int64_t n0, int64_t width, int64_t nr, float* panel) {
  if (n0 % 8 != 0) return DequantizePanel(w, k0, kc, n0, width, nr, panel);
  if (w.float16_scales) {
    if (w.bits == 4) return DequantizePanelVector<4, true>(w, k0, kc, n0, width, nr, panel);
    return DequantizePanelVector<8, true>(w, k0, kc, n0, width, nr, panel);
  }
  if (w.bits == 4) return DequantizePanelVector<4, false>(w, k0, kc, n0, width, nr, panel);
  return DequantizePanelVector<8, false>(w, k0, kc, n0, width, nr, panel);
}

void QuantBlockAvx2(const QuantizedRows& w, QuantAccuracy accuracy, const BlockSelection& s, int64_t n0, int64_t width, float* y) {
  if (w.float16_scales) {
    if (accuracy == QuantAccuracy::kInt8 && w.bits == 4)
      return w.zero_points ? Int8Block4Bit<true, false>(w, s, n0, width, y) : Int8Block4Bit<true, true>(w, s, n0, width, y);
    if (w.bits == 4) return FloatBlock<4, true>(w, accuracy, s, n0, width, y);
    return FloatBlock<8, true>(w, accuracy, s, n0, width, y);
  }
  if (accuracy == QuantAccuracy::kInt8 && w.bits == 4)
    return w.zero_points ? Int8Block4Bit<false, false>(w, s, n0, width, y) : Int8Block4Bit<false, true>(w, s, n0, width, y);
  if (w.bits == 4) return FloatBlock<4, false>(w, accuracy, s, n0, width, y);
  return FloatBlock<8, false>(w, accuracy, s, n0, width, y);
}

}  // namespace sparseonnx::detail
