// The CUDA benchmark of TopKSparseMatMul: decode-shaped products (one row of A) at several sparsities against
// the dense baseline measured in the same run, on one GPU.
//
//   sparseonnx_cuda_bench [--shapes 4096x14336,...] [--sparsities 0,0.25,0.5,0.75,0.9] [--type fp16|bf16|fp32]
//                         [--iterations N] [--blocks-per-sm 2,4,8] [--json FILE]
//
// Three measurements, each printed with the ratio to its dense baseline:
//   copy    device-to-device cudaMemcpy of 1 GiB: the bandwidth the GPU actually delivers (read + write bytes)
//   kernel  the kernel core on a stream, timed with CUDA events: LaunchTopKSparseMatMul (threshold and top-k)
//           vs cuBLAS's GEMM for the same product (what ORT's CUDA MatMul calls); --blocks-per-sm sweeps the
//           gather's grid size (GatherTuning; values above the blocks resident per SM act as that number)
//   ort     ONNX Runtime 1.29 with the CUDA provider and IO binding on device memory: a graph of nodes that
//           each multiply A by their own weight, TopKSparseMatMul vs ORT's own MatMul
// Weights rotate over enough copies to fill 4× a 64 MiB L2, so every product streams its weight from HBM.
// Achieved bandwidth counts the bytes a product must read: the kept rows of B, plus A and Y.
#include <cuda_runtime_api.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "cuda_provider.h"
#include "onnx_writer.h"
#include "onnxruntime_cxx_api.h"
#include "cuda/cuda_conversions.h"
#include "reference.h"
#include "typed_tensors.h"
#include "sparseonnx/cuda_topk_sparse_matmul.h"
#include "sparseonnx/kernels.h"

namespace {

namespace gpu = sparseonnx::cuda;
using sparseonnx::ElementType;
using sparseonnx::ToCudaElementType;
using sparseonnx::test::OnnxElementType;
using sparseonnx::test::OrtElementType;
using sparseonnx::test::RawElements;

#define CHECK_CUDA(call)                                                                                   \
  do {                                                                                                     \
    cudaError_t error_ = (call);                                                                           \
    if (error_ != cudaSuccess) {                                                                           \
      std::fprintf(stderr, "%s:%d: %s failed: %s\n", __FILE__, __LINE__, #call, cudaGetErrorString(error_)); \
      std::exit(1);                                                                                        \
    }                                                                                                      \
  } while (0)

struct Options {
  std::vector<std::pair<int64_t, int64_t>> shapes = {{4096, 14336}, {4096, 4096}, {4096, 1024}, {14336, 4096}};
  std::vector<double> sparsities = {0, 0.25, 0.5, 0.75, 0.9};
  ElementType type = ElementType::kFloat16;
  int iterations = 200;
  std::vector<int64_t> blocks_per_sm = {gpu::GatherTuning{}.blocks_per_multiprocessor};
  std::string json;
};

// The Llama-3-8B projections: q and o [4096, 4096], k and v [4096, 1024], gate and up [4096, 14336],
// down [14336, 4096]; [4096, 14336] is the headline shape.
Options Parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "%s needs a value\n", arg.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (arg == "--shapes") {
      o.shapes.clear();
      std::stringstream list(value());
      for (std::string item; std::getline(list, item, ',');) {
        const auto x = item.find('x');
        o.shapes.emplace_back(std::stoll(item.substr(0, x)), std::stoll(item.substr(x + 1)));
      }
    } else if (arg == "--sparsities") {
      o.sparsities.clear();
      std::stringstream list(value());
      for (std::string item; std::getline(list, item, ',');) o.sparsities.push_back(std::stod(item));
    } else if (arg == "--type") {
      const std::string t = value();
      o.type = t == "fp32" ? ElementType::kFloat32 : t == "bf16" ? ElementType::kBFloat16 : ElementType::kFloat16;
    } else if (arg == "--iterations") {
      o.iterations = std::max(1, std::stoi(value()));
    } else if (arg == "--blocks-per-sm") {
      o.blocks_per_sm.clear();
      std::stringstream list(value());
      for (std::string item; std::getline(list, item, ',');) o.blocks_per_sm.push_back(std::stoll(item));
    } else if (arg == "--json") {
      o.json = value();
    } else {
      std::fprintf(stderr, "usage: %s [--shapes KxN,...] [--sparsities s,...] [--type fp16|bf16|fp32] [--iterations N] [--blocks-per-sm b,...] [--json FILE]\n", argv[0]);
      std::exit(2);
    }
  }
  return o;
}

