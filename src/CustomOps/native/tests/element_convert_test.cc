#include <gtest/gtest.h>
#include <immintrin.h>

#include <cmath>
#include <random>

#include "element_convert.h"

namespace sparseonnx::detail {
namespace {

bool HasF16c() {
  __builtin_cpu_init();
  return __builtin_cpu_supports("f16c");
}

__attribute__((target("f16c"))) uint16_t HardwareToHalf(float f) {
  return static_cast<uint16_t>(_cvtss_sh(f, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
}

__attribute__((target("f16c"))) float HardwareFromHalf(uint16_t h) { return _cvtsh_ss(h); }

TEST(ElementConvert, EveryHalfConvertsToFloatExactlyAndBack) {
  for (uint32_t h = 0; h <= 0xFFFF; ++h) {
    const float f = Float16ToFloat(static_cast<uint16_t>(h));
    if (HasF16c()) {
      const float expected = HardwareFromHalf(static_cast<uint16_t>(h));
      ASSERT_EQ(FloatBits(f), FloatBits(expected)) << "half 0x" << std::hex << h;
    }
    if (!std::isnan(f)) {
      ASSERT_EQ(FloatToFloat16(f), h) << "half 0x" << std::hex << h;
    }
  }
}

TEST(ElementConvert, FloatToHalfRoundsLikeTheHardware) {
  if (!HasF16c()) GTEST_SKIP() << "no F16C on this CPU to compare against";
  std::mt19937 random(1);
  for (int i = 0; i < 2'000'000; ++i) {
    uint32_t bits = random();
    if (i % 3 == 0) bits = (bits & 0x807FFFFFu) | ((100u + random() % 50u) << 23);  // around the half range
    const float f = BitsToFloat(bits);
    ASSERT_EQ(FloatToFloat16(f), HardwareToHalf(f)) << "float bits 0x" << std::hex << bits;
  }
  for (float f : {65504.f, 65519.99f, 65520.f, 1e9f, 5.96046448e-8f, 2.98023224e-8f, 2.98023259e-8f, -0.f})
    EXPECT_EQ(FloatToFloat16(f), HardwareToHalf(f)) << f;
}

TEST(ElementConvert, BFloat16RoundsToNearestEvenAndKeepsNaN) {
  EXPECT_EQ(FloatToBFloat16(1.f), 0x3F80);
  EXPECT_EQ(FloatToBFloat16(BitsToFloat(0x3F808000u)), 0x3F80);  // tie, even stays
  EXPECT_EQ(FloatToBFloat16(BitsToFloat(0x3F818000u)), 0x3F82);  // tie, odd rounds up
  EXPECT_EQ(FloatToBFloat16(BitsToFloat(0x3F808001u)), 0x3F81);
  EXPECT_TRUE(std::isnan(BFloat16ToFloat(FloatToBFloat16(std::nanf("")))));
  EXPECT_EQ(FloatToBFloat16(-INFINITY), 0xFF80);
  for (uint32_t h = 0; h <= 0xFFFF; ++h) {
    const float f = BFloat16ToFloat(static_cast<uint16_t>(h));
    if (!std::isnan(f)) {
      ASSERT_EQ(FloatToBFloat16(f), h);
    }
  }
}

}  // namespace
}  // namespace sparseonnx::detail
