// Row selection for TopKSparseMatMul: which entries of a row of A are kept.
//
// Every element gets a 32-bit key: the bits of |float(a)|. For non-negative floats the bit pattern orders
// like the value, and NaN patterns sort above +Inf, so NaN ranks above every number (kept first, and it
// propagates like MatMul would); -0.0 and +0.0 both get key 0. Threshold mode keeps key > bits(t), which
// is |a| > t for numbers and true for NaN. Top-k finds the k-th largest key (a histogram of the keys' top
// bits, then an exact select within one bin: O(K) in all), keeps every key above it and the lowest-indexed
// entries equal to it.
#include <algorithm>
#include <array>
#include <functional>
#include <cmath>
#include <cstring>
#include <stdexcept>
#include <type_traits>

#include "element_convert.h"
#include "selection_kernels.h"
#include "sparseonnx/kernels.h"

namespace sparseonnx {
namespace {

using detail::BFloat16ToFloat;
using detail::Float16ToFloat;
using detail::FloatBits;

inline uint32_t KeyOf(float value) { return FloatBits(value) & 0x7FFFFFFFu; }

// The element type is a template parameter in the loops below: a per-element switch on it kept the
// compiler from unrolling them, and was most of the selection's cost.
template <ElementType E>
inline float ValueAt(const void* row, int64_t i) {
  if constexpr (E == ElementType::kFloat32) return static_cast<const float*>(row)[i];
  else if constexpr (E == ElementType::kFloat16) return Float16ToFloat(static_cast<const uint16_t*>(row)[i]);
  else return BFloat16ToFloat(static_cast<const uint16_t*>(row)[i]);
}

// KeyOf(ValueAt(row, i)), without the float round trip where the bits already are the float's.
template <ElementType E>
inline uint32_t KeyAt(const void* row, int64_t i) {
  if constexpr (E == ElementType::kFloat32) return static_cast<const uint32_t*>(row)[i] & 0x7FFFFFFFu;
  else if constexpr (E == ElementType::kBFloat16) return (static_cast<uint32_t>(static_cast<const uint16_t*>(row)[i]) << 16) & 0x7FFFFFFFu;
  else return KeyOf(Float16ToFloat(static_cast<const uint16_t*>(row)[i]));
}

// What a row keeps: every key above `cutoff`, and the first `ties` entries whose key equals it.
struct Cutoff {
  uint32_t cutoff = 0;
  int64_t ties = 0;
  bool keep_all = false;
};

// Top-k's cutoff in two steps. First one pass over the row: every key stored, and a histogram of its top
// kHistogramBits bits (the exponent and the leading mantissa bits, so a row of similar magnitudes still
// spreads over many bins); walking the bins down from the largest key finds the bin that holds the k-th
// largest key and how many keys above it are kept. Then only that bin's keys (a few dozen in a row of
// thousands) are compacted and selected exactly. Two passes over the row and one over the bin, where an
// 8-bit radix select made four histogram passes and three compactions: measured 3.7 ns per entry before.
constexpr int kHistogramBits = 11;
constexpr int kHistogramShift = 31 - kHistogramBits;  // keys have 31 bits

template <ElementType E>
void TopKCutoff(const void* row, int64_t K, int64_t k, uint32_t* keys, Cutoff& result) {
  std::array<uint32_t, size_t{1} << kHistogramBits> histogram{};
  uint32_t largest = 0;
  for (int64_t i = 0; i < K; ++i) {
    const uint32_t key = KeyAt<E>(row, i);
    keys[i] = key;
    largest = std::max(largest, key);
    ++histogram[key >> kHistogramShift];
  }
  int64_t remaining = k;  // how many of the k kept keys must come from the bins not yet passed
  uint32_t bin = largest >> kHistogramShift;
  for (; bin > 0; --bin) {
    if (histogram[bin] >= remaining) break;
    remaining -= histogram[bin];
  }
  // The bin's keys to the front (branch-free: store always, advance on a match), then the remaining-th
  // largest of them is the cutoff; the kept entries equal to it are the ties.
  int64_t candidates = 0;
  for (int64_t i = 0; i < K; ++i) {
    const uint32_t key = keys[i];
    keys[candidates] = key;  // candidates <= i: never overwrites a key not yet read
    candidates += (key >> kHistogramShift) == bin;
  }
  std::nth_element(keys, keys + (remaining - 1), keys + candidates, std::greater<uint32_t>());
  result.cutoff = keys[remaining - 1];
  int64_t above = 0;
  for (int64_t i = 0; i < candidates; ++i) above += keys[i] > result.cutoff;
  result.ties = remaining - above;
}

template <ElementType E>
Cutoff FindCutoff(const void* row, int64_t K, const SelectionRule& rule, uint32_t* keys) {
  Cutoff result;
  if (rule.mode == SelectionRule::Mode::kThreshold) {
    result.cutoff = KeyOf(rule.threshold);
    return result;
  }
  if (rule.k >= K) {
    result.keep_all = true;
    return result;
  }
  TopKCutoff<E>(row, K, rule.k, keys, result);
  return result;
}

template <ElementType E>
size_t SelectRowTyped(const void* row, int64_t K, const SelectionRule& rule, int32_t* kept_indices, float* kept_values, uint32_t* scratch) {
  const Cutoff cut = FindCutoff<E>(row, K, rule, scratch);
  size_t count = 0;
  if (cut.keep_all) {
    for (int64_t i = 0; i < K; ++i) {
      kept_indices[i] = static_cast<int32_t>(i);
      kept_values[i] = ValueAt<E>(row, i);
    }
    return static_cast<size_t>(K);
  }
  // The kept ties are the first cut.ties entries equal to the cutoff: find where the last one is, so the
  // pass below needs no running tie count (a chain through every iteration).
  int64_t last_tie = -1;
  for (int64_t i = 0, ties = cut.ties; i < K && ties > 0; ++i)
    if (KeyAt<E>(row, i) == cut.cutoff && --ties == 0) last_tie = i;
#if defined(SPARSEONNX_HAVE_AVX2)
  if constexpr (E == ElementType::kFloat32)
    if (ActiveIsa() != Isa::kScalar)
      return detail::PackKeptFloat32Avx2(static_cast<const float*>(row), K, cut.cutoff, last_tie, kept_indices, kept_values);
#endif
  for (int64_t i = 0; i < K; ++i) {
    // Written unconditionally at the next free slot (count <= i < K), kept only if the slot advances.
    const uint32_t key = KeyAt<E>(row, i);
    kept_indices[count] = static_cast<int32_t>(i);
    kept_values[count] = ValueAt<E>(row, i);
    count += (key > cut.cutoff) | ((key == cut.cutoff) & (i <= last_tie));
  }
  return count;
}

template <ElementType E>
void MaskRowTyped(const void* row, int64_t K, const SelectionRule& rule, void* masked_row, uint32_t* scratch) {
  using Bits = std::conditional_t<E == ElementType::kFloat32, uint32_t, uint16_t>;
  const Cutoff cut = FindCutoff<E>(row, K, rule, scratch);
  if (cut.keep_all) {
    std::memcpy(masked_row, row, static_cast<size_t>(K) * sizeof(Bits));
    return;
  }
  // Kept entries copied bit for bit, dropped ones +0.0: first every key above the cutoff, in a loop free of
  // the tie counter so the compiler vectorizes it (keys are at most 0x7FFFFFFF, so a signed compare works);
  // then the few entries equal to the cutoff, lowest index first, until the ties are used up.
  const auto* in = static_cast<const Bits*>(row);
  auto* out = static_cast<Bits*>(masked_row);
  const auto cutoff = static_cast<int32_t>(cut.cutoff);
  for (int64_t i = 0; i < K; ++i) out[i] = static_cast<int32_t>(KeyAt<E>(row, i)) > cutoff ? in[i] : Bits{0};
  for (int64_t i = 0, ties = cut.ties; i < K && ties > 0; ++i)
    if (KeyAt<E>(row, i) == cut.cutoff) {
      out[i] = in[i];
      --ties;
    }
}

void CheckRule(const SelectionRule& rule, int64_t K) {
  if (rule.mode == SelectionRule::Mode::kTopK && (rule.k < 1 || rule.k > K))
    throw std::invalid_argument("k must be between 1 and K");
  if (rule.mode == SelectionRule::Mode::kThreshold && !(rule.threshold >= 0.f))
    throw std::invalid_argument("threshold must be a non-negative number");
}

}  // namespace

size_t ElementSize(ElementType type) { return type == ElementType::kFloat32 ? 4 : 2; }

const char* ElementTypeName(ElementType type) {
  switch (type) {
    case ElementType::kFloat32:
      return "float32";
    case ElementType::kFloat16:
      return "float16";
    case ElementType::kBFloat16:
      return "bfloat16";
  }
  return "unknown";
}

size_t SelectRow(const void* row, ElementType type, int64_t K, const SelectionRule& rule, int32_t* kept_indices,
                 float* kept_values, uint32_t* scratch) {
  CheckRule(rule, K);
  switch (type) {
    case ElementType::kFloat32:
      return SelectRowTyped<ElementType::kFloat32>(row, K, rule, kept_indices, kept_values, scratch);
    case ElementType::kFloat16:
      return SelectRowTyped<ElementType::kFloat16>(row, K, rule, kept_indices, kept_values, scratch);
    case ElementType::kBFloat16:
      return SelectRowTyped<ElementType::kBFloat16>(row, K, rule, kept_indices, kept_values, scratch);
  }
  return 0;
}

void MaskRow(const void* row, ElementType type, int64_t K, const SelectionRule& rule, void* masked_row,
             uint32_t* scratch) {
  CheckRule(rule, K);
  switch (type) {
    case ElementType::kFloat32:
      return MaskRowTyped<ElementType::kFloat32>(row, K, rule, masked_row, scratch);
    case ElementType::kFloat16:
      return MaskRowTyped<ElementType::kFloat16>(row, K, rule, masked_row, scratch);
    case ElementType::kBFloat16:
      return MaskRowTyped<ElementType::kBFloat16>(row, K, rule, masked_row, scratch);
  }
}

}  // namespace sparseonnx
