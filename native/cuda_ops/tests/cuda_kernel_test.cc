// The CUDA kernel core against the naive CPU reference (src/CustomOps/native/tests/reference.h): both paths,
// every element type, odd and tiny sizes, ties, ±0, NaN and Inf. Tests that need a GPU skip when the host has
// none (CI compiles them and runs the plan tests); docs/topk-sparse-matmul.md says where they were last run.
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <limits>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include <cuda_runtime_api.h>

#include "gpu_skip.h"
#include "cuda/cuda_conversions.h"
#include "reference.h"
#include "sparseonnx/cuda_topk_sparse_matmul.h"
#include "sparseonnx/kernels.h"

namespace sparseonnx::test {
namespace {

namespace gpu = sparseonnx::cuda;

std::string NoDeviceReason() {
  int count = 0;
  const cudaError_t error = cudaGetDeviceCount(&count);
  if (error != cudaSuccess) {
    cudaGetLastError();
    return std::string("no usable CUDA device (") + cudaGetErrorName(error) + ")";
  }
  return count > 0 ? "" : "no CUDA device";
}


#define CUDA_OK(call) ASSERT_EQ((call), cudaSuccess) << #call

// Device memory freed at scope exit.
class DeviceBuffer {
 public:
  explicit DeviceBuffer(size_t bytes) : bytes_(bytes) {
    if (bytes > 0 && cudaMalloc(&data_, bytes) != cudaSuccess) data_ = nullptr;
  }
  ~DeviceBuffer() { cudaFree(data_); }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  void* get() const { return data_; }
  size_t size() const { return bytes_; }

