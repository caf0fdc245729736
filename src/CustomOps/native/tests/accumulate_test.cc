#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "element_convert.h"
#include "reference.h"
#include "sparseonnx/kernels.h"

namespace sparseonnx::test {
namespace {

// Restores the instruction set chosen at load when a test ends.
struct IsaScope {
  Isa saved = ActiveIsa();
  ~IsaScope() { SetActiveIsa(saved); }
};

std::vector<Isa> AvailableIsas() {
  std::vector<Isa> isas;
  IsaScope scope;
  for (Isa isa : {Isa::kScalar, Isa::kAvx2, Isa::kAvx512})
    if (SetActiveIsa(isa)) isas.push_back(isa);
  return isas;
}

TEST(Accumulate, ReportsTheInstructionSetsInUse) {
  const auto isas = AvailableIsas();
  ASSERT_FALSE(isas.empty());
  EXPECT_EQ(isas.front(), Isa::kScalar);
  std::printf("kernels available on this CPU:");
  for (Isa isa : isas) std::printf(" %s", IsaName(isa));
  std::printf(" (detected best: %s)\n", IsaName(DetectedIsa()));
}

// Every instruction set gives bitwise identical y, reading B only inside its bounds (guard pages on both
// B and y catch overruns), for odd widths, offsets and row counts, in every element type.
TEST(Accumulate, EveryInstructionSetMatchesScalarBitForBitWithinBounds) {
  IsaScope scope;
  std::mt19937 random(11);
  std::normal_distribution<float> normal;
  const auto isas = AvailableIsas();
  for (ElementType type : {ElementType::kFloat32, ElementType::kFloat16, ElementType::kBFloat16}) {
    for (int64_t ldb : {1, 5, 16, 33, 100, 257}) {
      const int64_t K = 23;
      GuardedBuffer B(static_cast<size_t>(K * ldb) * ElementSize(type));
      for (int64_t i = 0; i < K * ldb; ++i) {
        const float v = normal(random);
        if (type == ElementType::kFloat32) static_cast<float*>(B.data())[i] = v;
        else if (type == ElementType::kFloat16) static_cast<uint16_t*>(B.data())[i] = detail::FloatToFloat16(v);
        else static_cast<uint16_t*>(B.data())[i] = detail::FloatToBFloat16(v);
      }
      for (size_t count : {size_t{0}, size_t{1}, size_t{3}, size_t{4}, size_t{5}, size_t{9}, size_t{23}}) {
        std::vector<int32_t> rows(count);
        std::vector<float> coef(count);
        for (size_t r = 0; r < count; ++r) {
          rows[r] = static_cast<int32_t>(random() % K);
          coef[r] = normal(random);
        }
        if (count > 0) rows.back() = K - 1;  // always touch the last row, right before the guard page
        for (int64_t n0 : {int64_t{0}, ldb / 3}) {
          const int64_t n = ldb - n0;  // up to the last column
          std::vector<float> initial(static_cast<size_t>(n));
          for (auto& v : initial) v = normal(random);
          std::vector<uint32_t> expected_bits;
          for (Isa isa : isas) {
            ASSERT_TRUE(SetActiveIsa(isa));
            GuardedBuffer y(static_cast<size_t>(n) * sizeof(float));
            std::memcpy(y.data(), initial.data(), static_cast<size_t>(n) * sizeof(float));
            AccumulateRows(coef.data(), rows.data(), count, B.data(), type, ldb, n0, n, static_cast<float*>(y.data()));
            std::vector<uint32_t> bits(static_cast<size_t>(n));
            std::memcpy(bits.data(), y.data(), bits.size() * sizeof(uint32_t));
            if (expected_bits.empty() && isa == Isa::kScalar) {
              expected_bits = bits;
              // The scalar result itself is the contract: one FMA per row, in row order.
              const auto b = ToFloats(B.data(), type, static_cast<size_t>(K * ldb));
              for (int64_t j = 0; j < n; ++j) {
                float v = initial[j];
                for (size_t r = 0; r < count; ++r) v = std::fma(coef[r], b[rows[r] * ldb + n0 + j], v);
                ASSERT_EQ(detail::FloatBits(v), bits[j]);
              }
            } else {
              ASSERT_EQ(bits, expected_bits) << IsaName(isa) << " " << ElementTypeName(type) << " ldb=" << ldb
                                             << " count=" << count << " n0=" << n0;
            }
          }
        }
      }
    }
  }
}

TEST(Accumulate, NaNAndInfinityPropagate) {
  IsaScope scope;
  for (Isa isa : AvailableIsas()) {
    ASSERT_TRUE(SetActiveIsa(isa));
    const std::vector<float> B(40, 1.f);
    const std::vector<int32_t> rows = {0, 1, 2, 3};
    const std::vector<float> coef = {1.f, std::numeric_limits<float>::quiet_NaN(), 2.f, 3.f};
    std::vector<float> y(40, 0.f);
    AccumulateRows(coef.data(), rows.data(), 4, B.data(), ElementType::kFloat32, 10, 0, 10, y.data());
    for (int j = 0; j < 10; ++j) EXPECT_TRUE(std::isnan(y[j])) << IsaName(isa);
    const std::vector<float> infinite = {std::numeric_limits<float>::infinity()};
    std::vector<float> z(10, 0.f);
    AccumulateRows(infinite.data(), rows.data(), 1, B.data(), ElementType::kFloat32, 10, 0, 10, z.data());
    for (int j = 0; j < 10; ++j) EXPECT_TRUE(std::isinf(z[j])) << IsaName(isa);
  }
}

TEST(Accumulate, StoreFloatsConvertsAlikeOnEveryInstructionSet) {
  IsaScope scope;
  std::mt19937 random(13);
  std::vector<float> values(1037);
  for (auto& v : values) v = detail::BitsToFloat(random());
  values[0] = std::numeric_limits<float>::quiet_NaN();
  for (ElementType type : {ElementType::kFloat16, ElementType::kBFloat16}) {
    std::vector<uint16_t> expected;
    for (Isa isa : AvailableIsas()) {
      ASSERT_TRUE(SetActiveIsa(isa));
      GuardedBuffer out(values.size() * 2);
      StoreFloats(values.data(), static_cast<int64_t>(values.size()), type, out.data());
      std::vector<uint16_t> got(static_cast<const uint16_t*>(out.data()), static_cast<const uint16_t*>(out.data()) + values.size());
      if (expected.empty()) expected = got;
      else ASSERT_EQ(got, expected) << IsaName(isa) << " " << ElementTypeName(type);
    }
  }
}


}  // namespace
}  // namespace sparseonnx::test