class DeviceBuffer {
 public:
  explicit DeviceBuffer(size_t bytes) { CHECK_CUDA(cudaMalloc(&data_, std::max<size_t>(bytes, 1))); }
  ~DeviceBuffer() { cudaFree(data_); }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  void* get() const { return data_; }

 private:
  void* data_ = nullptr;
};

// Milliseconds per call of `body(i)` over `iterations` calls on `stream`, after a warm-up.
template <typename Body>
double TimeOnStream(cudaStream_t stream, int iterations, Body&& body) {
  for (int i = 0; i < 5; ++i) body(i);
  cudaEvent_t start, stop;
  CHECK_CUDA(cudaEventCreate(&start));
  CHECK_CUDA(cudaEventCreate(&stop));
  CHECK_CUDA(cudaEventRecord(start, stream));
  for (int i = 0; i < iterations; ++i) body(i);
  CHECK_CUDA(cudaEventRecord(stop, stream));
  CHECK_CUDA(cudaEventSynchronize(stop));
  float ms = 0;
  CHECK_CUDA(cudaEventElapsedTime(&ms, start, stop));
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  return ms / iterations;
}

struct Row {
  std::string level, shape, mode;
  double sparsity, dense_us, sparse_us, bytes;
};

std::vector<Row> g_rows;
double g_copy_gbps = 0;

void Report(const Row& row) {
  g_rows.push_back(row);
  const double speedup = row.dense_us / row.sparse_us;
  const double bound = row.sparsity < 1 ? 1.0 / (1.0 - row.sparsity) : 0;
  const double gbps = row.bytes / (row.sparse_us * 1e3);
  std::printf("%-6s %-12s %-9s %5.0f%%  dense %8.2f us  sparse %8.2f us  speedup %5.2fx (bound %5.2fx)  %7.1f GB/s = %5.1f%% of copy\n",
              row.level.c_str(), row.shape.c_str(), row.mode.c_str(), row.sparsity * 100, row.dense_us, row.sparse_us, speedup, bound,
              gbps, 100 * gbps / g_copy_gbps);
  std::fflush(stdout);
}

double MeasureCopyBandwidth(cudaStream_t stream) {
  const size_t bytes = size_t{1} << 30;
  DeviceBuffer from(bytes), to(bytes);
  CHECK_CUDA(cudaMemsetAsync(from.get(), 1, bytes, stream));
  const double ms = TimeOnStream(stream, 20, [&](int) { CHECK_CUDA(cudaMemcpyAsync(to.get(), from.get(), bytes, cudaMemcpyDeviceToDevice, stream)); });
  return 2.0 * static_cast<double>(bytes) / (ms * 1e6);  // GB/s, read + write
}

// One decode-shaped problem: A [1, K] ~ N(0, 1), weight copies [K, N], thresholds for each sparsity.
struct Layer {
  int64_t K, N;
  int copies;
  std::vector<float> a;
  std::vector<float> sorted_magnitudes;
  std::string shape() const { return std::to_string(K) + "x" + std::to_string(N); }
  // The threshold that keeps a fraction 1 - s of A's entries, and how many that keeps.
  float Threshold(double s, int64_t* kept) const {
    const int64_t drop = static_cast<int64_t>(std::llround(s * static_cast<double>(K)));
    if (drop <= 0) {
      *kept = K;
      return 0.f;
    }
    const float t = sorted_magnitudes[static_cast<size_t>(drop - 1)];
    *kept = static_cast<int64_t>(sorted_magnitudes.end() - std::upper_bound(sorted_magnitudes.begin(), sorted_magnitudes.end(), t));
    return t;
  }
};

