// Row selection for TopKSparseMatMul: which entries of a row of A are kept.
//
// Every element gets a 32-bit key: the bits of |float(a)|. For non-negative floats the bit pattern orders
// like the value, and NaN patterns sort above +Inf, so NaN ranks above every number (kept first, and it
// propagates like MatMul would); -0.0 and +0.0 both get key 0. Threshold mode keeps key > bits(t), which
// is |a| > t for numbers and true for NaN. Top-k finds the k-th largest key by radix select (8-bit digits,
// O(K) in all), keeps every key above it and the lowest-indexed entries equal to it.
#include <array>
#include <cmath>
#include <stdexcept>

#include "element_convert.h"
#include "sparseonnx/kernels.h"

namespace sparseonnx {
namespace {

using detail::BFloat16ToFloat;
using detail::Float16ToFloat;
using detail::FloatBits;

inline float ElementAsFloat(const void* row, ElementType type, int64_t i) {
  switch (type) {
    case ElementType::kFloat32:
      return static_cast<const float*>(row)[i];
    case ElementType::kFloat16:
      return Float16ToFloat(static_cast<const uint16_t*>(row)[i]);
    case ElementType::kBFloat16:
      return BFloat16ToFloat(static_cast<const uint16_t*>(row)[i]);
  }
  return 0.f;
}

inline uint32_t KeyOf(float value) { return FloatBits(value) & 0x7FFFFFFFu; }

// What a row keeps: every key above `cutoff`, and the first `ties` entries whose key equals it.
struct Cutoff {
  uint32_t cutoff = 0;
  int64_t ties = 0;
  bool keep_all = false;
};

Cutoff FindCutoff(const void* row, ElementType type, int64_t K, const SelectionRule& rule, uint32_t* keys) {
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
  for (int shift = 24; shift >= 0; shift -= 8) {
    std::array<int64_t, 256> histogram{};
    if (shift == 24) {
      for (int64_t i = 0; i < K; ++i) {
        keys[i] = KeyOf(ElementAsFloat(row, type, i));
        ++histogram[keys[i] >> 24];
      }
    } else {
      for (int64_t i = 0; i < candidates; ++i) ++histogram[(keys[i] >> shift) & 0xFFu];
    }
    int digit = 255;
    for (; digit > 0; --digit) {
      if (histogram[digit] >= remaining) break;
      remaining -= histogram[digit];
    }
    prefix |= static_cast<uint32_t>(digit) << shift;
    int64_t kept = 0;
    for (int64_t i = 0; i < candidates; ++i)
      if (((keys[i] >> shift) & 0xFFu) == static_cast<uint32_t>(digit)) keys[kept++] = keys[i];
    candidates = kept;
  }
  result.cutoff = prefix;
  result.ties = remaining;
  return result;
}

// Walks the row in index order calling keep(i) for every kept entry.
template <typename Keep>
void ForEachKept(const void* row, ElementType type, int64_t K, const Cutoff& cut, Keep keep) {
  if (cut.keep_all) {
    for (int64_t i = 0; i < K; ++i) keep(i);
    return;
  }
  int64_t ties = cut.ties;
  for (int64_t i = 0; i < K; ++i) {
    const uint32_t key = KeyOf(ElementAsFloat(row, type, i));
    if (key > cut.cutoff || (key == cut.cutoff && ties > 0 && ties--)) keep(i);
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
  const Cutoff cut = FindCutoff(row, type, K, rule, scratch);
  size_t count = 0;
  ForEachKept(row, type, K, cut, [&](int64_t i) {
    kept_indices[count] = static_cast<int32_t>(i);
    kept_values[count] = ElementAsFloat(row, type, i);
    ++count;
  });
  return count;
}

void MaskRow(const void* row, ElementType type, int64_t K, const SelectionRule& rule, void* masked_row,
             uint32_t* scratch) {
  CheckRule(rule, K);
  const Cutoff cut = FindCutoff(row, type, K, rule, scratch);
  if (cut.keep_all) {
    std::memcpy(masked_row, row, static_cast<size_t>(K) * ElementSize(type));
    return;
  }
  // One pass, element type known at compile time: kept entries copied bit for bit, dropped ones +0.0.
  int64_t ties = cut.ties;
  auto masked = [&](auto* out, const auto* in) {
    for (int64_t i = 0; i < K; ++i) {
      const uint32_t key = KeyOf(ElementAsFloat(row, type, i));
      const bool keep = key > cut.cutoff || (key == cut.cutoff && ties > 0 && ties--);
      out[i] = keep ? in[i] : 0;
    }
  };
  if (type == ElementType::kFloat32) masked(static_cast<uint32_t*>(masked_row), static_cast<const uint32_t*>(row));
  else masked(static_cast<uint16_t*>(masked_row), static_cast<const uint16_t*>(row));
}

}  // namespace sparseonnx
