// The last pass of row selection with AVX2 (selection.cc): eight entries at a time, the kept ones packed to
// the front of the output by a permutation from a 256-entry table (the "left-pack"), instead of a scalar loop
// whose every store waits on the running count. float32 rows only: the decode path's input.
#include <immintrin.h>

#include <array>
#include <cstdint>

#include "selection_kernels.h"

namespace sparseonnx::detail {
namespace {

// For each 8-bit mask, the lanes whose bit is set, in order, then zeros.
struct LeftPackTable {
  alignas(32) std::array<std::array<int32_t, 8>, 256> lanes{};
  LeftPackTable() {
    for (int mask = 0; mask < 256; ++mask) {
      int out = 0;
      for (int lane = 0; lane < 8; ++lane)
        if (mask & (1 << lane)) lanes[static_cast<size_t>(mask)][static_cast<size_t>(out++)] = lane;
    }
  }
};

const LeftPackTable& Table() {
  static const LeftPackTable table;
  return table;
}

}  // namespace

size_t PackKeptFloat32Avx2(const float* row, int64_t K, uint32_t cutoff, int64_t last_tie, int32_t* indices, float* values) {
  const LeftPackTable& table = Table();
  const __m256i magnitude = _mm256_set1_epi32(0x7FFFFFFF);
  // Keys are at most 0x7FFFFFFF, so signed compares order them.
  const __m256i above = _mm256_set1_epi32(static_cast<int32_t>(cutoff));
  const __m256i step = _mm256_set1_epi32(8);
  __m256i index = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  size_t count = 0;
  int64_t i = 0;
  // Before and after the last kept tie: entries equal to the cutoff are kept up to it.
  for (; i + 8 <= K; i += 8) {
    const __m256 v = _mm256_loadu_ps(row + i);
    const __m256i key = _mm256_and_si256(_mm256_castps_si256(v), magnitude);
    __m256i keep = _mm256_cmpgt_epi32(key, above);
    if (i <= last_tie) {
      const __m256i tie = _mm256_and_si256(_mm256_cmpeq_epi32(key, above),
                                           _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int32_t>(last_tie - i + 1)),
                                                              _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7)));
      keep = _mm256_or_si256(keep, tie);
    }
    const int mask = _mm256_movemask_ps(_mm256_castsi256_ps(keep));
    const __m256i lanes = _mm256_load_si256(reinterpret_cast<const __m256i*>(table.lanes[static_cast<size_t>(mask)].data()));
    // Full-width stores at the running count: the tail past the kept lanes is overwritten by the next
    // group or lies within the K-entry outputs (count + 8 <= i + 8 <= K).
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(indices + count), _mm256_permutevar8x32_epi32(index, lanes));
    _mm256_storeu_ps(values + count, _mm256_permutevar8x32_ps(v, lanes));
    count += static_cast<size_t>(__builtin_popcount(static_cast<unsigned>(mask)));
    index = _mm256_add_epi32(index, step);
  }
  for (; i < K; ++i) {
    const uint32_t key = FloatKey(row[i]);
    indices[count] = static_cast<int32_t>(i);
    values[count] = row[i];
    count += key > cutoff || (key == cutoff && i <= last_tie);
  }
  return count;
}

}  // namespace sparseonnx::detail
