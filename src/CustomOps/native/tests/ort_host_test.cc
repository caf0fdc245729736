// Loads the op library into a C++ ONNX Runtime host: by default the oldest runtime the library supports
// (build.sh links this test against ONNX Runtime 1.29), so a library built against those headers is
// checked to register, run and report errors there, not only in the newer runtime the C# tests use.
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "onnx_writer.h"
#include "onnxruntime_cxx_api.h"
#include "ort_host.h"

namespace sparseonnx::test {
namespace {

Ort::Session Open(const std::string& model, int threads = 2) {
  Ort::SessionOptions options;
  options.SetIntraOpNumThreads(threads);
  options.SetGraphOptimizationLevel(GraphOptimizationLevel::ORT_DISABLE_ALL);
  options.RegisterCustomOpsLibrary(SPARSEONNX_OPS_LIBRARY);
  return Ort::Session(Environment(), model.data(), model.size(), options);
}

std::vector<float> RunModel(Ort::Session& session, const std::vector<float>& a, const std::vector<int64_t>& shape) {
  auto memory = Ort::MemoryInfo::CreateCpu(OrtArenaAllocator, OrtMemTypeDefault);
  auto input = Ort::Value::CreateTensor<float>(memory, const_cast<float*>(a.data()), a.size(), shape.data(), shape.size());
  const char* input_names[] = {"A"};
  const char* output_names[] = {"Y"};
  auto outputs = session.Run(Ort::RunOptions{nullptr}, input_names, &input, 1, output_names, 1);
  const float* y = outputs[0].GetTensorData<float>();
  return std::vector<float>(y, y + outputs[0].GetTensorTypeAndShapeInfo().GetElementCount());
}

TEST(OrtHost, ReportsTheRuntimeVersion) {
  std::printf("ONNX Runtime %s, library %s\n", Ort::GetVersionString().c_str(), SPARSEONNX_OPS_LIBRARY);
}

TEST(OrtHost, TopKMatchesTheMaskedProduct) {
  std::mt19937 random(21);
  std::normal_distribution<float> normal;
  for (auto [M, K, N, k] : std::vector<std::array<int64_t, 4>>{{1, 300, 70, 100}, {3, 64, 33, 10}, {20, 128, 40, 64}}) {
    std::vector<float> a(M * K), b(K * N);
    for (auto& v : a) v = normal(random);
    for (auto& v : b) v = normal(random);
    auto session = Open(SingleNodeModel("ai.sparseonnx", "TopKSparseMatMul", {{-1, "m"}, {K, ""}}, K, N, b, {{"k", true, k, 0.f}}));
    const auto y = RunModel(session, a, {M, K});
    ASSERT_EQ(y.size(), static_cast<size_t>(M * N));
    for (int64_t m = 0; m < M; ++m) {
      // Keep the k largest |a| of the row (ties cannot occur with these random values).
      std::vector<float> magnitudes;
      for (int64_t i = 0; i < K; ++i) magnitudes.push_back(std::fabs(a[m * K + i]));
      std::vector<float> sorted = magnitudes;
      std::nth_element(sorted.begin(), sorted.begin() + (k - 1), sorted.end(), std::greater<float>());
      const float kth = sorted[k - 1];
      for (int64_t n = 0; n < N; ++n) {
        double expected = 0, magnitude = 0;
        for (int64_t i = 0; i < K; ++i)
          if (magnitudes[i] >= kth) {
            expected += static_cast<double>(a[m * K + i]) * b[i * N + n];
            magnitude += std::fabs(static_cast<double>(a[m * K + i]) * b[i * N + n]);
          }
        const double tolerance = 4.0 * K * std::ldexp(1.0, -24) * magnitude;
        ASSERT_NEAR(y[m * N + n], expected, tolerance) << "M=" << M << " K=" << K << " m=" << m << " n=" << n;
      }
    }
  }
}

TEST(OrtHost, InvalidAttributesFailTheSessionWithAClearMessage) {
  const std::vector<float> b(8 * 4, 1.f);
  try {
    Open(SingleNodeModel("ai.sparseonnx", "TopKSparseMatMul", {{-1, "m"}, {8, ""}}, 8, 4, b, {{"k", true, 2, 0.f}, {"threshold", false, 0, 0.5f}}));
    FAIL() << "expected an error";
  } catch (const Ort::Exception& e) {
    EXPECT_NE(std::string(e.what()).find("exactly one of the attributes"), std::string::npos) << e.what();
  }
}

TEST(OrtHost, ShapeErrorsFailTheRunWithAClearMessage) {
  const std::vector<float> b(8 * 4, 1.f);
  auto session = Open(SingleNodeModel("ai.sparseonnx", "TopKSparseMatMul", {{-1, "m"}, {-1, "k"}}, 8, 4, b, {{"k", true, 2, 0.f}}));
  try {
    RunModel(session, std::vector<float>(6, 1.f), {1, 6});
    FAIL() << "expected an error";
  } catch (const Ort::Exception& e) {
    EXPECT_NE(std::string(e.what()).find("last dimension is 6 but B has 8 rows"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace sparseonnx::test
