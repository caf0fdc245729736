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

struct IsaScope {
  Isa saved = ActiveIsa();
  ~IsaScope() { SetActiveIsa(saved); }
};

std::vector<uint16_t> Encode(const std::vector<float>& values, ElementType type) {
  std::vector<uint16_t> out(values.size());
  for (size_t i = 0; i < values.size(); ++i)
    out[i] = type == ElementType::kFloat16 ? detail::FloatToFloat16(values[i]) : detail::FloatToBFloat16(values[i]);
  return out;
}

// DenseGemm against a double-precision product of the same (rounded) values, within the float32 summation
// bound, for shapes that exercise every tail: rows and columns not multiples of the micro-kernel, K across
// several packed blocks, K = 1, strided A and Y.
TEST(DenseGemm, MatchesTheReferenceAndIsBitIdenticalAcrossInstructionSetsAndThreads) {
  IsaScope scope;
  std::mt19937 random(29);
  std::normal_distribution<float> normal;
  struct Shape { int64_t M, K, N; };
  for (ElementType type : {ElementType::kFloat32, ElementType::kFloat16, ElementType::kBFloat16}) {
    for (Shape s : {Shape{1, 1, 1}, Shape{3, 7, 5}, Shape{17, 300, 70}, Shape{9, 513, 1025}, Shape{33, 257, 33}}) {
      const int64_t lda = s.K + 3, ldy = s.N + 5;
      std::vector<float> A(static_cast<size_t>(s.M * lda)), B(static_cast<size_t>(s.K * s.N));
      for (auto& v : A) v = normal(random);
      for (auto& v : B) v = normal(random);
      const auto A16 = Encode(A, type), B16 = Encode(B, type);
      const void* a = type == ElementType::kFloat32 ? static_cast<const void*>(A.data()) : A16.data();
      const void* b = type == ElementType::kFloat32 ? static_cast<const void*>(B.data()) : B16.data();
      const auto Af = ToFloats(a, type, A.size()), Bf = ToFloats(b, type, B.size());

      std::vector<unsigned char> first;
      for (Isa isa : {Isa::kScalar, Isa::kAvx2, Isa::kAvx512}) {
        if (!SetActiveIsa(isa)) continue;
        for (int threads : {1, 3}) {
          CountingScratch scratch;
          GuardedBuffer Y(static_cast<size_t>(s.M * ldy) * ElementSize(type));
          std::memset(Y.data(), 0x7F, Y.size());  // the gaps between rows must stay untouched
          DenseGemm(a, lda, b, s.N, type, s.M, s.K, s.N, Y.data(), ldy, threads == 1 ? SerialFor() : ThreadedFor(threads), scratch);
          EXPECT_EQ(scratch.live.load(), 0);
          std::vector<unsigned char> bytes(static_cast<const unsigned char*>(Y.data()), static_cast<const unsigned char*>(Y.data()) + Y.size());
          if (first.empty()) {
            first = bytes;
            const auto y = ToFloats(Y.data(), type, static_cast<size_t>(s.M * ldy));
            const double rounding = type == ElementType::kFloat16 ? std::ldexp(1.0, -11) : type == ElementType::kBFloat16 ? std::ldexp(1.0, -8) : 0.0;
            for (int64_t m = 0; m < s.M; ++m) {
              for (int64_t n = 0; n < s.N; ++n) {
                double exact = 0, magnitude = 0;
                for (int64_t k = 0; k < s.K; ++k) {
                  exact += static_cast<double>(Af[m * lda + k]) * Bf[k * s.N + n];
                  magnitude += std::fabs(static_cast<double>(Af[m * lda + k]) * Bf[k * s.N + n]);
                }
                const double tolerance = 2.0 * (s.K + 2) * std::ldexp(1.0, -24) * magnitude + rounding * std::fabs(exact) + 1e-30;
                ASSERT_NEAR(y[m * ldy + n], exact, tolerance) << ElementTypeName(type) << " M=" << s.M << " K=" << s.K << " N=" << s.N << " at " << m << "," << n;
              }
              for (int64_t n = s.N; n < ldy; ++n)
                ASSERT_EQ(bytes[static_cast<size_t>(m * ldy + n) * ElementSize(type)], 0x7F) << "wrote into the row gap";
            }
          } else {
            ASSERT_EQ(bytes, first) << IsaName(isa) << " with " << threads << " threads differs, " << ElementTypeName(type)
                                    << " M=" << s.M << " K=" << s.K << " N=" << s.N;
          }
        }
      }
    }
  }
}

TEST(DenseGemm, EmptyKGivesZeros) {
  std::vector<float> Y(6, 1.f);
  CountingScratch scratch;
  DenseGemm(nullptr, 0, nullptr, 3, ElementType::kFloat32, 2, 0, 3, Y.data(), 3, SerialFor(), scratch);
  for (float y : Y) EXPECT_EQ(y, 0.f);
}

}  // namespace
}  // namespace sparseonnx::test
