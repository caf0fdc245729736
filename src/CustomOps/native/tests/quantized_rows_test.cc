// The quantized-weight products against a naive dequantize-then-multiply reference. The test packs its own
// weights from logical codes q[k][n], scales and zero points, following the layout as quantized_rows.h
// documents it, so a kernel that read the layout differently from the documentation fails here.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "element_convert.h"
#include "reference.h"
#include "sparseonnx/kernels.h"
#include "sparseonnx/quantized_rows.h"

namespace sparseonnx::test {
namespace {

struct IsaScope {
  Isa saved = ActiveIsa();
  ~IsaScope() { SetActiveIsa(saved); }
};

// A weight in logical form, and its packed layout.
struct TestWeight {
  int bits;
  int64_t K, N, block_size;
  std::vector<int> q;            // [K][N]
  std::vector<float> scale;      // [blocks][N]
  std::vector<float> zero;       // [blocks][N], or empty (symmetric)
  bool float16_scales = false;   // scales stored as float16 (their values are float16 numbers)
  std::vector<uint8_t> codes;    // packed
  std::vector<float> scales, zero_points;
  std::vector<uint16_t> scales16;

  int64_t Blocks() const { return (K + block_size - 1) / block_size; }
  int64_t Padded() const { return (N + 63) / 64 * 64; }
  float Scale(int64_t k, int64_t n) const { return scale[(k / block_size) * N + n]; }
  float Zero(int64_t k, int64_t n) const { return zero.empty() ? static_cast<float>(1 << (bits - 1)) : zero[(k / block_size) * N + n]; }
  // W[k][n] = s * (q - z), rounded to float as the documentation defines it.
  double Weight(int64_t k, int64_t n) const { return static_cast<float>(Scale(k, n) * (static_cast<float>(q[k * N + n]) - Zero(k, n))); }

