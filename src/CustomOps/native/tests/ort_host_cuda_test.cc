// The op library in ONNX Runtime's CUDA execution provider: TopKSparseMatMul against ORT's own CUDA MatMul on
// the masked input, per element type, over batch sizes that take both CUDA paths. Skipped (with the reason)
// when the runtime has no CUDA provider or the host no GPU: build.sh links these tests against the CPU
// runtime; native/cuda_ops/gpu/check.sh runs them with the CUDA provider on a GPU machine.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "cuda_provider.h"
#include "onnx_writer.h"
#include "onnxruntime_cxx_api.h"
#include "ort_host.h"
#include "gpu_skip.h"
#include "reference.h"
#include "typed_tensors.h"
#include "sparseonnx/kernels.h"

namespace sparseonnx::test {
namespace {

// Session options on the CUDA provider alone: with CPU fallback disabled, creating a session fails unless
// every node (our op included) is assigned to CUDA.
Ort::SessionOptions CudaOptions() {
  Ort::SessionOptions options;
  options.SetGraphOptimizationLevel(GraphOptimizationLevel::ORT_DISABLE_ALL);
  options.AddConfigEntry("session.disable_cpu_ep_fallback", "1");
  AppendCudaProvider(Environment(), options);
  options.RegisterCustomOpsLibrary(SPARSEONNX_OPS_LIBRARY);
  return options;
}

// Y = op(A, B) for A [M, K] (M symbolic) and B [K, N] of `type`.
std::string Model(const std::string& domain, const std::string& op, ElementType type, int64_t K, int64_t N, const std::string& b_raw,
                  const std::vector<OnnxAttribute>& attributes) {
  return GraphModel({OnnxNode{op, domain, {"A", "B"}, {"Y"}, attributes}}, {OnnxInitializer{"B", OnnxElementType(type), {K, N}, b_raw}},
                    {OnnxValue{"A", OnnxElementType(type), {{-1, "m"}, {K, ""}}}}, {OnnxValue{"Y", OnnxElementType(type), {}, false}});
}

std::vector<float> RunOnce(Ort::Session& session, ElementType type, const std::string& a_raw, int64_t M, int64_t K) {
  auto memory = Ort::MemoryInfo::CreateCpu(OrtArenaAllocator, OrtMemTypeDefault);
  const int64_t shape[] = {M, K};
  auto input = Ort::Value::CreateTensor(memory, const_cast<char*>(a_raw.data()), a_raw.size(), shape, 2, OrtElementType(type));
  const char* input_names[] = {"A"};
  const char* output_names[] = {"Y"};
  auto outputs = session.Run(Ort::RunOptions{nullptr}, input_names, &input, 1, output_names, 1);
  const size_t count = outputs[0].GetTensorTypeAndShapeInfo().GetElementCount();
  return ToFloats(outputs[0].GetTensorRawData(), type, count);
}

// Why CUDA sessions cannot be made here, or "" when they can (a plain MatMul is the probe).
std::string CudaUnavailableReason() {
  try {
    const std::string b_raw = RawElements(std::vector<float>(4, 1.f), ElementType::kFloat32);
    const std::string model = Model("", "MatMul", ElementType::kFloat32, 2, 2, b_raw, {});
    Ort::Session session(Environment(), model.data(), model.size(), CudaOptions());
    return "";
  } catch (const Ort::Exception& e) {
    return std::string("no CUDA execution provider here: ") + e.what();
  }
}


TEST(OrtHostCuda, TopKSparseMatMulMatchesCudaMatMulOnTheMaskedInput) {
  SPARSEONNX_SKIP_IF_UNAVAILABLE(CudaUnavailableReason());
  std::mt19937 random(31);
  std::normal_distribution<float> normal;
  for (ElementType type : {ElementType::kFloat32, ElementType::kFloat16, ElementType::kBFloat16}) {
    for (auto [K, N] : std::vector<std::pair<int64_t, int64_t>>{{300, 130}, {1024, 1000}, {77, 4096}}) {
      std::vector<float> b(static_cast<size_t>(K * N));
      for (auto& v : b) v = normal(random);
      const std::string b_raw = RawElements(b, type);
      const std::vector<float> b_values = ToFloats(b_raw.data(), type, b.size());
      for (SelectionRule rule : {SelectionRule::TopK(K / 2), SelectionRule::TopK(K), SelectionRule::Threshold(0.7f)}) {
        const std::vector<OnnxAttribute> attributes =
            rule.mode == SelectionRule::Mode::kTopK ? std::vector<OnnxAttribute>{{"k", true, rule.k, 0.f}}
                                                    : std::vector<OnnxAttribute>{{"threshold", false, 0, rule.threshold}};
        const std::string sparse_model = Model("ai.sparseonnx", "TopKSparseMatMul", type, K, N, b_raw, attributes);
        const std::string dense_model = Model("", "MatMul", type, K, N, b_raw, {});
        Ort::Session sparse(Environment(), sparse_model.data(), sparse_model.size(), CudaOptions());
        Ort::Session dense(Environment(), dense_model.data(), dense_model.size(), CudaOptions());
        for (int64_t M : {1, 2, 5, 8, 9, 40}) {  // up to 8 rows gather, more take the masked dense product
          std::vector<float> a(static_cast<size_t>(M * K));
          for (auto& v : a) v = normal(random);
          const std::string a_raw = RawElements(a, type);
          const std::vector<float> a_values = ToFloats(a_raw.data(), type, a.size());
          std::vector<float> masked(a_values.size());
          for (int64_t m = 0; m < M; ++m) {
            const std::vector<float> row(a_values.begin() + m * K, a_values.begin() + (m + 1) * K);
            const std::vector<bool> keep = ReferenceMask(row, rule);
            for (int64_t i = 0; i < K; ++i) masked[m * K + i] = keep[i] ? row[i] : 0.f;
          }
          const std::vector<float> y = RunOnce(sparse, type, a_raw, M, K);
          const std::vector<float> expected = RunOnce(dense, type, RawElements(masked, type), M, K);
          const std::vector<double> bound = ErrorBound(a_values, b_values, M, K, N, rule);
          // Both accumulate in float32 (in different orders) and round once to the type.
          const double rounding = type == ElementType::kFloat32 ? 0.0 : type == ElementType::kFloat16 ? std::ldexp(1.0, -10) : std::ldexp(1.0, -7);
          ASSERT_EQ(y.size(), expected.size());
          int reported = 0;
          for (size_t i = 0; i < y.size(); ++i) {
            const double tolerance = 2 * bound[i] + rounding * std::fabs(expected[i]) + 1e-6;
            if (std::fabs(y[i] - expected[i]) > tolerance && reported++ < 5)
              ADD_FAILURE() << ElementTypeName(type) << " M=" << M << " K=" << K << " N=" << N << ": Y[" << i / N << ", " << i % N
                            << "] = " << y[i] << ", MatMul gives " << expected[i] << " ± " << tolerance;
          }
        }
      }
    }
  }
}

TEST(OrtHostCuda, ShapeErrorsFailTheRunWithTheSameMessageAsOnCpu) {
  SPARSEONNX_SKIP_IF_UNAVAILABLE(CudaUnavailableReason());
  const std::string b_raw = RawElements(std::vector<float>(8 * 4, 1.f), ElementType::kFloat32);
  const std::string model = GraphModel({OnnxNode{"TopKSparseMatMul", "ai.sparseonnx", {"A", "B"}, {"Y"}, {{"k", true, 2, 0.f}}}},
                                       {OnnxInitializer{"B", kOnnxFloat, {8, 4}, b_raw}},
                                       {OnnxValue{"A", kOnnxFloat, {{-1, "m"}, {-1, "k"}}}}, {OnnxValue{"Y", kOnnxFloat, {}, false}});
  Ort::Session session(Environment(), model.data(), model.size(), CudaOptions());
  try {
    RunOnce(session, ElementType::kFloat32, RawElements(std::vector<float>(6, 1.f), ElementType::kFloat32), 1, 6);
    FAIL() << "expected an error";
  } catch (const Ort::Exception& e) {
    EXPECT_NE(std::string(e.what()).find("last dimension is 6 but B has 8 rows"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace sparseonnx::test