 private:
  void* data_ = nullptr;
  size_t bytes_;
};

// Values of `type` as raw bytes, and the same values as float (exactly what the device sees).
struct Typed {
  std::vector<unsigned char> raw;
  std::vector<float> values;
};

Typed Quantize(const std::vector<float>& values, ElementType type) {
  Typed t;
  t.raw.resize(values.size() * ElementSize(type));
  StoreFloats(values.data(), static_cast<int64_t>(values.size()), type, t.raw.data());
  t.values = ToFloats(t.raw.data(), type, values.size());
  return t;
}

struct Case {
  ElementType type;
  int64_t M, K, N;
  SelectionRule rule;
  gpu::PathChoice path = gpu::PathChoice::kGatherGemv;
  bool aligned = true;  // false: the plan uses one element per lane
};

std::string Describe(const Case& c) {
  return std::string(ElementTypeName(c.type)) + " M=" + std::to_string(c.M) + " K=" + std::to_string(c.K) +
         " N=" + std::to_string(c.N) + (c.rule.mode == SelectionRule::Mode::kTopK ? " k=" + std::to_string(c.rule.k)
                                                                                 : " threshold=" + std::to_string(c.rule.threshold)) +
         (c.path == gpu::PathChoice::kMaskedDense ? " masked-dense" : " gather") + (c.aligned ? "" : " unvectorized");
}

// Runs the case on the device; returns Y as float. The workspace starts as garbage (nothing may rely on it being
// zero); `tickets`, when given, are the caller's kept-zero counters.
std::vector<float> RunOnDevice(const Case& c, const Typed& a, const Typed& b, gpu::Plan* plan_out = nullptr,
                               gpu::TicketBuffer tickets = {}) {
  const gpu::Problem problem{ToCudaElementType(c.type), c.M, c.K, c.N, ToCudaSelection(c.rule)};
  int device = 0;
  cudaGetDevice(&device);
  const gpu::Plan plan = gpu::PlanTopKSparseMatMul(problem, gpu::QueryDeviceFacts(device), c.aligned, c.path);
  if (plan_out) *plan_out = plan;
  const size_t y_bytes = static_cast<size_t>(c.M * c.N) * ElementSize(c.type);
  DeviceBuffer da(a.raw.size()), db(b.raw.size()), dy(y_bytes), workspace(plan.workspace_bytes);
  cudaMemcpy(da.get(), a.raw.data(), a.raw.size(), cudaMemcpyHostToDevice);
  cudaMemcpy(db.get(), b.raw.data(), b.raw.size(), cudaMemcpyHostToDevice);
  cudaMemset(dy.get(), 0xff, y_bytes);  // NaN everywhere: an output the kernels never write shows up
  cudaMemset(workspace.get(), 0xab, plan.workspace_bytes);
  cudaStream_t stream = nullptr;
  cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking);
  const gpu::Status status =
      gpu::LaunchTopKSparseMatMul(problem, plan, da.get(), db.get(), dy.get(), workspace.get(), plan.workspace_bytes, stream, tickets);
  EXPECT_TRUE(status.ok()) << status.message;
  EXPECT_EQ(cudaStreamSynchronize(stream), cudaSuccess) << Describe(c);
  cudaStreamDestroy(stream);
  std::vector<unsigned char> y_raw(y_bytes);
  cudaMemcpy(y_raw.data(), dy.get(), y_bytes, cudaMemcpyDeviceToHost);
  return ToFloats(y_raw.data(), c.type, static_cast<size_t>(c.M * c.N));
}

// Y within the float32 accumulation bound of the reference, plus one rounding to the output type.
void ExpectMatchesReference(const Case& c, const std::vector<float>& a_values, const std::vector<float>& b_values) {
  const Typed a = Quantize(a_values, c.type), b = Quantize(b_values, c.type);
  const std::vector<float> y = RunOnDevice(c, a, b);
  const std::vector<double> expected = ReferenceProduct(a.values, b.values, c.M, c.K, c.N, c.rule);
  const std::vector<double> bound = ErrorBound(a.values, b.values, c.M, c.K, c.N, c.rule);
  const double output_rounding = c.type == ElementType::kFloat32 ? 0.0 : c.type == ElementType::kFloat16 ? std::ldexp(1.0, -11)
                                                                                                          : std::ldexp(1.0, -8);
  int reported = 0;
  for (size_t i = 0; i < y.size(); ++i) {
    if (std::isnan(expected[i])) {
      EXPECT_TRUE(std::isnan(y[i])) << Describe(c) << " at " << i;
      continue;
    }
    const double tolerance = bound[i] * (1 + output_rounding) + output_rounding * std::fabs(expected[i]) + 1e-7;
    if (std::fabs(y[i] - expected[i]) > tolerance && reported++ < 5)
      ADD_FAILURE() << Describe(c) << ": Y[" << i / c.N << ", " << i % c.N << "] = " << y[i] << ", expected " << expected[i]
                    << " ± " << tolerance;
  }
}

std::vector<float> Normal(size_t count, std::mt19937& random) {
  std::normal_distribution<float> normal;
  std::vector<float> v(count);
  for (auto& x : v) x = normal(random);
  return v;
}

TEST(CudaTopKSparseMatMul, MatchesTheReferenceAcrossShapesTypesAndPaths) {
  SPARSEONNX_SKIP_IF_UNAVAILABLE(NoDeviceReason());
  std::string cublas_missing;
  const bool dense_path = gpu::CublasAvailable(&cublas_missing);
  if (!dense_path) std::printf("masked dense path not tested: %s\n", cublas_missing.c_str());
  std::mt19937 random(10);
  const std::vector<std::array<int64_t, 3>> shapes = {{1, 1, 1},    {1, 31, 7},    {1, 300, 1000}, {1, 4099, 520}, {2, 64, 4104},
                                                      {3, 129, 33}, {5, 1000, 64}, {8, 257, 2048}, {9, 77, 130},  {33, 515, 96}};
  for (ElementType type : {ElementType::kFloat32, ElementType::kFloat16, ElementType::kBFloat16}) {
    for (auto [M, K, N] : shapes) {
      const std::vector<float> a = Normal(static_cast<size_t>(M * K), random), b = Normal(static_cast<size_t>(K * N), random);
      for (SelectionRule rule : {SelectionRule::TopK(1), SelectionRule::TopK((K + 2) / 3), SelectionRule::TopK(K),
                                 SelectionRule::Threshold(0.f), SelectionRule::Threshold(0.8f), SelectionRule::Threshold(1e30f)}) {
        ExpectMatchesReference({type, M, K, N, rule, gpu::PathChoice::kGatherGemv, true}, a, b);
        ExpectMatchesReference({type, M, K, N, rule, gpu::PathChoice::kGatherGemv, false}, a, b);
        if (dense_path) ExpectMatchesReference({type, M, K, N, rule, gpu::PathChoice::kMaskedDense, true}, a, b);
      }
    }
  }
}

TEST(CudaTopKSparseMatMul, TiesGoToTheLowerIndexAndSignedZerosAreEqual) {
  SPARSEONNX_SKIP_IF_UNAVAILABLE(NoDeviceReason());
  std::mt19937 random(11);
  // Magnitudes from a tiny set, so most entries tie; the top-k cut falls inside a run of ties.
  const float levels[] = {0.f, -0.f, 1.f, -1.f, 2.f, -2.f};
  for (int64_t M : {1, 3, 8}) {
    const int64_t K = 1030, N = 72;
    std::vector<float> a(static_cast<size_t>(M * K));
    for (auto& x : a) x = levels[random() % 6];
    const std::vector<float> b = Normal(static_cast<size_t>(K * N), random);
    for (int64_t k : {1, 17, 300, 700, 1029})
      for (auto path : {gpu::PathChoice::kGatherGemv, gpu::PathChoice::kMaskedDense}) {
        if (path == gpu::PathChoice::kMaskedDense && !gpu::CublasAvailable()) continue;
        ExpectMatchesReference({ElementType::kFloat32, M, K, N, SelectionRule::TopK(k), path}, a, b);
      }
  }
}

TEST(CudaTopKSparseMatMul, NaNRanksFirstAndPropagatesAndInfinityIsKept) {
  SPARSEONNX_SKIP_IF_UNAVAILABLE(NoDeviceReason());
  std::mt19937 random(12);
  const int64_t M = 2, K = 100, N = 40;
  std::vector<float> a = Normal(static_cast<size_t>(M * K), random);
  a[5] = std::nanf("");                                  // row 0: NaN is kept by top-k 1 and spreads to every output
  a[K + 7] = std::numeric_limits<float>::infinity();     // row 1: +Inf is the largest number
  const std::vector<float> b = Normal(static_cast<size_t>(K * N), random);
  for (SelectionRule rule : {SelectionRule::TopK(1), SelectionRule::TopK(10), SelectionRule::Threshold(0.5f)})
    ExpectMatchesReference({ElementType::kFloat32, M, K, N, rule}, a, b);
}

TEST(CudaTopKSparseMatMul, GatherResultsAreBitwiseRepeatableAndKeptTicketsStayZero) {
  SPARSEONNX_SKIP_IF_UNAVAILABLE(NoDeviceReason());
  std::mt19937 random(13);
  for (SelectionRule rule : {SelectionRule::TopK(2048), SelectionRule::Threshold(0.7f)}) {
    const Case c{ElementType::kFloat16, 4, 4096, 4096, rule};
    const Typed a = Quantize(Normal(static_cast<size_t>(c.M * c.K), random), c.type);
    const Typed b = Quantize(Normal(static_cast<size_t>(c.K * c.N), random), c.type);
    gpu::Plan plan;
    const std::vector<float> first = RunOnDevice(c, a, b, &plan);  // counters in the workspace, zeroed by the call
    ASSERT_GT(plan.k_splits, 1) << "the case should exercise the split-K reduction";
    ASSERT_GT(plan.ticket_count, 0);
    // Tickets kept across calls (as the ORT op keeps them per stream): zeroed once, left zero by every call.
    DeviceBuffer tickets(static_cast<size_t>(plan.ticket_count) * sizeof(uint32_t));
    CUDA_OK(cudaMemset(tickets.get(), 0, tickets.size()));
    for (int run = 0; run < 3; ++run) {
      const std::vector<float> again =
          RunOnDevice(c, a, b, nullptr, gpu::TicketBuffer{static_cast<uint32_t*>(tickets.get()), plan.ticket_count});
      ASSERT_EQ(0, std::memcmp(first.data(), again.data(), first.size() * sizeof(float))) << Describe(c) << " run " << run;
    }
    std::vector<uint32_t> left(static_cast<size_t>(plan.ticket_count));
    CUDA_OK(cudaMemcpy(left.data(), tickets.get(), tickets.size(), cudaMemcpyDeviceToHost));
    EXPECT_EQ(std::count(left.begin(), left.end(), 0u), plan.ticket_count) << "a call left a ticket counter non-zero";
  }
}

TEST(CudaTopKSparseMatMul, DeviceFactsKnowEveryGatherVariantsOccupancy) {
  SPARSEONNX_SKIP_IF_UNAVAILABLE(NoDeviceReason());
  int device = 0;
  CUDA_OK(cudaGetDevice(&device));
  const gpu::DeviceFacts facts = gpu::QueryDeviceFacts(device);
  EXPECT_GT(facts.multiprocessors, 1);
  for (int type = 0; type < 3; ++type)
    for (int rows = 0; rows < 4; ++rows)
      for (int vector = 0; vector < 2; ++vector) {
        std::printf("gather variant type %d, %d rows, %s: %d resident blocks per SM\n", type, 1 << rows, vector == 0 ? "16-byte" : "scalar",
                    facts.gather_resident_blocks[type][rows][vector]);
        EXPECT_GT(facts.gather_resident_blocks[type][rows][vector], 0);
      }
}

// ---- plans: host-only, run everywhere ----------------------------------------------------------------

TEST(CudaPlan, GatherSplitsCoverKWithoutEmptySplitsAndFillTheDevice) {
  for (auto [M, K, N] : std::vector<std::array<int64_t, 3>>{{1, 4096, 14336}, {1, 14336, 4096}, {1, 4096, 1024}, {1, 31, 7},
                                                          {4, 4096, 6144}, {8, 4096, 4096}, {64, 128, 4096}}) {
    for (auto type : {gpu::ElementType::kFloat16, gpu::ElementType::kFloat32}) {
      const gpu::Problem problem{type, M, K, N, gpu::Selection{true, (K + 1) / 2, 0.f}};
      const gpu::Plan plan = gpu::PlanTopKSparseMatMul(problem, gpu::DeviceFacts{132}, true, gpu::PathChoice::kGatherGemv);
      SCOPED_TRACE("M=" + std::to_string(M) + " K=" + std::to_string(K) + " N=" + std::to_string(N));
      EXPECT_EQ(plan.path, gpu::Path::kGatherGemv);
      EXPECT_EQ(plan.k_per_warp % 32, 0);
      const int64_t warps = 4;
      EXPECT_GE(plan.k_splits * warps * plan.k_per_warp, K);        // every entry of K is walked
      EXPECT_LT((plan.k_splits - 1) * warps * plan.k_per_warp, K);  // and no split is empty
      const int64_t wide = type == gpu::ElementType::kFloat16 ? 8 : 4;
      EXPECT_EQ(plan.vector_width, N % wide == 0 ? wide : 1);
      EXPECT_EQ(plan.column_tiles, (N + 32 * plan.vector_width - 1) / (32 * plan.vector_width));
      if (K * N >= 4096 * 4096) {  // smaller products are bound by latency, not by the blocks in flight
        EXPECT_GE(plan.column_tiles * plan.k_splits * plan.row_groups, 132) << "too few blocks for the device";
      }
      const size_t partials = plan.k_splits > 1 ? static_cast<size_t>(plan.k_splits * M * N) * sizeof(float) : 0;
      EXPECT_GE(plan.workspace_bytes, partials + static_cast<size_t>(M) * 8);
    }
  }
}

TEST(CudaPlan, TheGatherGridStaysWithinOneWaveOfResidentBlocks) {
  gpu::DeviceFacts facts;
  facts.multiprocessors = 132;
  for (auto& type : facts.gather_resident_blocks)
    for (auto& rows : type)
      for (auto& blocks : rows) blocks = 3;
  const gpu::Problem problem{gpu::ElementType::kFloat16, 1, 4096, 14336, gpu::Selection{false, 0, 0.5f}};
  const gpu::Plan capped = gpu::PlanTopKSparseMatMul(problem, facts, true, gpu::PathChoice::kGatherGemv);
  const gpu::Plan uncapped = gpu::PlanTopKSparseMatMul(problem, gpu::DeviceFacts{132}, true, gpu::PathChoice::kGatherGemv);
  const int64_t capped_blocks = capped.column_tiles * capped.k_splits, uncapped_blocks = uncapped.column_tiles * uncapped.k_splits;
  EXPECT_LE(capped_blocks, 3 * 132 + capped.column_tiles) << "more blocks than one wave (rounding to whole splits aside)";
  EXPECT_GT(uncapped_blocks, capped_blocks) << "with unknown occupancy the tuning's 8 blocks per SM apply";
}

TEST(CudaPlan, UnalignedOrOddWidthsUseOneElementPerLane) {
  const gpu::Problem problem{gpu::ElementType::kBFloat16, 1, 256, 1000, gpu::Selection{false, 0, 0.5f}};
  EXPECT_EQ(gpu::PlanTopKSparseMatMul(problem, gpu::DeviceFacts{108}, true).vector_width, 8);
  EXPECT_EQ(gpu::PlanTopKSparseMatMul(problem, gpu::DeviceFacts{108}, false).vector_width, 1);
  gpu::Problem odd = problem;
  odd.n = 1001;
  EXPECT_EQ(gpu::PlanTopKSparseMatMul(odd, gpu::DeviceFacts{108}, true).vector_width, 1);
}

TEST(CudaPlan, LargeBatchesTakeTheMaskedDenseProductWhenCublasLoads) {
  const gpu::Problem decode{gpu::ElementType::kFloat16, gpu::kMaxGatherRows, 4096, 4096, gpu::Selection{true, 2048, 0.f}};
  EXPECT_EQ(gpu::PlanTopKSparseMatMul(decode, gpu::DeviceFacts{132}, true).path, gpu::Path::kGatherGemv);
  gpu::Problem prefill = decode;
  prefill.m = gpu::kMaxGatherRows + 1;
  const gpu::Plan plan = gpu::PlanTopKSparseMatMul(prefill, gpu::DeviceFacts{132}, true);
  EXPECT_EQ(plan.path, gpu::CublasAvailable() ? gpu::Path::kMaskedDense : gpu::Path::kGatherGemv);
  if (plan.path == gpu::Path::kMaskedDense) {  // the masked copy of A [m, K] and the top-k selections
    EXPECT_GE(plan.workspace_bytes, static_cast<size_t>(prefill.m * prefill.k_dim * 2 + prefill.m * 8));
    gpu::Problem keep_all = prefill;  // k = K drops nothing: A goes to the GEMM as it is, no scratch
    keep_all.selection.k = keep_all.k_dim;
    EXPECT_EQ(gpu::PlanTopKSparseMatMul(keep_all, gpu::DeviceFacts{132}, true).workspace_bytes, 0u);
  }
}

TEST(CudaLaunch, RejectsInvalidProblemsAndShortWorkspacesBeforeTouchingTheDevice) {
  gpu::Problem problem{gpu::ElementType::kFloat32, 1, 64, 64, gpu::Selection{true, 65, 0.f}};
  EXPECT_NE(gpu::ValidateProblem(problem).find("k = 65 is outside [1, K = 64]"), std::string::npos);
  gpu::Status status = gpu::LaunchTopKSparseMatMul(problem, gpu::Plan{}, nullptr, nullptr, nullptr, nullptr, 0, nullptr);
  EXPECT_FALSE(status.ok());
  EXPECT_NE(status.message.find("k = 65"), std::string::npos) << status.message;

  problem.selection = gpu::Selection{false, 0, std::nanf("")};
  EXPECT_NE(gpu::ValidateProblem(problem).find("threshold"), std::string::npos);

  problem.selection = gpu::Selection{true, 8, 0.f};
  const gpu::Plan plan = gpu::PlanTopKSparseMatMul(problem, gpu::DeviceFacts{132}, true);
  ASSERT_GT(plan.workspace_bytes, 0u);
  status = gpu::LaunchTopKSparseMatMul(problem, plan, nullptr, nullptr, nullptr, nullptr, plan.workspace_bytes - 1, nullptr);
  EXPECT_NE(status.message.find("workspace"), std::string::npos) << status.message;
}

}  // namespace
}  // namespace sparseonnx::test
