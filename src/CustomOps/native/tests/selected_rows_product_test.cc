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

struct Case {
  int64_t M, K, N;
  SelectionRule rule;
  ElementType type;
};

// Selects every row of A as the op does, runs SelectedRowsProduct and returns Y as floats.
std::vector<float> RunProduct(const Case& c, const std::vector<float>& A, const void* B_raw, const ParallelFor& parallel_for,
                              CountingScratch& scratch) {
  std::vector<std::vector<int32_t>> indices(c.M, std::vector<int32_t>(c.K));
  std::vector<std::vector<float>> values(c.M, std::vector<float>(c.K));
  std::vector<size_t> counts(c.M);
  std::vector<uint32_t> keys(c.K);
  std::vector<int32_t> position(c.K, -1);
  for (int64_t m = 0; m < c.M; ++m) {
    counts[m] = SelectRow(A.data() + m * c.K, ElementType::kFloat32, c.K, c.rule, indices[m].data(), values[m].data(), keys.data());
    for (size_t j = 0; j < counts[m]; ++j) position[indices[m][j]] = 0;
  }
  std::vector<int32_t> rows;
  for (int64_t i = 0; i < c.K; ++i)
    if (position[i] == 0) {
      position[i] = static_cast<int32_t>(rows.size());
      rows.push_back(static_cast<int32_t>(i));
    }
  std::vector<float> coef(static_cast<size_t>(c.M) * rows.size(), 0.f);
  for (int64_t m = 0; m < c.M; ++m)
    for (size_t j = 0; j < counts[m]; ++j) coef[m * rows.size() + position[indices[m][j]]] = values[m][j];
  GuardedBuffer Y(static_cast<size_t>(c.M * c.N) * ElementSize(c.type));
  SelectedRows selected{rows.data(), rows.size(), coef.data(), c.M};
  SelectedRowsProduct(selected, B_raw, c.type, c.N, Y.data(), parallel_for, scratch);
  return ToFloats(Y.data(), c.type, static_cast<size_t>(c.M * c.N));
}

TEST(SelectedRowsProduct, MatchesTheReferenceWithinTheFloat32ErrorBound) {
  std::mt19937 random(17);
  std::normal_distribution<float> normal;
  const std::vector<Case> cases = {
      {1, 64, 96, SelectionRule::TopK(32), ElementType::kFloat32},
      {1, 4099, 37, SelectionRule::TopK(2049), ElementType::kFloat32},  // several partitions
      {1, 300, 1, SelectionRule::TopK(1), ElementType::kFloat32},
      {1, 300, 2049, SelectionRule::TopK(300), ElementType::kFloat32},
      {3, 513, 130, SelectionRule::TopK(100), ElementType::kFloat32},
      {5, 200, 17, SelectionRule::Threshold(0.8f), ElementType::kFloat32},
      {2, 1000, 64, SelectionRule::TopK(250), ElementType::kFloat16},
      {2, 1000, 65, SelectionRule::TopK(250), ElementType::kBFloat16},
      {16, 128, 33, SelectionRule::TopK(7), ElementType::kFloat32},
  };
  for (const auto& c : cases) {
    std::vector<float> A(static_cast<size_t>(c.M * c.K));
    for (auto& v : A) v = normal(random);
    // B is stored in c.type; the reference uses the same (rounded) values.
    std::vector<uint16_t> B16(static_cast<size_t>(c.K * c.N));
    std::vector<float> B(static_cast<size_t>(c.K * c.N));
    for (size_t i = 0; i < B.size(); ++i) {
      B[i] = normal(random);
      if (c.type == ElementType::kFloat16) B16[i] = detail::FloatToFloat16(B[i]), B[i] = detail::Float16ToFloat(B16[i]);
      if (c.type == ElementType::kBFloat16) B16[i] = detail::FloatToBFloat16(B[i]), B[i] = detail::BFloat16ToFloat(B16[i]);
    }
    const void* B_raw = c.type == ElementType::kFloat32 ? static_cast<const void*>(B.data()) : B16.data();
    CountingScratch scratch;
    const auto Y = RunProduct(c, A, B_raw, SerialFor(), scratch);
    EXPECT_EQ(scratch.live, 0) << "scratch leaked";
    const auto expected = ReferenceProduct(A, B, c.M, c.K, c.N, c.rule);
    auto bound = ErrorBound(A, B, c.M, c.K, c.N, c.rule);
    // A 16-bit output adds one rounding of its own.
    const double output_rounding = c.type == ElementType::kFloat16 ? std::ldexp(1.0, -11) : c.type == ElementType::kBFloat16 ? std::ldexp(1.0, -8) : 0.0;
    int shown = 0;
    for (size_t i = 0; i < Y.size(); ++i) {
      const double tolerance = bound[i] + output_rounding * std::fabs(expected[i]);
      if (std::fabs(Y[i] - expected[i]) > tolerance && shown++ < 5)
        ADD_FAILURE() << "M=" << c.M << " K=" << c.K << " N=" << c.N << " " << ElementTypeName(c.type) << ": Y[" << i / c.N
                      << "][" << i % c.N << "] = " << Y[i] << ", reference " << expected[i] << " (tolerance " << tolerance << ")";
    }
  }
}