void KernelLevel(const Options& o, const Layer& layer, const gpu::DeviceFacts& facts, cudaStream_t stream) {
  const size_t element = sparseonnx::ElementSize(o.type);
  const size_t weight_bytes = static_cast<size_t>(layer.K * layer.N) * element;
  std::vector<std::unique_ptr<DeviceBuffer>> weights;
  std::mt19937 random(7);
  std::normal_distribution<float> normal(0.f, 0.02f);
  std::vector<float> w(static_cast<size_t>(layer.K * layer.N));
  for (auto& v : w) v = normal(random);
  const std::string w_raw = RawElements(w, o.type);
  for (int c = 0; c < layer.copies; ++c) {
    weights.push_back(std::make_unique<DeviceBuffer>(weight_bytes));
    CHECK_CUDA(cudaMemcpy(weights.back()->get(), w_raw.data(), weight_bytes, cudaMemcpyHostToDevice));
  }
  const std::string a_raw = RawElements(layer.a, o.type);
  DeviceBuffer a(a_raw.size()), y(static_cast<size_t>(layer.N) * element);
  CHECK_CUDA(cudaMemcpy(a.get(), a_raw.data(), a_raw.size(), cudaMemcpyHostToDevice));

  gpu::Problem dense_problem{ToCudaElementType(o.type), 1, layer.K, layer.N, gpu::Selection{true, layer.K, 0.f}};
  const gpu::Plan dense_plan = gpu::PlanTopKSparseMatMul(dense_problem, facts, true, gpu::PathChoice::kMaskedDense);
  // k = K on the masked dense path is exactly cuBLAS's GEMM on A (no masking kernel).
  const double dense_us = 1e3 * TimeOnStream(stream, o.iterations, [&](int i) {
    const gpu::Status s = gpu::LaunchTopKSparseMatMul(dense_problem, dense_plan, a.get(), weights[i % layer.copies]->get(), y.get(), nullptr, 0, stream);
    if (!s.ok()) {
      std::fprintf(stderr, "cuBLAS GEMM: %s\n", s.message.c_str());
      std::exit(1);
    }
  });
  for (double s : o.sparsities) {
    int64_t kept = 0;
    const float threshold = layer.Threshold(s, &kept);
    const int64_t k = std::max<int64_t>(1, std::llround((1 - s) * static_cast<double>(layer.K)));
    // Each selection mode at each grid size (one size unless --blocks-per-sm sweeps them).
    for (const bool by_k : {false, true}) {
      for (const int64_t blocks_per_sm : o.blocks_per_sm) {
        const gpu::Problem problem{ToCudaElementType(o.type), 1, layer.K, layer.N, gpu::Selection{by_k, k, threshold}};
        gpu::GatherTuning tuning;
        tuning.blocks_per_multiprocessor = blocks_per_sm;
        const gpu::Plan plan = gpu::PlanTopKSparseMatMul(problem, facts, true, gpu::PathChoice::kGatherGemv, tuning);
        DeviceBuffer workspace(plan.workspace_bytes);
        // Kept-zero tickets, as the ORT op keeps them per stream: no zeroing launch per call.
        DeviceBuffer tickets(static_cast<size_t>(plan.ticket_count) * sizeof(uint32_t));
        CHECK_CUDA(cudaMemset(tickets.get(), 0, static_cast<size_t>(plan.ticket_count) * sizeof(uint32_t)));
        const gpu::TicketBuffer kept_tickets{static_cast<uint32_t*>(tickets.get()), plan.ticket_count};
        const double sparse_us = 1e3 * TimeOnStream(stream, o.iterations, [&](int i) {
          const gpu::Status st = gpu::LaunchTopKSparseMatMul(problem, plan, a.get(), weights[i % layer.copies]->get(), y.get(), workspace.get(),
                                                             plan.workspace_bytes, stream, kept_tickets);
          if (!st.ok()) {
            std::fprintf(stderr, "gather: %s\n", st.message.c_str());
            std::exit(1);
          }
        });
        const double rows_read = static_cast<double>(by_k ? k : kept);
        std::string mode = by_k ? "top-k" : "threshold";
        if (o.blocks_per_sm.size() > 1) mode += "/b" + std::to_string(blocks_per_sm);
        Report({"kernel", layer.shape(), mode, s, dense_us, sparse_us,
                rows_read * static_cast<double>(layer.N * element) + static_cast<double>((layer.K + layer.N) * element)});
      }
    }
  }
}

