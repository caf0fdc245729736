// Row selection for TopKSparseMatMul: which entries of a row of A are kept.
//
// Every element gets a 32-bit key: the bits of |float(a)|. For non-negative floats the bit pattern orders
// like the value, and NaN patterns sort above +Inf, so NaN ranks above every number (kept first, and it
// propagates like MatMul would); -0.0 and +0.0 both get key 0. Threshold mode keeps key > bits(t), which
// is |a| > t for numbers and true for NaN. Top-k finds the k-th largest key by radix select (8-bit digits,
// O(K) in all), keeps every key above it and the lowest-indexed entries equal to it.
#include <array>
#include <cmath>
#include <cstring>
#include <stdexcept>
#include <type_traits>

#include "element_convert.h"
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

// One pass of the radix select over the `candidates` keys that share the prefix found so far: histogram of
// the byte at `Shift` (keys read from the row on the first pass), then the digit holding the k-th largest,
// then the keys with that digit compacted to the front (not needed after the last byte). The shift is a
// template argument so the byte extraction compiles to immediate shifts; the compaction is branch-free
// (store always, advance on a match) because a match is close to a coin toss and mispredicted branches
// cost more than the stores.
template <ElementType E, int Shift>
void RadixPass(const void* row, uint32_t* keys, int64_t& candidates, int64_t& remaining, uint32_t& prefix) {
  std::array<uint32_t, 256> histogram{};
  if constexpr (Shift == 24) {
    // Four interleaved histograms merged after the pass: neighbouring keys mostly share their leading byte
    // (the exponent), and one table would chain every increment on the previous one through memory.
    std::array<std::array<uint32_t, 256>, 4> partial{};
    int64_t i = 0;
    for (; i + 4 <= candidates; i += 4) {
      const uint32_t k0 = KeyAt<E>(row, i), k1 = KeyAt<E>(row, i + 1), k2 = KeyAt<E>(row, i + 2), k3 = KeyAt<E>(row, i + 3);
      keys[i] = k0;
      keys[i + 1] = k1;
      keys[i + 2] = k2;
      keys[i + 3] = k3;
      ++partial[0][k0 >> 24];
      ++partial[1][k1 >> 24];
      ++partial[2][k2 >> 24];
      ++partial[3][k3 >> 24];
    }
    for (; i < candidates; ++i) {
      keys[i] = KeyAt<E>(row, i);
      ++partial[0][keys[i] >> 24];
    }
    for (int b = 0; b < 256; ++b) histogram[b] = partial[0][b] + partial[1][b] + partial[2][b] + partial[3][b];
  } else {
    for (int64_t i = 0; i < candidates; ++i) ++histogram[(keys[i] >> Shift) & 0xFFu];
  }
  uint32_t digit = 255;
  for (; digit > 0; --digit) {
    if (histogram[digit] >= remaining) break;
    remaining -= histogram[digit];
  }
  prefix |= digit << Shift;
  if constexpr (Shift > 0) {
    int64_t kept = 0;
    for (int64_t i = 0; i < candidates; ++i) {
      const uint32_t key = keys[i];
      keys[kept] = key;  // kept <= i: never overwrites a key not yet read
      kept += ((key >> Shift) & 0xFFu) == digit;
    }
    candidates = kept;
  }
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
  // Radix select of the k-th largest key, most significant byte first. `remaining` counts how many of the
  // k kept entries must still come from keys that share the prefix found so far. After each pass only the
  // keys with that prefix can matter, so they are compacted to the front of `keys`: one pass over the row
  // and then passes over ever fewer candidates, instead of four passes over the row.
  int64_t candidates = K;
  int64_t remaining = rule.k;
  uint32_t prefix = 0;
  RadixPass<E, 24>(row, keys, candidates, remaining, prefix);
  RadixPass<E, 16>(row, keys, candidates, remaining, prefix);
  RadixPass<E, 8>(row, keys, candidates, remaining, prefix);
  RadixPass<E, 0>(row, keys, candidates, remaining, prefix);
  result.cutoff = prefix;
  result.ties = remaining;
  return result;
}

// Whether entry i (key `key`) is kept, consuming one tie when it equals the cutoff; branch-free.
inline bool Keeps(uint32_t key, const Cutoff& cut, int64_t& ties) {
  const bool above = key > cut.cutoff;
  const bool tie = (key == cut.cutoff) & (ties > 0);
  ties -= tie;
  return above | tie;
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
  int64_t ties = cut.ties;
  for (int64_t i = 0; i < K; ++i) {
    // Written unconditionally at the next free slot (count <= i < K), kept only if the slot advances.
    kept_indices[count] = static_cast<int32_t>(i);
    kept_values[count] = ValueAt<E>(row, i);
    count += Keeps(KeyAt<E>(row, i), cut, ties);
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