TEST(SelectedRowsProduct, ResultDoesNotDependOnTheNumberOfThreads) {
  std::mt19937 random(19);
  std::normal_distribution<float> normal;
  const Case c{2, 2048, 300, SelectionRule::TopK(700), ElementType::kFloat32};
  std::vector<float> A(static_cast<size_t>(c.M * c.K)), B(static_cast<size_t>(c.K * c.N));
  for (auto& v : A) v = normal(random);
  for (auto& v : B) v = normal(random);
  CountingScratch scratch;
  const auto serial = RunProduct(c, A, B.data(), SerialFor(), scratch);
  for (int threads : {2, 3, 8}) {
    const auto parallel = RunProduct(c, A, B.data(), ThreadedFor(threads), scratch);
    ASSERT_EQ(0, std::memcmp(serial.data(), parallel.data(), serial.size() * sizeof(float))) << threads << " threads";
  }
  EXPECT_EQ(scratch.live, 0);
}

TEST(SelectedRowsProduct, NothingSelectedGivesZeros) {
  const Case c{2, 16, 8, SelectionRule::Threshold(10.f), ElementType::kFloat32};
  std::vector<float> A(32, 1.f), B(128, 1.f);
  CountingScratch scratch;
  const auto Y = RunProduct(c, A, B.data(), SerialFor(), scratch);
  for (float y : Y) EXPECT_EQ(detail::FloatBits(y), 0u);
}

TEST(SelectedRowsProduct, NaNInAKeptEntryPropagatesAndDroppedRowsOfBAreNotRead) {
  // A keeps entries 0 and 2; row 1 of B is all NaN and must not matter, row 2's entry of A is NaN.
  const Case c{1, 3, 4, SelectionRule::TopK(2), ElementType::kFloat32};
  const float nan = std::numeric_limits<float>::quiet_NaN();
  std::vector<float> A = {5.f, 0.1f, nan};
  std::vector<float> B = {1.f, 1.f, 1.f, 1.f, nan, nan, nan, nan, 1.f, 1.f, 1.f, 1.f};
  CountingScratch scratch;
  auto Y = RunProduct(c, A, B.data(), SerialFor(), scratch);
  for (float y : Y) EXPECT_TRUE(std::isnan(y));
  A = {5.f, 0.1f, 2.f};
  Y = RunProduct(c, A, B.data(), SerialFor(), scratch);
  for (float y : Y) EXPECT_EQ(y, 7.f);
}

}  // namespace
}  // namespace sparseonnx::test
