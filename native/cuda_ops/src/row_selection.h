// The per-row selection as every CUDA kernel applies it, plus the launchers of the kernels (src/*.cu) that the
// host dispatch (topk_sparse_matmul.cc) calls. Internal to native/cuda_ops.
#pragma once

#include <cstdint>

#include <cuda_runtime_api.h>

#include "sparseonnx/cuda_topk_sparse_matmul.h"

#if defined(__CUDACC__)
#define SPARSEONNX_HOST_DEVICE __host__ __device__
#else
#define SPARSEONNX_HOST_DEVICE
#endif

namespace sparseonnx::cuda {

// Which entries of one row of A are kept, as a test on each entry's magnitude key (the bit pattern of |a| as
// float32: ordered like the magnitude, NaN above +Inf, -0.0 = +0.0; the CPU kernel's key, so both devices
// keep the same entries): keep when key > pivot, or key == pivot and index ≤ last_tie.
//   threshold t: pivot = key(t), last_tie = -1 (strictly greater);
//   top-k:       pivot = the k-th largest key, last_tie = the index of the last tie that still fits in k.
struct RowSelection {
  uint32_t pivot;
  int32_t last_tie;
};

SPARSEONNX_HOST_DEVICE inline uint32_t MagnitudeKeyOfBits(uint32_t float_bits) { return float_bits & 0x7fffffffu; }

SPARSEONNX_HOST_DEVICE inline bool Keeps(RowSelection selection, uint32_t key, int64_t index) {
  return key > selection.pivot || (key == selection.pivot && index <= selection.last_tie);
}

// A selection that keeps nothing (rows past m in a gather row group): no key exceeds 0xffffffff.
constexpr RowSelection kKeepNothing{0xffffffffu, -1};

// Top-k: writes each row's RowSelection to `selections` [m]. Block 0 also zeroes `counters` [counter_count]
// (the gather's tickets), so a top-k call needs no separate memset.
cudaError_t LaunchTopKPivots(ElementType type, const void* a, int64_t m, int64_t k_dim, int64_t k, RowSelection* selections,
                             uint32_t* counters, int64_t counter_count, cudaStream_t stream);

// The gather GEMV's block: this many warps, each walking its own slice of K for the block's column tile.
constexpr int kGatherWarps = 4;

struct GatherArguments {
  const void* a;
  const void* b;
  void* y;
  int64_t m, k_dim, n;
  const RowSelection* selections;  // [m], or null: every row uses `uniform`
  RowSelection uniform;
  float* partials;                 // [k_splits, m, n] when k_splits > 1
  uint32_t* counters;              // [row_groups, column_tiles], zero on entry when k_splits > 1; left zero
};

// Rows of A per gather group for an m-row call: 1, 2, 4, or kGatherRowGroup (the plan's row_groups follow).
int64_t GatherRowsPerGroup(int64_t m);

// Index of a rows-per-group value (1, 2, 4, 8) in DeviceFacts::gather_resident_blocks.
inline int RowGroupIndex(int64_t rows_per_group) { return rows_per_group <= 1 ? 0 : rows_per_group <= 2 ? 1 : rows_per_group <= 4 ? 2 : 3; }

// Blocks of the gather variant that fit on one SM of the current device, or 0 when it cannot be asked.
int GatherResidentBlocks(ElementType type, int64_t rows_per_group, bool wide);

// The gather GEMV over the plan's grid.
cudaError_t LaunchGatherGemv(ElementType type, const Plan& plan, const GatherArguments& arguments, cudaStream_t stream);

// masked [m, k_dim] = A with the dropped entries set to +0.0.
cudaError_t LaunchMaskRows(ElementType type, const void* a, void* masked, int64_t m, int64_t k_dim, const RowSelection* selections,
                           RowSelection uniform, cudaStream_t stream);

}  // namespace sparseonnx::cuda
