// Plans and launches one TopKSparseMatMul on CUDA: which path, how the gather is split over the GPU, where each
// piece of scratch lives, and the kernels in order on the caller's stream.
#include <algorithm>
#include <climits>
#include <cstring>

#include "cublas_gemm.h"
#include "row_selection.h"
#include "sparseonnx/cuda_topk_sparse_matmul.h"

namespace sparseonnx::cuda {
namespace {

constexpr int64_t kMaxGridDim = 65535;

size_t AlignUp(size_t bytes) { return (bytes + 255) / 256 * 256; }

int64_t DivideUp(int64_t x, int64_t y) { return (x + y - 1) / y; }

// Where each piece of scratch starts, in one allocation.
struct Layout {
  size_t selections = 0, counters = 0, partials = 0, masked = 0, total = 0;
};

// Top-k with k = K drops nothing: the masked dense path then multiplies A itself, with no selection or mask.
bool KeepsEverything(const Problem& p) { return p.selection.by_k && p.selection.k == p.k_dim; }

Layout LayoutFor(const Problem& p, const Plan& plan) {
  Layout layout;
  size_t at = 0;
  if (plan.path == Path::kMaskedDense && KeepsEverything(p)) return layout;
  layout.selections = at;
  if (p.selection.by_k) at += AlignUp(static_cast<size_t>(p.m) * sizeof(RowSelection));
  if (plan.path == Path::kGatherGemv) {
    layout.counters = at;
    if (plan.k_splits > 1) {
      at += AlignUp(static_cast<size_t>(plan.ticket_count) * sizeof(uint32_t));
      layout.partials = at;
      at += AlignUp(static_cast<size_t>(plan.k_splits * p.m * p.n) * sizeof(float));
    }
  } else {
    layout.masked = at;
    at += AlignUp(static_cast<size_t>(p.m * p.k_dim) * ElementBytes(p.type));
  }
  layout.total = at;
  return layout;
}

template <typename T>
T* At(void* workspace, size_t offset) {
  return reinterpret_cast<T*>(static_cast<unsigned char*>(workspace) + offset);
}

Status CudaFailure(cudaError_t error, const char* what) {
  if (error == cudaSuccess) return Status::Ok();
  return {error, std::string(what) + " failed: " + cudaGetErrorName(error) + " (" + cudaGetErrorString(error) + ")"};
}

RowSelection ThresholdSelection(float threshold) {
  uint32_t bits = 0;
  std::memcpy(&bits, &threshold, sizeof bits);
  return RowSelection{MagnitudeKeyOfBits(bits), -1};
}

}  // namespace

size_t ElementBytes(ElementType type) { return type == ElementType::kFloat32 ? 4 : 2; }

DeviceFacts QueryDeviceFacts(int device) {
  DeviceFacts facts;
  int multiprocessors = 0;
  if (cudaDeviceGetAttribute(&multiprocessors, cudaDevAttrMultiProcessorCount, device) != cudaSuccess || multiprocessors <= 0) {
    cudaGetLastError();  // clear it: a one-SM plan is small but correct
    return facts;
  }
  facts.multiprocessors = multiprocessors;
  int current = -1;
  if (cudaGetDevice(&current) != cudaSuccess || current != device) {
    cudaGetLastError();
    return facts;
  }
  for (int type = 0; type < 3; ++type)
    for (int rows = 0; rows < 4; ++rows)
      for (int vector = 0; vector < 2; ++vector)
        facts.gather_resident_blocks[type][rows][vector] =
            GatherResidentBlocks(static_cast<ElementType>(type), int64_t{1} << rows, vector == 0);
  return facts;
}

std::string ValidateProblem(const Problem& p) {
  if (p.m < 0 || p.n < 0) return "negative dimensions";
  if (p.k_dim < 1) return "K must be at least 1";
  if (p.k_dim > INT32_MAX) return "K exceeds 2^31 - 1 (indices are 32-bit)";
  if (p.selection.by_k && (p.selection.k < 1 || p.selection.k > p.k_dim))
    return "k = " + std::to_string(p.selection.k) + " is outside [1, K = " + std::to_string(p.k_dim) + "]";
  if (!p.selection.by_k && !(p.selection.threshold >= 0.f)) return "the threshold must be a non-negative number";
  return "";
}

// GatherTuning's defaults: 8 blocks of 4 warps per SM keep 32 warps × 8 loads of 16 bytes per lane in flight,
// more than HBM's latency-bandwidth product needs (~16 KB per SM on an H100); below 32 entries of K per warp a
// split's fixed costs (testing its slice of A, the partial sums) outweigh the rows it reads.
Plan PlanTopKSparseMatMul(const Problem& p, const DeviceFacts& device, bool aligned, PathChoice choice, const GatherTuning& tuning) {
  Plan plan;
  const bool dense = choice == PathChoice::kMaskedDense ||
                     (choice == PathChoice::kAuto && p.m > kMaxGatherRows && CublasAvailable());
  if (dense) {
    plan.path = Path::kMaskedDense;
  } else {
    plan.path = Path::kGatherGemv;
    const int wide = static_cast<int>(16 / ElementBytes(p.type));
    plan.vector_width = aligned && p.n % wide == 0 ? wide : 1;
    plan.column_tiles = std::max<int64_t>(1, DivideUp(p.n, 32 * plan.vector_width));
    plan.row_groups = std::max<int64_t>(1, DivideUp(p.m, GatherRowsPerGroup(p.m)));
    int64_t per_multiprocessor = std::max<int64_t>(1, tuning.blocks_per_multiprocessor);
    const int resident = device.gather_resident_blocks[static_cast<int>(p.type)][RowGroupIndex(GatherRowsPerGroup(p.m))]
                                                      [plan.vector_width > 1 ? 0 : 1];
    if (resident > 0) per_multiprocessor = std::min<int64_t>(per_multiprocessor, resident);  // one wave
    const int64_t blocks_wanted = std::max(1, device.multiprocessors) * per_multiprocessor;
    const int64_t blocks_without_split = plan.column_tiles * std::min(plan.row_groups, kMaxGridDim);
    const int64_t most_splits = std::min(kMaxGridDim, std::max<int64_t>(1, p.k_dim / (kGatherWarps * std::max<int64_t>(32, tuning.min_entries_per_warp))));
    const int64_t splits = std::clamp<int64_t>(DivideUp(blocks_wanted, blocks_without_split), 1, most_splits);
    plan.k_per_warp = DivideUp(DivideUp(p.k_dim, splits * kGatherWarps), 32) * 32;
    plan.k_splits = DivideUp(p.k_dim, plan.k_per_warp * kGatherWarps);
    plan.ticket_count = plan.k_splits > 1 ? plan.row_groups * plan.column_tiles : 0;
  }
  plan.workspace_bytes = LayoutFor(p, plan).total;
  return plan;
}

Status LaunchTopKSparseMatMul(const Problem& p, const Plan& plan, const void* a, const void* b, void* y, void* workspace,
                              size_t workspace_bytes, cudaStream_t stream, TicketBuffer tickets) {
  if (const std::string problem = ValidateProblem(p); !problem.empty()) return {cudaErrorInvalidValue, problem};
  const Layout layout = LayoutFor(p, plan);
  if (workspace_bytes < layout.total)
    return {cudaErrorInvalidValue, "the workspace has " + std::to_string(workspace_bytes) + " bytes; the plan needs " +
                                       std::to_string(layout.total)};
  if (p.m == 0 || p.n == 0) return Status::Ok();

  auto* selections = p.selection.by_k ? At<RowSelection>(workspace, layout.selections) : nullptr;
  const RowSelection uniform = p.selection.by_k ? kKeepNothing : ThresholdSelection(p.selection.threshold);

  if (plan.path == Path::kGatherGemv) {
    const bool split = plan.k_splits > 1;
    // The caller's kept-zero tickets when it has enough, else counters in the workspace that this call zeroes
    // (in the top-k selection kernel when there is one, else with a memset).
    const bool kept_tickets = split && tickets.data != nullptr && tickets.count >= plan.ticket_count;
    auto* counters = !split ? nullptr : kept_tickets ? tickets.data : At<uint32_t>(workspace, layout.counters);
    const int64_t counter_count = split && !kept_tickets ? plan.ticket_count : 0;
    if (p.selection.by_k) {
      if (Status s = CudaFailure(LaunchTopKPivots(p.type, a, p.m, p.k_dim, p.selection.k, selections, counters, counter_count, stream),
                                 "the top-k selection kernel");
          !s.ok())
        return s;
    } else if (counter_count > 0) {
      if (Status s = CudaFailure(cudaMemsetAsync(counters, 0, static_cast<size_t>(counter_count) * sizeof(uint32_t), stream),
                                 "zeroing the gather's counters");
          !s.ok())
        return s;
    }
    GatherArguments arguments{a, b, y, p.m, p.k_dim, p.n, selections, uniform,
                              split ? At<float>(workspace, layout.partials) : nullptr, counters};
    return CudaFailure(LaunchGatherGemv(p.type, plan, arguments, stream), "the gather GEMV kernel");
  }

  // Masked dense: A itself when nothing is dropped, else A ⊙ mask; then one GEMM.
  const void* product_input = a;
  if (!KeepsEverything(p)) {
    if (p.selection.by_k)
      if (Status s = CudaFailure(LaunchTopKPivots(p.type, a, p.m, p.k_dim, p.selection.k, selections, nullptr, 0, stream),
                                 "the top-k selection kernel");
          !s.ok())
        return s;
    void* masked = At<void>(workspace, layout.masked);
    if (Status s = CudaFailure(LaunchMaskRows(p.type, a, masked, p.m, p.k_dim, selections, uniform, stream), "the masking kernel");
        !s.ok())
      return s;
    product_input = masked;
  }
  return RowMajorGemm(p.type, p.m, p.n, p.k_dim, product_input, b, y, stream);
}

}  // namespace sparseonnx::cuda