  QuantizedRows View() const {
    QuantizedRows w;
    w.bits = bits;
    w.K = K;
    w.N = N;
    w.block_size = block_size;
    w.codes = codes.data();
    w.scales = float16_scales ? static_cast<const void*>(scales16.data()) : scales.data();
    w.float16_scales = float16_scales;
    w.zero_points = zero_points.empty() ? nullptr : zero_points.data();
    return w;
  }
};

// Writes t's packed arrays from its logical codes, scales and zero points, as quantized_rows.h describes.
void Pack(TestWeight& t) {
  const int64_t padded = t.Padded(), row_bytes = padded * t.bits / 8;
  t.codes.assign(static_cast<size_t>(t.K * row_bytes), 0);
  for (int64_t k = 0; k < t.K; ++k)
    for (int64_t n = 0; n < t.N; ++n) {
      uint8_t* row = t.codes.data() + k * row_bytes;
      const int v = t.q[k * t.N + n];
      const int64_t chunk = n / 64, j = n % 64;
      if (t.bits == 8) {
        row[chunk * 64 + j] = static_cast<uint8_t>(v);
      } else {
        const int64_t within = j % 32, group = within / 8;
        const int64_t byte = (group == 1 ? 2 : group == 2 ? 1 : group) * 8 + within % 8;  // groups 1 and 2 swapped
        row[chunk * 32 + byte] |= static_cast<uint8_t>(j < 32 ? v : v << 4);
      }
    }
  t.scales.assign(static_cast<size_t>(t.Blocks() * padded), 0.f);
  t.zero_points.assign(t.zero.empty() ? 0 : t.scales.size(), 0.f);
  for (int64_t b = 0; b < t.Blocks(); ++b)
    for (int64_t n = 0; n < t.N; ++n) {
      t.scales[static_cast<size_t>(b * padded + n)] = t.scale[b * t.N + n];
      if (!t.zero.empty()) t.zero_points[static_cast<size_t>(b * padded + n)] = t.zero[b * t.N + n];
    }
  t.scales16.resize(t.scales.size());
  for (size_t i = 0; i < t.scales.size(); ++i) t.scales16[i] = detail::FloatToFloat16(t.scales[i]);
}

TestWeight MakeWeight(int bits, int64_t K, int64_t N, int64_t block_size, bool with_zero_points, std::mt19937& random,
                      bool float16_scales = false) {
  TestWeight t{bits, K, N, block_size, {}, {}, {}, float16_scales, {}, {}, {}, {}};
  std::uniform_int_distribution<int> code(0, (1 << bits) - 1);
  std::uniform_real_distribution<float> scale(0.01f, 0.1f), zero(0.f, static_cast<float>((1 << bits) - 1));
  t.q.resize(static_cast<size_t>(K * N));
  for (auto& v : t.q) v = code(random);
  t.scale.resize(static_cast<size_t>(t.Blocks() * N));
  for (auto& v : t.scale) v = float16_scales ? detail::Float16ToFloat(detail::FloatToFloat16(scale(random))) : scale(random);
  if (with_zero_points) {
    t.zero.resize(t.scale.size());
    for (auto& v : t.zero) v = std::round(zero(random));
  }
  Pack(t);
  return t;
}

// Selects each row with SelectRow and multiplies by the kernel under test.
std::vector<float> SparseProduct(const TestWeight& t, QuantAccuracy accuracy, const std::vector<float>& A, int64_t M,
                                 const SelectionRule& rule, const std::vector<float>& bias, int threads) {
  std::vector<int32_t> indices(static_cast<size_t>(M * t.K));
  std::vector<float> values(static_cast<size_t>(M * t.K));
  std::vector<uint32_t> keys(static_cast<size_t>(t.K));
  std::vector<size_t> counts(static_cast<size_t>(M));
  for (int64_t m = 0; m < M; ++m)
    counts[m] = SelectRow(A.data() + m * t.K, ElementType::kFloat32, t.K, rule, indices.data() + m * t.K, values.data() + m * t.K, keys.data());
  GuardedBuffer Y(static_cast<size_t>(M * t.N) * sizeof(float));
  CountingScratch scratch;
  QuantizedSelectedProduct(t.View(), accuracy, M, indices.data(), values.data(), counts.data(), bias.empty() ? nullptr : bias.data(),
                           static_cast<float*>(Y.data()), threads == 1 ? SerialFor() : ThreadedFor(threads), scratch);
  EXPECT_EQ(scratch.live.load(), 0);
  const float* y = static_cast<const float*>(Y.data());
  return std::vector<float>(y, y + M * t.N);
}

// The reference: kFloat, sum over kept i of A[m][i] * W[i][n] in double; kInt8, each block of the masked row
// quantized to int8 (absmax / 127, round half to even), integer sums, then scaled, in double. The error
// bound: the kernels form s * (sum a q - z sum a), so it counts |a| * (|s q| + |s z|), not |a w|, plus the
// rounding of the bias addition.
void Reference(const TestWeight& t, QuantAccuracy accuracy, const std::vector<float>& A, int64_t M, const SelectionRule& rule,
               const std::vector<float>& bias, std::vector<double>& expected, std::vector<double>& bound) {
  expected.assign(static_cast<size_t>(M * t.N), 0.0);
  bound.assign(static_cast<size_t>(M * t.N), 0.0);
  for (int64_t m = 0; m < M; ++m) {
    std::vector<float> row(A.begin() + m * t.K, A.begin() + (m + 1) * t.K);
    const auto mask = ReferenceMask(row, rule);
    for (int64_t k = 0; k < t.K; ++k)
      if (!mask[k]) row[k] = 0.f;
    bool finite = true;
    for (float v : row) finite = finite && std::isfinite(v);
    std::vector<double> effective(row.begin(), row.end());  // what each kept entry counts as
    if (accuracy == QuantAccuracy::kInt8 && finite)
      for (int64_t b = 0; b < t.Blocks(); ++b) {
        float absmax = 0.f;
        for (int64_t k = b * t.block_size; k < std::min(t.K, (b + 1) * t.block_size); ++k) absmax = std::max(absmax, std::abs(row[k]));
        for (int64_t k = b * t.block_size; k < std::min(t.K, (b + 1) * t.block_size); ++k)
          effective[k] = absmax > 0 ? std::nearbyint(row[k] * (127.f / absmax)) * static_cast<double>(absmax / 127.f) : 0.0;
      }
    for (int64_t n = 0; n < t.N; ++n) {
      double sum = bias.empty() ? 0.0 : bias[n], magnitude = 0.0;
      for (int64_t k = 0; k < t.K; ++k) {
        if (!mask[k]) continue;
        sum += accuracy == QuantAccuracy::kInt8 && finite
                   ? effective[k] * static_cast<double>(t.Scale(k, n)) * (t.q[k * t.N + n] - static_cast<double>(t.Zero(k, n)))
                   : effective[k] * t.Weight(k, n);
        magnitude += std::abs(effective[k]) * 0.1 * ((1 << t.bits) + (1 << t.bits));
      }
      expected[m * t.N + n] = sum;
      bound[m * t.N + n] = 4.0 * static_cast<double>(t.K + 2) * std::ldexp(1.0, -24) * magnitude +
                           std::ldexp(std::abs(sum) + (bias.empty() ? 0.0 : std::abs(bias[n])), -23) + 1e-30;
    }
  }
}

void ExpectMatches(const TestWeight& t, QuantAccuracy accuracy, const std::vector<float>& A, int64_t M, const SelectionRule& rule,
                   const std::vector<float>& bias, const std::string& what) {
  std::vector<double> expected, bound;
  Reference(t, accuracy, A, M, rule, bias, expected, bound);
  for (Isa isa : {Isa::kScalar, Isa::kAvx2, Isa::kAvx512}) {
    if (!SetActiveIsa(isa)) continue;
    for (int threads : {1, 3}) {
      const auto y = SparseProduct(t, accuracy, A, M, rule, bias, threads);
      for (size_t i = 0; i < y.size(); ++i) {
        if (std::isnan(expected[i])) {
          ASSERT_TRUE(std::isnan(y[i])) << what << " " << IsaName(isa) << " at " << i;
        } else if (std::isinf(expected[i])) {
          ASSERT_EQ(static_cast<double>(y[i]), expected[i]) << what << " " << IsaName(isa) << " at " << i;
        } else {
          ASSERT_NEAR(y[i], expected[i], bound[i]) << what << " " << IsaName(isa) << " threads " << threads << " at " << i;
        }
      }
    }
  }
}

std::vector<float> Normal(std::mt19937& random, size_t count) {
  std::normal_distribution<float> normal;
  std::vector<float> v(count);
  for (auto& x : v) x = normal(random);
  return v;
}

// Both accuracies, 4 and 8 bits, with and without zero points, odd N (a partial last chunk), K not a
// multiple of the block, k = 1, K / 3 and K, threshold mode, M 1 and 5, over several column tasks.
TEST(QuantizedSelectedProduct, MatchesTheDequantizedReference) {
  IsaScope scope;
  std::mt19937 random(41);
  struct Case { int bits; int64_t block; bool zero_points; bool float16_scales = false; };
  const Case cases[] = {{4, 32, false}, {4, 16, true}, {4, 128, true}, {4, 128, false}, {8, 32, true}, {8, 64, false}, {4, 32, false, true}, {8, 16, true, true}};
  for (const Case& c : cases)
    for (int64_t K : {int64_t{1}, int64_t{77}, int64_t{600}})
      for (int64_t N : {int64_t{301}, int64_t{2113}}) {
        if (K == 600 && N == 2113 && c.block != 32) continue;  // the large shape once per bit width is enough
        const TestWeight t = MakeWeight(c.bits, K, N, c.block, c.zero_points, random, c.float16_scales);
        for (int64_t M : {int64_t{1}, int64_t{5}}) {
          const auto A = Normal(random, static_cast<size_t>(M * K));
          const auto bias = M == 5 ? Normal(random, static_cast<size_t>(N)) : std::vector<float>{};
          for (QuantAccuracy accuracy : {QuantAccuracy::kFloat, QuantAccuracy::kInt8}) {
            for (int64_t k : {int64_t{1}, std::max<int64_t>(1, K / 3), K}) {
              const std::string what = "bits " + std::to_string(c.bits) + " block " + std::to_string(c.block) + " K " + std::to_string(K) +
                                       " N " + std::to_string(N) + " M " + std::to_string(M) + " k " + std::to_string(k) +
                                       (c.float16_scales ? " float16 scales" : "") + " accuracy " +
                                       std::to_string(static_cast<int>(accuracy));
              ExpectMatches(t, accuracy, A, M, SelectionRule::TopK(k), bias, what);
            }
            ExpectMatches(t, accuracy, A, M, SelectionRule::Threshold(0.7f), bias, "threshold");
          }
        }
      }
}

// Ties, signed zeros, and Inf or NaN in A: NaN is kept and propagates, Inf times a zero weight is NaN and
// times any other weight is an infinity, exactly as the dequantized product gives (in both accuracies:
// such a row is multiplied in float32).
TEST(QuantizedSelectedProduct, HandlesTiesZerosAndNonFiniteInputsAsTheReference) {
  IsaScope scope;
  std::mt19937 random(43);
  const int64_t K = 64, N = 140;
  TestWeight t = MakeWeight(4, K, N, 32, false, random);
  std::vector<float> A(static_cast<size_t>(3 * K), 0.5f);         // row 0: all tied
  for (int64_t i = 0; i < K; ++i) A[K + i] = i % 2 ? -0.f : 0.f;  // row 1: signed zeros
  for (int64_t i = 0; i < K; ++i) A[2 * K + i] = 0.25f * static_cast<float>(i % 7);
  A[2 * K + 5] = std::numeric_limits<float>::infinity();  // row 2: Inf and NaN
  A[2 * K + 9] = std::numeric_limits<float>::quiet_NaN();
  for (QuantAccuracy accuracy : {QuantAccuracy::kFloat, QuantAccuracy::kInt8})
    for (int64_t k : {int64_t{1}, int64_t{13}, K}) ExpectMatches(t, accuracy, A, 3, SelectionRule::TopK(k), {}, "special k " + std::to_string(k));
  // A zero weight where the Inf lands: Inf * 0 must be NaN in that column only.
  std::vector<float> inf_row(static_cast<size_t>(K), 0.1f);
  inf_row[5] = std::numeric_limits<float>::infinity();
  t.q[5 * N + 3] = 8;
  Pack(t);
  ExpectMatches(t, QuantAccuracy::kInt8, inf_row, 1, SelectionRule::TopK(K), {}, "Inf on a zero weight");
}

// The prefill product against the same reference: kFloat (dequantized panels through the blocked GEMM) for
// both bit widths, and kInt8 (the integer GEMM for 4 bits, float32 for 8), symmetric groups of 32 and
// zero-point groups of 16, K not a multiple of the block, row counts that leave partial micro-tiles, a row
// with Inf and NaN, and N spanning several column tiles with a partial last chunk.
TEST(QuantizedDenseProduct, MatchesTheDequantizedReference) {
  IsaScope scope;
  std::mt19937 random(47);
  struct Case { int bits; int64_t block; bool zero_points; int64_t M, K, N; };
  const Case cases[] = {{4, 32, true, 19, 300, 333}, {8, 16, false, 33, 257, 129}, {4, 32, false, 1, 5, 17}, {8, 64, false, 40, 520, 700},
                        {4, 64, false, 70, 200, 601}, {4, 16, false, 6, 96, 64},   {4, 128, true, 23, 260, 300}};
  for (const Case& c : cases)
    for (QuantAccuracy accuracy : {QuantAccuracy::kFloat, QuantAccuracy::kInt8}) {
      const TestWeight t = MakeWeight(c.bits, c.K, c.N, c.block, c.zero_points, random, c.K == 300);
      auto A = Normal(random, static_cast<size_t>(c.M * c.K));
      if (c.M > 3) {
        A[2 * c.K + 1] = std::numeric_limits<float>::infinity();
        A[2 * c.K + 2] = std::numeric_limits<float>::quiet_NaN();
      }
      const auto bias = Normal(random, static_cast<size_t>(c.N));
      std::vector<double> expected, bound;
      // 8-bit codes are multiplied in float32 at either level (the documented prefill semantics).
      const QuantAccuracy semantics = c.bits == 4 ? accuracy : QuantAccuracy::kFloat;
      Reference(t, semantics, A, c.M, SelectionRule::TopK(c.K), bias, expected, bound);
      const std::string what = "bits " + std::to_string(c.bits) + " block " + std::to_string(c.block) + " M " + std::to_string(c.M) +
                               " accuracy " + std::to_string(static_cast<int>(accuracy));
      for (Isa isa : {Isa::kScalar, Isa::kAvx2, Isa::kAvx512}) {
        if (!SetActiveIsa(isa)) continue;
        CountingScratch scratch;
        GuardedBuffer Y(static_cast<size_t>(c.M * c.N) * sizeof(float));
        QuantizedDenseProduct(t.View(), accuracy, A.data(), c.M, bias.data(), static_cast<float*>(Y.data()), ThreadedFor(3), scratch);
        EXPECT_EQ(scratch.live.load(), 0);
        const float* y = static_cast<const float*>(Y.data());
        for (size_t i = 0; i < expected.size(); ++i) {
          if (std::isnan(expected[i])) ASSERT_TRUE(std::isnan(y[i])) << what << " " << IsaName(isa) << " at " << i;
          else ASSERT_NEAR(y[i], expected[i], bound[i]) << what << " " << IsaName(isa) << " at " << i;
        }
      }
    }
}

// Prefill and decode at accuracy_level 4 compute the same integer sums: on the same rows (all kept) they
// agree to float32 rounding of the scaling, far inside the int8 quantization error.
TEST(QuantizedDenseProduct, Int8PrefillAgreesWithDecode) {
  IsaScope scope;
  std::mt19937 random(53);
  const TestWeight t = MakeWeight(4, 256, 200, 32, false, random, true);
  const int64_t M = 5;
  const auto A = Normal(random, static_cast<size_t>(M * t.K));
  for (Isa isa : {Isa::kScalar, Isa::kAvx2}) {
    if (!SetActiveIsa(isa)) continue;
    const auto decode = SparseProduct(t, QuantAccuracy::kInt8, A, M, SelectionRule::TopK(t.K), {}, 1);
    CountingScratch scratch;
    std::vector<float> prefill(static_cast<size_t>(M * t.N));
    QuantizedDenseProduct(t.View(), QuantAccuracy::kInt8, A.data(), M, nullptr, prefill.data(), SerialFor(), scratch);
    for (size_t i = 0; i < prefill.size(); ++i) ASSERT_NEAR(prefill[i], decode[i], 1e-5 * (1 + std::abs(decode[i]))) << IsaName(isa) << " at " << i;
  }
}

TEST(QuantLayout, SizesAndProblems) {
  EXPECT_EQ(QuantCodesBytes(4, 10, 129), size_t{10 * 96});
  EXPECT_EQ(QuantCodesBytes(8, 10, 128), size_t{10 * 128});
  EXPECT_EQ(QuantScaleCount(65, 200, 32), size_t{3 * 256});
  EXPECT_EQ(PermutedColumn(9), 17);
  EXPECT_EQ(PermutedColumn(PermutedColumn(13)), 13);
  EXPECT_EQ(QuantLayoutProblem(4, 10, 10, 32), nullptr);
  EXPECT_NE(QuantLayoutProblem(3, 10, 10, 32), nullptr);
  EXPECT_NE(QuantLayoutProblem(4, 10, 10, 24), nullptr);
  EXPECT_NE(QuantLayoutProblem(4, 10, 10, 8), nullptr);
  EXPECT_NE(QuantLayoutProblem(4, 0, 10, 32), nullptr);
}

}  // namespace
}  // namespace sparseonnx::test
