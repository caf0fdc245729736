// A rewritten model on ONNX Runtime's CUDA provider against the same model on the CPU provider: every
// TopKSparseMatMul node must run on CUDA, and the logits must agree.
//
//   sparseonnx_cuda_model_check DENSE_MODEL SPARSE_MODEL
//
// Both models get the same decoder inputs (random token ids, an empty KV cache) at a few prompt lengths: 5 tokens
// take the op's gather path, 40 its masked dense product. The dense model measures how far the two providers
// differ on their own (different float32 summation orders; TF32 is turned off); the sparse model may differ
// somewhat more, because an entry within rounding of a projection's threshold can be kept on one provider and
// dropped on the other. Exit status 0 when all agree within the limits printed.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "cuda_provider.h"
#include "onnxruntime_cxx_api.h"

namespace {

Ort::Env& Environment() {
  static Ort::Env env(ORT_LOGGING_LEVEL_WARNING, "sparseonnx-model-check");
  return env;
}

Ort::Session Open(const std::string& model, bool cuda, const std::string& profile_prefix = "") {
  Ort::SessionOptions options;
  options.RegisterCustomOpsLibrary(SPARSEONNX_OPS_LIBRARY);
  if (!profile_prefix.empty()) options.EnableProfiling(profile_prefix.c_str());
  if (cuda) sparseonnx::test::AppendCudaProvider(Environment(), options, {{"use_tf32", "0"}});
  return Ort::Session(Environment(), model.c_str(), options);
}

// A decoder's symbolic dimension for a prompt of `tokens` with no past: past → 0, batch → 1, sequences → tokens.
int64_t DimensionFor(const std::string& symbol, int64_t tokens) {
  if (symbol.find("past") != std::string::npos) return 0;
  if (symbol.find("batch") != std::string::npos) return 1;
  return tokens;
}

struct Feeds {
  std::vector<std::string> names;
  std::vector<Ort::Value> values;
  std::vector<std::vector<int64_t>> int_storage;
  std::vector<std::vector<float>> float_storage;
};

// input_ids random below `vocabulary`, attention_mask ones, position_ids 0..T-1, float inputs (the empty KV
// cache) zeros.
Feeds MakeFeeds(Ort::Session& session, int64_t tokens, int64_t vocabulary, std::mt19937& random) {
  Feeds feeds;
  Ort::AllocatorWithDefaultOptions allocator;
  auto memory = Ort::MemoryInfo::CreateCpu(OrtArenaAllocator, OrtMemTypeDefault);
  const size_t count = session.GetInputCount();
  feeds.int_storage.reserve(count);
  feeds.float_storage.reserve(count);
  for (size_t i = 0; i < count; ++i) {
    const std::string name = session.GetInputNameAllocated(i, allocator).get();
    const Ort::TypeInfo type = session.GetInputTypeInfo(i);  // owns what `info` reads
    const auto info = type.GetTensorTypeAndShapeInfo();
    std::vector<int64_t> shape = info.GetShape();
    std::vector<const char*> symbols(shape.size());
    info.GetSymbolicDimensions(symbols.data(), symbols.size());
    for (size_t d = 0; d < shape.size(); ++d)
      if (shape[d] < 0) shape[d] = DimensionFor(symbols[d] ? symbols[d] : "", tokens);
    size_t elements = 1;
    for (int64_t d : shape) elements *= static_cast<size_t>(d);
    if (info.GetElementType() == ONNX_TENSOR_ELEMENT_DATA_TYPE_INT64) {
      auto& data = feeds.int_storage.emplace_back(elements, 1);
      if (name.find("input_ids") != std::string::npos)
        for (auto& v : data) v = static_cast<int64_t>(random() % static_cast<uint32_t>(vocabulary));
      if (name.find("position_ids") != std::string::npos)
        for (size_t j = 0; j < elements; ++j) data[j] = static_cast<int64_t>(j % static_cast<size_t>(tokens));
      feeds.values.push_back(Ort::Value::CreateTensor<int64_t>(memory, data.data(), elements, shape.data(), shape.size()));
    } else if (info.GetElementType() == ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT) {
      auto& data = feeds.float_storage.emplace_back(elements, 0.f);
      feeds.values.push_back(Ort::Value::CreateTensor<float>(memory, data.data(), elements, shape.data(), shape.size()));
    } else {
      throw std::runtime_error("input " + name + " has a type this check does not fill");
    }
    feeds.names.push_back(name);
  }
  return feeds;
}

std::vector<float> Logits(Ort::Session& session, Feeds& feeds, std::vector<int64_t>* shape) {
  Ort::AllocatorWithDefaultOptions allocator;
  const std::string output = session.GetOutputNameAllocated(0, allocator).get();
  std::vector<const char*> names;
  for (const auto& n : feeds.names) names.push_back(n.c_str());
  const char* output_names[] = {output.c_str()};
  auto outputs = session.Run(Ort::RunOptions{nullptr}, names.data(), feeds.values.data(), names.size(), output_names, 1);
  const auto info = outputs[0].GetTensorTypeAndShapeInfo();
  *shape = info.GetShape();
  const float* data = outputs[0].GetTensorData<float>();
  return std::vector<float>(data, data + info.GetElementCount());
}

// TopKSparseMatMul kernel events in an ORT profile, on CUDA and elsewhere.
std::pair<int, int> OpPlacement(const std::string& profile) {
  std::ifstream in(profile);
  int on_cuda = 0, elsewhere = 0;
  for (std::string line; std::getline(in, line);) {
    line.erase(std::remove(line.begin(), line.end(), ' '), line.end());
    if (line.find("\"op_name\":\"TopKSparseMatMul\"") == std::string::npos) continue;
    if (line.find("\"provider\":\"CUDAExecutionProvider\"") != std::string::npos) ++on_cuda;
    else ++elsewhere;
  }
  return {on_cuda, elsewhere};
}

struct Agreement {
  double max_difference = 0, largest_logit = 0, argmax_agreement = 0;
};

Agreement Compare(const std::vector<float>& cpu, const std::vector<float>& cuda, int64_t vocabulary) {
  Agreement a;
  size_t agree = 0, positions = cpu.size() / static_cast<size_t>(vocabulary);
  for (size_t p = 0; p < positions; ++p) {
    const float* x = cpu.data() + p * vocabulary;
    const float* y = cuda.data() + p * vocabulary;
    agree += std::max_element(x, x + vocabulary) - x == std::max_element(y, y + vocabulary) - y;
    for (int64_t v = 0; v < vocabulary; ++v) {
      a.max_difference = std::max(a.max_difference, std::fabs(static_cast<double>(x[v]) - y[v]));
      a.largest_logit = std::max(a.largest_logit, std::fabs(static_cast<double>(x[v])));
    }
  }
  a.argmax_agreement = positions ? static_cast<double>(agree) / static_cast<double>(positions) : 1.0;
  return a;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: %s DENSE_MODEL SPARSE_MODEL\n", argv[0]);
    return 2;
  }
  bool ok = true;
  try {
    for (int which = 1; which <= 2; ++which) {
      const std::string model = argv[which];
      const bool sparse = which == 2;
      Ort::Session cpu = Open(model, false);
      Ort::Session cuda = Open(model, true, sparse ? "sparseonnx_model_check" : "");
      for (int64_t tokens : {5, 40}) {
        std::mt19937 random(static_cast<uint32_t>(tokens));
        std::vector<int64_t> shape;
        Feeds probe = MakeFeeds(cpu, tokens, 256, random);  // ids below 256 exist in any vocabulary worth checking
        const std::vector<float> on_cpu = Logits(cpu, probe, &shape);
        const std::vector<float> on_cuda = Logits(cuda, probe, &shape);
        const int64_t vocabulary = shape.back();
        const Agreement a = Compare(on_cpu, on_cuda, vocabulary);
        // Dense: only summation order differs. Sparse: threshold-boundary entries may also flip.
        const double limit = (sparse ? 2e-2 : 1e-3) * a.largest_logit;
        const bool agrees = a.max_difference <= limit && a.argmax_agreement >= (sparse ? 0.9 : 0.99);
        std::printf("%-6s %3lld tokens: max |CPU - CUDA| = %.3g (limit %.3g, largest |logit| %.3g), argmax agrees at %.1f%% of positions: %s\n",
                    sparse ? "sparse" : "dense", static_cast<long long>(tokens), a.max_difference, limit, a.largest_logit,
                    100 * a.argmax_agreement, agrees ? "ok" : "MISMATCH");
        ok = ok && agrees;
      }
      if (sparse) {
        Ort::AllocatorWithDefaultOptions allocator;
        const std::string profile = cuda.EndProfilingAllocated(allocator).get();
        const auto [on_cuda, elsewhere] = OpPlacement(profile);
        std::printf("TopKSparseMatMul kernel runs: %d on CUDAExecutionProvider, %d elsewhere (profile %s): %s\n", on_cuda, elsewhere,
                    profile.c_str(), on_cuda > 0 && elsewhere == 0 ? "ok" : "WRONG PLACEMENT");
        ok = ok && on_cuda > 0 && elsewhere == 0;
      }
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return ok ? 0 : 1;
}
