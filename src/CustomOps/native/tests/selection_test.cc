#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>
#include <vector>

#include "element_convert.h"
#include "reference.h"
#include "sparseonnx/kernels.h"

namespace sparseonnx::test {
namespace {

const float kNaN = std::numeric_limits<float>::quiet_NaN();
const float kInf = std::numeric_limits<float>::infinity();

void ExpectSelectionOnActiveIsa(const std::vector<float>& row, const SelectionRule& rule, const std::string& what);

// Runs SelectRow and MaskRow on a row, on every instruction set this CPU has, and checks both against the
// reference mask.
void ExpectSelection(const std::vector<float>& row, const SelectionRule& rule, const std::string& what) {
  const Isa saved = ActiveIsa();
  for (Isa isa : {Isa::kScalar, Isa::kAvx2, Isa::kAvx512}) {
    if (!SetActiveIsa(isa)) continue;
    ExpectSelectionOnActiveIsa(row, rule, what + " (" + IsaName(isa) + ")");
  }
  SetActiveIsa(saved);
}

void ExpectSelectionOnActiveIsa(const std::vector<float>& row, const SelectionRule& rule, const std::string& what) {
  const int64_t K = static_cast<int64_t>(row.size());
  const auto expected = ReferenceMask(row, rule);
  std::vector<int32_t> indices(K + 1, -7);
  std::vector<float> values(K + 1);
  std::vector<uint32_t> scratch(K + 1);
  const size_t count = SelectRow(row.data(), ElementType::kFloat32, K, rule, indices.data(), values.data(), scratch.data());
  std::vector<bool> got(K, false);
  for (size_t j = 0; j < count; ++j) {
    ASSERT_GE(indices[j], 0) << what;
    ASSERT_LT(indices[j], K) << what;
    if (j > 0) {
      ASSERT_GT(indices[j], indices[j - 1]) << what << ": indices must ascend";
    }
    got[indices[j]] = true;
    const float original = row[indices[j]];
    ASSERT_EQ(detail::FloatBits(values[j]), detail::FloatBits(original)) << what << ": value of entry " << indices[j];
  }
  for (int64_t i = 0; i < K; ++i) ASSERT_EQ(got[i], expected[i]) << what << ": entry " << i << " = " << row[i];
  EXPECT_EQ(indices[K], -7) << what << ": wrote past the K entries the buffers hold";

  std::vector<float> masked(K);
  MaskRow(row.data(), ElementType::kFloat32, K, rule, masked.data(), scratch.data());
  for (int64_t i = 0; i < K; ++i)
    ASSERT_EQ(detail::FloatBits(masked[i]), expected[i] ? detail::FloatBits(row[i]) : 0u) << what << ": masked entry " << i;
}

TEST(Selection, TopKMatchesTheReferenceOnRandomRows) {
  std::mt19937 random(3);
  std::normal_distribution<float> normal;
  for (int64_t K : {1, 2, 3, 7, 16, 17, 100, 255, 256, 257, 1000, 4096, 4099}) {
    std::vector<float> row(K);
    for (auto& v : row) v = normal(random);
    for (int64_t k : {int64_t{1}, int64_t{2}, K / 3 + 1, K / 2, K - 1, K}) {
      if (k < 1 || k > K) continue;
      ExpectSelection(row, SelectionRule::TopK(k), "K=" + std::to_string(K) + " k=" + std::to_string(k));
    }
  }
}

TEST(Selection, TiesGoToTheLowerIndex) {
  const std::vector<float> row = {1.f, -2.f, 2.f, 0.5f, -2.f, 2.f, 1.f};
  ExpectSelection(row, SelectionRule::TopK(2), "two of four tied at 2");
  ExpectSelection(row, SelectionRule::TopK(5), "all 2s and the first 1");
  std::vector<int32_t> indices(7);
  std::vector<float> values(7);
  std::vector<uint32_t> scratch(7);
  ASSERT_EQ(SelectRow(row.data(), ElementType::kFloat32, 7, SelectionRule::TopK(2), indices.data(), values.data(), scratch.data()), 2u);
  EXPECT_EQ(indices[0], 1);
  EXPECT_EQ(indices[1], 2);
  std::vector<float> constant(33, 0.25f);
  ExpectSelection(constant, SelectionRule::TopK(10), "all equal");
}

TEST(Selection, NaNRanksFirstAndInfinityNext) {
  const std::vector<float> row = {1.f, kInf, 3.f, kNaN, -kInf, 2.f, -kNaN, 0.f};
  for (int64_t k = 1; k <= 8; ++k) ExpectSelection(row, SelectionRule::TopK(k), "k=" + std::to_string(k));
  std::vector<int32_t> indices(8);
  std::vector<float> values(8);
  std::vector<uint32_t> scratch(8);
  ASSERT_EQ(SelectRow(row.data(), ElementType::kFloat32, 8, SelectionRule::TopK(2), indices.data(), values.data(), scratch.data()), 2u);
  EXPECT_EQ(indices[0], 3);
  EXPECT_EQ(indices[1], 6);
  EXPECT_TRUE(std::isnan(values[0]));
}

TEST(Selection, SignedZerosAreEqualAndDroppedByAZeroThreshold) {
  const std::vector<float> row = {-0.f, 0.f, -0.f, 1e-45f, -1e-45f, 0.f};
  ExpectSelection(row, SelectionRule::Threshold(0.f), "threshold 0 keeps only nonzero");
  ExpectSelection(row, SelectionRule::TopK(3), "k=3: the two subnormals, then the first zero (-0.0)");
  std::vector<int32_t> indices(6);
  std::vector<float> values(6);
  std::vector<uint32_t> scratch(6);
  SelectRow(row.data(), ElementType::kFloat32, 6, SelectionRule::TopK(3), indices.data(), values.data(), scratch.data());
  EXPECT_EQ(indices[0], 0);
  EXPECT_TRUE(std::signbit(values[0]));
}

TEST(Selection, ThresholdKeepsStrictlyGreaterMagnitudesAndNaN) {
  std::mt19937 random(5);
  std::uniform_real_distribution<float> uniform(-2.f, 2.f);
  std::vector<float> row(1001);
  for (auto& v : row) v = uniform(random);
  row[10] = 0.5f;
  row[11] = -0.5f;
  row[12] = kNaN;
  row[13] = -kInf;
  for (float t : {0.f, 0.1f, 0.5f, 1.99f, 5.f, kInf})
    ExpectSelection(row, SelectionRule::Threshold(t), "threshold " + std::to_string(t));
}

TEST(Selection, HalfAndBFloat16RowsSelectTheSameAsTheirFloatValues) {
  std::mt19937 random(9);
  for (ElementType type : {ElementType::kFloat16, ElementType::kBFloat16}) {
    std::vector<uint16_t> row(513);
    for (auto& h : row) h = static_cast<uint16_t>(random());
    row[7] = 0x7E00;  // NaN in both formats' quiet range
    const auto floats = ToFloats(row.data(), type, row.size());
    for (const auto& rule : {SelectionRule::TopK(1), SelectionRule::TopK(100), SelectionRule::TopK(513), SelectionRule::Threshold(0.75f)}) {
      const auto expected = ReferenceMask(floats, rule);
      std::vector<int32_t> indices(513);
      std::vector<float> values(513);
      std::vector<uint32_t> scratch(513);
      const size_t count = SelectRow(row.data(), type, 513, rule, indices.data(), values.data(), scratch.data());
      size_t expected_count = 0;
      for (bool b : expected) expected_count += b;
      ASSERT_EQ(count, expected_count);
      for (size_t j = 0; j < count; ++j) {
        ASSERT_TRUE(expected[indices[j]]);
        ASSERT_EQ(detail::FloatBits(values[j]), detail::FloatBits(floats[indices[j]]));
      }
      std::vector<uint16_t> masked(513);
      MaskRow(row.data(), type, 513, rule, masked.data(), scratch.data());
      for (size_t i = 0; i < 513; ++i) ASSERT_EQ(masked[i], expected[i] ? row[i] : 0) << i;
    }
  }
}

TEST(Selection, InvalidRulesAreRejected) {
  std::vector<float> row(4, 1.f);
  std::vector<int32_t> indices(4);
  std::vector<float> values(4);
  std::vector<uint32_t> scratch(4);
  EXPECT_THROW(SelectRow(row.data(), ElementType::kFloat32, 4, SelectionRule::TopK(0), indices.data(), values.data(), scratch.data()), std::invalid_argument);
  EXPECT_THROW(SelectRow(row.data(), ElementType::kFloat32, 4, SelectionRule::TopK(5), indices.data(), values.data(), scratch.data()), std::invalid_argument);
  EXPECT_THROW(SelectRow(row.data(), ElementType::kFloat32, 4, SelectionRule::Threshold(-1.f), indices.data(), values.data(), scratch.data()), std::invalid_argument);
  EXPECT_THROW(SelectRow(row.data(), ElementType::kFloat32, 4, SelectionRule::Threshold(kNaN), indices.data(), values.data(), scratch.data()), std::invalid_argument);
}

}  // namespace
}  // namespace sparseonnx::test
