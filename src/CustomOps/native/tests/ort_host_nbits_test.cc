// TopKSparseMatMulNBits in a C++ ONNX Runtime host, against ONNX Runtime's own MatMulNBits on A ⊙ mask
// with the same weights: at accuracy_level 0 to float32 rounding, at level 4 (int8 activations) within
// the difference of two int8 roundings of A, which the test measures and bounds.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "matmul_nbits_fixture.h"
#include "onnx_writer.h"
#include "onnxruntime_cxx_api.h"
#include "ort_host.h"
#include "reference.h"

namespace sparseonnx::test {
namespace {

Ort::Session OpenModel(const std::string& model) {
  Ort::SessionOptions options;
  options.SetIntraOpNumThreads(2);
  options.RegisterCustomOpsLibrary(SPARSEONNX_OPS_LIBRARY);
  return Ort::Session(Environment(), model.data(), model.size(), options);
}

std::vector<float> RunOutput(Ort::Session& session, const std::vector<float>& a, int64_t M, int64_t K, const char* output) {
  auto memory = Ort::MemoryInfo::CreateCpu(OrtArenaAllocator, OrtMemTypeDefault);
  const int64_t shape[] = {M, K};
  auto input = Ort::Value::CreateTensor<float>(memory, const_cast<float*>(a.data()), a.size(), shape, 2);
  const char* input_names[] = {"A"};
  auto outputs = session.Run(Ort::RunOptions{nullptr}, input_names, &input, 1, &output, 1);
  const float* y = outputs[0].GetTensorData<float>();
  return std::vector<float>(y, y + outputs[0].GetTensorTypeAndShapeInfo().GetElementCount());
}

std::string Model(const NBitsWeight& w, int dense_level, int sparse_level, int64_t k) {
  std::vector<OnnxNode> nodes;
  std::vector<OnnxInitializer> initializers;
  AddMatMulNBits(w, dense_level, "_dense", nodes, initializers);
  AddSparseNBits(w, sparse_level, k, 0.f, "_sparse", nodes, initializers);
  const std::vector<OnnxDim> a_dims = {{-1, "m"}, {w.K, ""}}, y_dims = {{-1, "m"}, {w.N, ""}};
  return GraphModel(nodes, initializers, {{"A", kOnnxFloat, a_dims, true}},
                    {{"Y_dense", kOnnxFloat, y_dims, true}, {"Y_sparse", kOnnxFloat, y_dims, true}});
}

// A with the entries the rule drops set to +0.
std::vector<float> Masked(const std::vector<float>& a, int64_t M, int64_t K, int64_t k) {
  std::vector<float> masked = a;
  for (int64_t m = 0; m < M; ++m) {
    const std::vector<float> row(a.begin() + m * K, a.begin() + (m + 1) * K);
    const auto mask = ReferenceMask(row, SelectionRule::TopK(k));
    for (int64_t i = 0; i < K; ++i)
      if (!mask[i]) masked[m * K + i] = 0.f;
  }
  return masked;
}

struct Shape { int bits; bool zero_points; int64_t M, K, N, block_size, k; bool float16_scales = false; };

TEST(OrtHostNBits, AccuracyLevel0EqualsMatMulNBitsOnTheMaskedInput) {
  std::mt19937 random(61);
  std::normal_distribution<float> normal;
  const Shape shapes[] = {{4, false, 1, 300, 70, 32, 100}, {4, true, 3, 256, 200, 16, 256}, {8, true, 5, 96, 130, 32, 1},
                          {4, false, 20, 128, 64, 64, 40}, {8, false, 33, 160, 90, 32, 160}, {4, true, 2, 4096, 96, 128, 1365},
                          {4, false, 1, 512, 300, 32, 256, true}, {4, true, 24, 256, 100, 32, 100, true}};
  for (const Shape& s : shapes) {
    const NBitsWeight w = RandomNBitsWeight(s.bits, s.K, s.N, s.block_size, s.zero_points, random, s.float16_scales);
    auto session = OpenModel(Model(w, 0, 0, s.k));
    std::vector<float> a(static_cast<size_t>(s.M * s.K));
    for (auto& v : a) v = normal(random);
    const auto sparse = RunOutput(session, a, s.M, s.K, "Y_sparse");
    const auto dense = RunOutput(session, Masked(a, s.M, s.K, s.k), s.M, s.K, "Y_dense");
    ASSERT_EQ(sparse.size(), dense.size());
    for (int64_t m = 0; m < s.M; ++m)
      for (int64_t n = 0; n < s.N; ++n) {
        double magnitude = 0;  // sum of |a| * |s| * (|q| + |z|): the scale of both products' rounding
        for (int64_t i = 0; i < s.K; ++i)
          magnitude += std::abs(a[m * s.K + i]) * w.scales[n * w.Blocks() + i / s.block_size] * ((1 << s.bits) * 2);
        const double tolerance = 4.0 * s.K * std::ldexp(1.0, -24) * magnitude;
        ASSERT_NEAR(sparse[m * s.N + n], dense[m * s.N + n], tolerance)
            << "bits " << s.bits << " M " << s.M << " K " << s.K << " k " << s.k << " at " << m << "," << n;
      }
  }
}

// Level 4 quantizes each block of A ⊙ mask to int8 (absmax / 127). MatMulNBits does the same on the masked
// input; the two differ only where their roundings of a value to int8 differ, so the outputs agree to a
// small fraction of the int8 quantization error itself, which is measured against level 0 here.
TEST(OrtHostNBits, AccuracyLevel4IsTheInt8ActivationProductOfMatMulNBits) {
  std::mt19937 random(67);
  std::normal_distribution<float> normal;
  // Decode (1 and 4 rows) and prefill (40 and 20 rows: the integer GEMM), symmetric and with zero points.
  const Shape shapes[] = {{4, false, 1, 2048, 256, 32, 1024}, {4, true, 4, 512, 300, 32, 128}, {4, false, 40, 512, 300, 32, 256, true},
                          {4, true, 20, 256, 200, 64, 100}};
  for (const Shape& s : shapes) {
    const NBitsWeight w = RandomNBitsWeight(s.bits, s.K, s.N, s.block_size, s.zero_points, random, s.float16_scales);
    auto level4 = OpenModel(Model(w, 4, 4, s.k));
    auto level0 = OpenModel(Model(w, 0, 0, s.k));
    std::vector<float> a(static_cast<size_t>(s.M * s.K));
    for (auto& v : a) v = normal(random);
    const auto masked = Masked(a, s.M, s.K, s.k);
    const auto ours = RunOutput(level4, a, s.M, s.K, "Y_sparse");
    const auto theirs = RunOutput(level4, masked, s.M, s.K, "Y_dense");
    const auto exact = RunOutput(level0, masked, s.M, s.K, "Y_dense");
    double ours_error = 0, theirs_error = 0, between = 0, scale = 0;
    for (size_t i = 0; i < exact.size(); ++i) {
      ours_error += std::pow(ours[i] - exact[i], 2);
      theirs_error += std::pow(theirs[i] - exact[i], 2);
      between += std::pow(ours[i] - theirs[i], 2);
      scale += std::pow(exact[i], 2);
    }
    const double rms = std::sqrt(scale / exact.size());
    std::printf("level 4, M %ld K %ld k %ld: rms error vs level 0: ours %.3g, MatMulNBits %.3g; ours vs MatMulNBits %.3g (rms output %.3g)\n",
                static_cast<long>(s.M), static_cast<long>(s.K), static_cast<long>(s.k), std::sqrt(ours_error / exact.size()),
                std::sqrt(theirs_error / exact.size()), std::sqrt(between / exact.size()), rms);
    EXPECT_LT(std::sqrt(ours_error / exact.size()), 0.02 * rms);  // int8 activations: about 1% of the output
    EXPECT_LT(std::sqrt(ours_error / exact.size()), 1.5 * std::sqrt(theirs_error / exact.size()) + 1e-6 * rms);
    EXPECT_LT(std::sqrt(between / exact.size()), 1.5 * std::sqrt(theirs_error / exact.size()) + 1e-6 * rms);
  }
}

TEST(OrtHostNBits, MalformedWeightsFailTheSessionNamingTheNode) {
  std::mt19937 random(71);
  NBitsWeight w = RandomNBitsWeight(4, 64, 40, 32, false, random);
  auto expect_failure = [](const std::string& model, const std::string& needle) {
    try {
      OpenModel(model);
      ADD_FAILURE() << "expected the session to fail with '" << needle << "'";
    } catch (const Ort::Exception& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find("TopKSparseMatMulNBits node"), std::string::npos) << e.what();
    }
  };
  auto model_with = [&](const NBitsWeight& weight, const std::vector<OnnxAttribute>& extra, int64_t trim_row_bytes = 0) {
    std::vector<OnnxNode> nodes;
    std::vector<OnnxInitializer> initializers;
    AddSparseNBits(weight, 0, 8, 0.f, "", nodes, initializers);
    if (trim_row_bytes > 0) {  // a codes tensor of the wrong size (consistent with its own shape)
      initializers[0].dims[1] -= trim_row_bytes;
      initializers[0].raw.resize(static_cast<size_t>(initializers[0].dims[0] * initializers[0].dims[1]));
    }
    for (const auto& attribute : extra)
      for (auto& existing : nodes[0].attributes)
        if (existing.name == attribute.name) existing = attribute;
    nodes[0].outputs = {"Y"};
    return GraphModel(nodes, initializers, {{"A", kOnnxFloat, {{-1, "m"}, {weight.K, ""}}, true}}, {{"Y", kOnnxFloat, {}, false}});
  };
  expect_failure(model_with(w, {}, 8), "input codes has shape [64, 24]");
  expect_failure(model_with(w, {{"bits", true, 3, 0.f}}), "bits must be 4 or 8");
  expect_failure(model_with(w, {{"N", true, 4000, 0.f}}), "input codes has shape [64, 32]");
  expect_failure(model_with(w, {{"K", true, 65, 0.f}}), "need [65, 32]");
  NBitsWeight bad_scale = w;
  bad_scale.row_scales[3] = std::nanf("");
  expect_failure(model_with(bad_scale, {}), "non-finite value");
  expect_failure(model_with(w, {{"k", true, 65, 0.f}}), "attribute k must be in [1, K = 64]");
}

}  // namespace
}  // namespace sparseonnx::test
