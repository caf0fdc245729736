// TopKSparseMatMul on CUDA, in two launches per call:
//   1. SelectKernel: one block per row of A picks the kept entries (threshold compare, or exact top-k by a
//      four-pass radix select over 8-bit digits of the magnitude key) and writes them compacted, in index
//      order, as (index, float value) pairs with their count.
//   2. GatherGemvKernel: for each row, Y[row, n] = Σ_j value_j · B[index_j, n], reading only the kept rows
//      of B, coalesced along N, accumulated in float32 and rounded to the output type once.
// Correct for any M (rows loop over gridDim.y); the masked dense product through cuBLAS for large M is
// the next step (the ORT adapter will pick it above a row count).
#include "sparseonnx/cuda_topk_sparse_matmul.h"

#include <cub/block/block_scan.cuh>
#include <cuda_bf16.h>
#include <cuda_fp16.h>

namespace sparseonnx::cuda {
namespace {

// Threads per selection block: each chunk of the row is one entry per thread.
constexpr int kSelectThreads = 256;
// Threads per GEMV block, and columns each thread owns (strided by the block size, so every load of a
// warp is 32 consecutive elements of one row of B).
constexpr int kGemvThreads = 256;
constexpr int kGemvColumnsPerThread = 4;
// Kept (index, value) pairs staged in shared memory at a time by the GEMV.
constexpr int kGemvStage = 512;
// Rows per grid.y; larger M loops.
constexpr int kMaxGridRows = 65535;

__device__ __forceinline__ float ToFloat(float x) { return x; }
__device__ __forceinline__ float ToFloat(__half x) { return __half2float(x); }
__device__ __forceinline__ float ToFloat(__nv_bfloat16 x) { return __bfloat162float(x); }

template <typename T>
__device__ __forceinline__ T FromFloat(float x);
template <>
__device__ __forceinline__ float FromFloat<float>(float x) { return x; }
template <>
__device__ __forceinline__ __half FromFloat<__half>(float x) { return __float2half_rn(x); }
template <>
__device__ __forceinline__ __nv_bfloat16 FromFloat<__nv_bfloat16>(float x) { return __float2bfloat16_rn(x); }

// The bit pattern of |x| as float32: orders like the magnitude, puts NaN above +Inf, and maps -0.0 and +0.0
// to the same key (the CPU kernel's key, so both devices select the same entries).
__device__ __forceinline__ uint32_t MagnitudeKey(float x) { return __float_as_uint(x) & 0x7fffffffu; }

struct Workspace {
  int32_t* indices;  // [m, k_dim]
  float* values;     // [m, k_dim]
  int32_t* counts;   // [m]
};

size_t AlignUp(size_t bytes) { return (bytes + 255) / 256 * 256; }

Workspace Carve(void* workspace, int64_t m, int64_t k_dim) {
  auto* base = static_cast<unsigned char*>(workspace);
  size_t pairs = static_cast<size_t>(m) * static_cast<size_t>(k_dim);
  Workspace w;
  w.indices = reinterpret_cast<int32_t*>(base);
  w.values = reinterpret_cast<float*>(base + AlignUp(pairs * sizeof(int32_t)));
  w.counts = reinterpret_cast<int32_t*>(base + AlignUp(pairs * sizeof(int32_t)) + AlignUp(pairs * sizeof(float)));
  return w;
}

// One block per row. Keeps keys above `pivot`, plus the first `ties` entries (in index order) whose key equals
// it: threshold mode has pivot = key(threshold) and no ties; top-k finds pivot = the k-th largest key.
template <typename T>
__global__ void __launch_bounds__(kSelectThreads)
    SelectKernel(const T* __restrict__ a, int64_t m, int64_t k_dim, Selection selection, Workspace out) {
  using Scan = cub::BlockScan<int, kSelectThreads>;
  __shared__ typename Scan::TempStorage scan_storage;
  __shared__ uint32_t histogram[256];
  __shared__ uint32_t shared_prefix;
  __shared__ int32_t shared_remaining;
  __shared__ int32_t running[2];  // kept so far, ties kept so far

  for (int64_t row = blockIdx.x; row < m; row += gridDim.x) {
    const T* a_row = a + row * k_dim;
    uint32_t pivot;
    int32_t ties;
    if (!selection.by_k) {
      pivot = MagnitudeKey(selection.threshold);
      ties = 0;
    } else {
      // Radix select from the most significant digit: after each pass, the digit where the count of larger
      // keys first reaches the k still to place is fixed, and k shrinks by the keys above that digit.
      if (threadIdx.x == 0) {
        shared_prefix = 0;
        shared_remaining = static_cast<int32_t>(selection.k);
      }
      uint32_t mask = 0;
      for (int shift = 24; shift >= 0; shift -= 8) {
        for (int d = threadIdx.x; d < 256; d += blockDim.x) histogram[d] = 0;
        __syncthreads();
        const uint32_t prefix = shared_prefix;
        for (int64_t i = threadIdx.x; i < k_dim; i += blockDim.x) {
          uint32_t key = MagnitudeKey(ToFloat(a_row[i]));
          if ((key & mask) == prefix) atomicAdd(&histogram[(key >> shift) & 255u], 1u);
        }
        __syncthreads();
        if (threadIdx.x == 0) {
          int32_t remaining = shared_remaining, above = 0;
          int digit = 255;
          for (; digit > 0; --digit) {
            if (above + static_cast<int32_t>(histogram[digit]) >= remaining) break;
            above += static_cast<int32_t>(histogram[digit]);
          }
          shared_prefix = prefix | (static_cast<uint32_t>(digit) << shift);
          shared_remaining = remaining - above;
        }
        mask |= 255u << shift;
        __syncthreads();
      }
      pivot = shared_prefix;
      ties = shared_remaining;
    }

    // Ordered compaction, one chunk of blockDim entries at a time: block-wide scans give each kept entry its
    // slot and each tie its rank among the ties before it, so ties go to the lowest indices.
    if (threadIdx.x == 0) running[0] = running[1] = 0;
    __syncthreads();
    for (int64_t base = 0; base < k_dim; base += blockDim.x) {
      int64_t i = base + threadIdx.x;
      float value = 0.f;
      uint32_t key = 0;
      bool in_range = i < k_dim;
      if (in_range) {
        value = ToFloat(a_row[i]);
        key = MagnitudeKey(value);
      }
      int is_tie = in_range && key == pivot && selection.by_k ? 1 : 0;
      int tie_rank, tie_total;
      Scan(scan_storage).ExclusiveSum(is_tie, tie_rank, tie_total);
      __syncthreads();
      int keep = in_range && (key > pivot || (is_tie && running[1] + tie_rank < ties)) ? 1 : 0;
      int slot, kept_total;
      Scan(scan_storage).ExclusiveSum(keep, slot, kept_total);
      if (keep) {
        int64_t at = row * k_dim + running[0] + slot;
        out.indices[at] = static_cast<int32_t>(i);
        out.values[at] = value;
      }
      __syncthreads();
      if (threadIdx.x == 0) {
        running[0] += kept_total;
        running[1] += tie_total;
      }
      __syncthreads();
    }
    if (threadIdx.x == 0) out.counts[row] = running[0];
    __syncthreads();
  }
}

// grid.x: column tiles of kGemvThreads × kGemvColumnsPerThread; grid.y: rows (looping when M is larger).
// Each block stages the row's kept (index, value) pairs in shared memory and streams the matching rows of B.
template <typename T>
__global__ void __launch_bounds__(kGemvThreads)
    GatherGemvKernel(const T* __restrict__ b, T* __restrict__ y, int64_t m, int64_t k_dim, int64_t n, Workspace kept) {
  __shared__ int32_t stage_index[kGemvStage];
  __shared__ float stage_value[kGemvStage];
  const int64_t tile = static_cast<int64_t>(blockIdx.x) * kGemvThreads * kGemvColumnsPerThread;

  for (int64_t row = blockIdx.y; row < m; row += gridDim.y) {
    float sum[kGemvColumnsPerThread] = {};
    const int32_t count = kept.counts[row];
    const int32_t* indices = kept.indices + row * k_dim;
    const float* values = kept.values + row * k_dim;
    for (int32_t first = 0; first < count; first += kGemvStage) {
      int32_t staged = min(kGemvStage, count - first);
      for (int s = threadIdx.x; s < staged; s += blockDim.x) {
        stage_index[s] = indices[first + s];
        stage_value[s] = values[first + s];
      }
      __syncthreads();
      for (int s = 0; s < staged; ++s) {
        const T* b_row = b + static_cast<int64_t>(stage_index[s]) * n;
        const float v = stage_value[s];
#pragma unroll
        for (int c = 0; c < kGemvColumnsPerThread; ++c) {
          int64_t column = tile + c * kGemvThreads + threadIdx.x;
          if (column < n) sum[c] += v * ToFloat(b_row[column]);
        }
      }
      __syncthreads();
    }
#pragma unroll
    for (int c = 0; c < kGemvColumnsPerThread; ++c) {
      int64_t column = tile + c * kGemvThreads + threadIdx.x;
      if (column < n) y[row * n + column] = FromFloat<T>(sum[c]);
    }
  }
}

template <typename T>
cudaError_t Launch(const void* a, const void* b, void* y, int64_t m, int64_t k_dim, int64_t n, Selection selection,
                   Workspace workspace, cudaStream_t stream) {
  if (m == 0 || n == 0) return cudaSuccess;
  unsigned rows = static_cast<unsigned>(m < kMaxGridRows ? m : kMaxGridRows);
  SelectKernel<T><<<rows, kSelectThreads, 0, stream>>>(static_cast<const T*>(a), m, k_dim, selection, workspace);
  int64_t columns_per_block = static_cast<int64_t>(kGemvThreads) * kGemvColumnsPerThread;
  dim3 grid(static_cast<unsigned>((n + columns_per_block - 1) / columns_per_block), rows);
  GatherGemvKernel<T><<<grid, kGemvThreads, 0, stream>>>(static_cast<const T*>(b), static_cast<T*>(y), m, k_dim, n, workspace);
  return cudaGetLastError();
}

}  // namespace

size_t TopKSparseMatMulWorkspaceBytes(int64_t m, int64_t k_dim) {
  size_t pairs = static_cast<size_t>(m) * static_cast<size_t>(k_dim);
  return AlignUp(pairs * sizeof(int32_t)) + AlignUp(pairs * sizeof(float)) + AlignUp(static_cast<size_t>(m) * sizeof(int32_t));
}

cudaError_t LaunchTopKSparseMatMul(ElementType type, const void* a, const void* b, void* y, int64_t m, int64_t k_dim,
                                   int64_t n, Selection selection, void* workspace, size_t workspace_bytes,
                                   cudaStream_t stream) {
  if (m < 0 || k_dim < 1 || n < 0 || k_dim > INT32_MAX) return cudaErrorInvalidValue;
  if (selection.by_k ? (selection.k < 1 || selection.k > k_dim) : !(selection.threshold >= 0.f)) return cudaErrorInvalidValue;
  if (workspace_bytes < TopKSparseMatMulWorkspaceBytes(m, k_dim)) return cudaErrorInvalidValue;
  Workspace carved = Carve(workspace, m, k_dim);
  switch (type) {
    case ElementType::kFloat32: return Launch<float>(a, b, y, m, k_dim, n, selection, carved, stream);
    case ElementType::kFloat16: return Launch<__half>(a, b, y, m, k_dim, n, selection, carved, stream);
    case ElementType::kBFloat16: return Launch<__nv_bfloat16>(a, b, y, m, k_dim, n, selection, carved, stream);
  }
  return cudaErrorInvalidValue;
}

}  // namespace sparseonnx::cuda