// A graph of `copies` nodes Y_c = op(A, B_c), so one Run streams every copy once and ORT's per-run cost is
// spread over them.
std::string OrtModel(const Options& o, const Layer& layer, const std::string& w_raw, const std::string& op, const std::string& domain,
                     const std::vector<sparseonnx::test::OnnxAttribute>& attributes) {
  using namespace sparseonnx::test;
  std::vector<OnnxNode> nodes;
  std::vector<OnnxInitializer> weights;
  std::vector<OnnxValue> outputs;
  for (int c = 0; c < layer.copies; ++c) {
    const std::string b = "B" + std::to_string(c), y = "Y" + std::to_string(c);
    nodes.push_back(OnnxNode{op, domain, {"A", b}, {y}, attributes});
    weights.push_back(OnnxInitializer{b, OnnxElementType(o.type), {layer.K, layer.N}, w_raw});
    outputs.push_back(OnnxValue{y, OnnxElementType(o.type), {}, false});
  }
  return GraphModel(nodes, weights, {OnnxValue{"A", OnnxElementType(o.type), {{1, ""}, {layer.K, ""}}}}, outputs);
}

// Microseconds per node of one Run with A and every Y bound to device memory.
double TimeOrt(Ort::Env& env, const std::string& model, const Layer& layer, const Options& o, void* a_device) {
  Ort::SessionOptions options;
  options.SetGraphOptimizationLevel(GraphOptimizationLevel::ORT_ENABLE_ALL);
  options.AddConfigEntry("session.disable_cpu_ep_fallback", "1");
  sparseonnx::test::AppendCudaProvider(env, options);
  options.RegisterCustomOpsLibrary(SPARSEONNX_OPS_LIBRARY);
  Ort::Session session(env, model.data(), model.size(), options);
  Ort::MemoryInfo cuda_memory("Cuda", OrtDeviceAllocator, 0, OrtMemTypeDefault);
  const int64_t a_shape[] = {1, layer.K};
  Ort::Value a = Ort::Value::CreateTensor(cuda_memory, a_device, static_cast<size_t>(layer.K) * sparseonnx::ElementSize(o.type), a_shape, 2,
                                          OrtElementType(o.type));
  Ort::IoBinding binding(session);
  binding.BindInput("A", a);
  for (int c = 0; c < layer.copies; ++c) binding.BindOutput(("Y" + std::to_string(c)).c_str(), cuda_memory);
  Ort::RunOptions run_options;
  for (int i = 0; i < 5; ++i) session.Run(run_options, binding);
  const int runs = std::max(3, o.iterations / layer.copies);
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < runs; ++i) session.Run(run_options, binding);
  CHECK_CUDA(cudaDeviceSynchronize());
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return 1e6 * seconds / (runs * layer.copies);
}

