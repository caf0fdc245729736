// TopKSparseMatMul on CUDA: the kernel core, as plain host functions that launch on a given stream.
// No ONNX Runtime headers here (the ORT adapter in src/CustomOps/native/cuda calls these), so the kernels are
// built and tested on their own. The contract is docs/topk-sparse-matmul.md; the design is its CUDA section.
//
// A call is planned (PlanTopKSparseMatMul: which path, how the work is split, how much scratch), the caller
// allocates the scratch (from ORT's allocator in the op: nothing is allocated per call here), and
// LaunchTopKSparseMatMul enqueues the kernels on the caller's stream without any synchronization.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include <cuda_runtime_api.h>

namespace sparseonnx::cuda {

/// Element type of A, B and Y (one type for all three). Accumulation is always float32.
enum class ElementType { kFloat32, kFloat16, kBFloat16 };

size_t ElementBytes(ElementType type);

/// Per-row selection: keep the k largest |a| (NaN above +Inf, ties to the lower index), or every |a| > threshold.
struct Selection {
  bool by_k = true;
  int64_t k = 1;            // 1 ≤ k ≤ K when by_k
  float threshold = 0.f;    // ≥ 0 when !by_k
};

/// One product: Y [m, n] = (A ⊙ mask) [m, k_dim] · B [k_dim, n], row-major.
struct Problem {
  ElementType type = ElementType::kFloat16;
  int64_t m = 0;
  int64_t k_dim = 0;
  int64_t n = 0;
  Selection selection;
};

/// How a call computes the product.
enum class Path {
  // Rows of A in groups of up to kGatherRowGroup: every group reads only the rows of B that one of its rows
  // kept, split along K over the whole GPU. Correct for any m; the decode path.
  kGatherGemv,
  // A ⊙ mask written densely, then one cuBLAS GEMM: B is read once for all rows. The prefill path.
  kMaskedDense,
};

/// Rows of A one gather block handles together (each kept row of B is read once per group).
constexpr int64_t kGatherRowGroup = 8;
/// Above this many rows, the masked dense product (cuBLAS) is used when cuBLAS can be loaded. At m rows the
/// gather reads about ceil(m / 8) · (fraction of B's rows the group kept) of B; the dense product reads it
/// once. Measured crossover on a GPU: pending (docs/topk-sparse-matmul.md).
constexpr int64_t kMaxGatherRows = kGatherRowGroup;

/// What the GPU offers the plan: QueryDeviceFacts asks the device once; tests may fill it by hand.
struct DeviceFacts {
  int multiprocessors = 1;
  // Gather blocks that fit on one SM at once (registers and shared memory), per kernel variant: element type
  // (ElementType order) × rows per group (1, 2, 4, 8) × vector (16-byte, one element). 0: unknown. The plan
  // keeps the grid within one wave of resident blocks: a second, partial wave would only add a tail.
  int gather_resident_blocks[3][4][2] = {};
};

/// The facts of `device`. Occupancy is asked only when `device` is the calling thread's current device (else
/// left unknown); on failure the facts say one multiprocessor and unknown occupancy, and plans stay correct.
DeviceFacts QueryDeviceFacts(int device);

enum class PathChoice { kAuto, kGatherGemv, kMaskedDense };

/// How the gather's grid is sized: the defaults are estimates from HBM's latency-bandwidth product, to be tuned
/// on a GPU (sparseonnx_cuda_bench --blocks-per-sm sweeps the first).
struct GatherTuning {
  int64_t blocks_per_multiprocessor = 8;  // blocks of 4 warps wanted per SM, at most the resident ones
  int64_t min_entries_per_warp = 32;      // the fewest entries of K a warp walks (a split's fixed cost)
};

struct Plan {
  Path path = Path::kGatherGemv;
  // Gather: blocks along N (each 32 lanes × one 16-byte vector of columns), along K (each block's slice of
  // K, partial sums added by the last block of a column tile), and row groups.
  int64_t column_tiles = 0;
  int64_t k_splits = 0;
  int64_t row_groups = 0;
  int64_t k_per_warp = 0;  // entries of K each warp walks (a multiple of 32)
  int vector_width = 1;    // elements per lane per load: 16 bytes' worth when n and the pointers allow
  int64_t ticket_count = 0;  // the gather's counters, one per column tile and row group, when K is split
  size_t workspace_bytes = 0;
};

/// Counters the gather may keep across calls on one stream: zero when first handed over (cudaMemset once),
/// and every call leaves them zero again, so a call needs no zeroing launch. Calls on different streams need
/// different ticket buffers. Optional: without one, a call zeroes counters in its workspace.
struct TicketBuffer {
  uint32_t* data = nullptr;
  int64_t count = 0;
};

/// Why a problem cannot be launched, or "" when it can.
std::string ValidateProblem(const Problem& problem);

/// Plans one call. `aligned` says whether B and Y start on 16-byte boundaries (ORT's allocations do); with
/// kAuto the masked dense path is taken for m > kMaxGatherRows when cuBLAS is available.
Plan PlanTopKSparseMatMul(const Problem& problem, const DeviceFacts& device, bool aligned, PathChoice choice = PathChoice::kAuto,
                          const GatherTuning& tuning = GatherTuning{});

struct Status {
  cudaError_t cuda = cudaSuccess;
  std::string message;  // empty on success
  bool ok() const { return cuda == cudaSuccess && message.empty(); }
  static Status Ok() { return {}; }
};

/// Enqueues the planned product on `stream`: a, b, y and workspace (plan.workspace_bytes) are device pointers.
/// Returns the launch status (a kernel's own faults surface at the next synchronization, as for any CUDA
/// work). Never synchronizes and never allocates.
Status LaunchTopKSparseMatMul(const Problem& problem, const Plan& plan, const void* a, const void* b, void* y,
                              void* workspace, size_t workspace_bytes, cudaStream_t stream, TicketBuffer tickets = {});

/// Whether cuBLAS could be loaded into this process (the masked dense path needs it), and if not, why.
bool CublasAvailable(std::string* why = nullptr);

}  // namespace sparseonnx::cuda
