// Internal entry points of row selection (selection.cc): the per-instruction-set pass that writes a row's
// kept entries.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

namespace sparseonnx::detail {

// The selection key of a float32: its magnitude's bits (NaN above +Inf, -0 and +0 both 0).
inline uint32_t FloatKey(float value) {
  uint32_t bits;
  std::memcpy(&bits, &value, sizeof(bits));
  return bits & 0x7FFFFFFFu;
}

// Writes the kept entries of a float32 row, ascending: every entry whose key is above `cutoff`, and those
// equal to it at indices up to `last_tie` (-1: none). indices and values hold K entries (the packing
// writes past the count within them). Returns the count.
size_t PackKeptFloat32Avx2(const float* row, int64_t K, uint32_t cutoff, int64_t last_tie, int32_t* indices, float* values);

}  // namespace sparseonnx::detail