void OrtLevel(const Options& o, const Layer& layer) {
  static Ort::Env env(ORT_LOGGING_LEVEL_WARNING, "sparseonnx-cuda-bench");
  std::mt19937 random(7);
  std::normal_distribution<float> normal(0.f, 0.02f);
  std::vector<float> w(static_cast<size_t>(layer.K * layer.N));
  for (auto& v : w) v = normal(random);
  const std::string w_raw = RawElements(w, o.type);
  const std::string a_raw = RawElements(layer.a, o.type);
  DeviceBuffer a(a_raw.size());
  CHECK_CUDA(cudaMemcpy(a.get(), a_raw.data(), a_raw.size(), cudaMemcpyHostToDevice));
  const size_t element = sparseonnx::ElementSize(o.type);
  try {
    const double dense_us = TimeOrt(env, OrtModel(o, layer, w_raw, "MatMul", "", {}), layer, o, a.get());
    for (double s : o.sparsities) {
      int64_t kept = 0;
      const float threshold = layer.Threshold(s, &kept);
      const double sparse_us =
          TimeOrt(env, OrtModel(o, layer, w_raw, "TopKSparseMatMul", "ai.sparseonnx", {{"threshold", false, 0, threshold}}), layer, o, a.get());
      Report({"ort", layer.shape(), "threshold", s, dense_us, sparse_us,
              static_cast<double>(kept * layer.N) * element + static_cast<double>((layer.K + layer.N) * element)});
    }
  } catch (const Ort::Exception& e) {
    std::printf("ort    %-12s skipped: %s\n", layer.shape().c_str(), e.what());
  }
}

void WriteJson(const std::string& path, const cudaDeviceProp& device, const Options& o) {
  std::ofstream out(path);
  out << "{\"device\": \"" << device.name << "\", \"copy_gbps\": " << g_copy_gbps << ", \"type\": \""
      << sparseonnx::ElementTypeName(o.type) << "\", \"rows\": [\n";
  for (size_t i = 0; i < g_rows.size(); ++i) {
    const Row& r = g_rows[i];
    out << "  {\"level\": \"" << r.level << "\", \"shape\": \"" << r.shape << "\", \"mode\": \"" << r.mode << "\", \"sparsity\": " << r.sparsity
        << ", \"dense_us\": " << r.dense_us << ", \"sparse_us\": " << r.sparse_us << ", \"speedup\": " << r.dense_us / r.sparse_us
        << ", \"gbps\": " << r.bytes / (r.sparse_us * 1e3) << "}" << (i + 1 < g_rows.size() ? ",\n" : "\n");
  }
  out << "]}\n";
}

}  // namespace

int main(int argc, char** argv) {
  const Options o = Parse(argc, argv);
  int device = 0;
  cudaDeviceProp properties{};
  CHECK_CUDA(cudaGetDevice(&device));
  CHECK_CUDA(cudaGetDeviceProperties(&properties, device));
  cudaStream_t stream = nullptr;
  CHECK_CUDA(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
  g_copy_gbps = MeasureCopyBandwidth(stream);
  std::printf("GPU %s, %d SMs, L2 %d MiB; copy bandwidth %.1f GB/s (read + write); %s, one row of A\n", properties.name,
              properties.multiProcessorCount, properties.l2CacheSize >> 20, g_copy_gbps, sparseonnx::ElementTypeName(o.type));
  const gpu::DeviceFacts facts = gpu::QueryDeviceFacts(device);
  std::printf("gather blocks resident per SM (fp16, 1 row, 16-byte loads): %d\n", facts.gather_resident_blocks[1][0][0]);
  std::mt19937 random(3);
  std::normal_distribution<float> normal;
  for (auto [K, N] : o.shapes) {
    Layer layer{K, N, 0, {}, {}};
    const size_t weight_bytes = static_cast<size_t>(K * N) * sparseonnx::ElementSize(o.type);
    layer.copies = static_cast<int>(std::max<size_t>(2, (size_t{256} << 20) / weight_bytes + 1));
    layer.a.resize(static_cast<size_t>(K));
    for (auto& v : layer.a) v = normal(random);
    const std::string a_raw = RawElements(layer.a, o.type);
    for (float v : sparseonnx::test::ToFloats(a_raw.data(), o.type, layer.a.size()))  // the values the GPU sees
      layer.sorted_magnitudes.push_back(std::fabs(v));
    std::sort(layer.sorted_magnitudes.begin(), layer.sorted_magnitudes.end());
    KernelLevel(o, layer, facts, stream);
    OrtLevel(o, layer);
  }
  if (!o.json.empty()) WriteJson(o.json, properties, o);
  cudaStreamDestroy(stream);
  return 0;
}
