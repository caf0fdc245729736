// The gather GEMV: Y[r, :] = Σ over kept i of A[r, i] · B[i, :], reading only the rows of B that a row of the
// group kept. The decode path (m = 1 is the case that matters most: TEAL's target).
//
// Grid: x = column tiles (32 lanes × kVec columns), y = K splits, z = row groups of up to kRows rows.
// Block: kGatherWarps warps; warp w walks its own slice of the block's K range, 32 entries at a time:
//   1. each lane tests its entry against the group's row selections (A is tiny and cached; its kept values
//      become the lane's coefficients), and a ballot gives the warp the kept entries of the 32;
//   2. the kept rows of B are loaded kUnroll at a time (the loads are issued before any is used, so each warp
//      keeps kUnroll 16-byte loads per lane in flight: that, not the thread count, is what fills HBM), and
//      each lane multiplies its kVec columns by the coefficients, broadcast from the owning lane by shuffle.
// Partial sums are added in a fixed order (warps in the block through shared memory, then K splits by the
// last block of each column tile to finish, found by a ticket counter, which that block resets to zero), so
// results do not depend on timing.
#include "elements.cuh"

namespace sparseonnx::cuda {
namespace {

constexpr int kThreads = kGatherWarps * 32;
// Kept rows of B loaded before the first is used.
constexpr int kUnroll = 8;
constexpr int64_t kMaxGridZ = 65535;

// kVec elements that one lane loads with one instruction (16 bytes when kVec = 16 / sizeof(T)).
template <typename T, int kVec>
struct alignas(sizeof(T) * kVec) Pack {
  T values[kVec];
};

// T: element type; kRows: rows of A per group (1, 2, 4 or 8; each lane holds kRows × kVec float sums);
// kVec: columns per lane (16 bytes' worth, or 1 when N or the pointers are not 16-byte aligned).
template <typename T, int kRows, int kVec>
__global__ void __launch_bounds__(kThreads)
    GatherGemvKernel(const T* __restrict__ a, const T* __restrict__ b, T* __restrict__ y, int64_t m, int64_t k_dim, int64_t n,
                     const RowSelection* __restrict__ selections, RowSelection uniform, int64_t k_per_warp, int64_t row_groups,
                     float* __restrict__ partials, uint32_t* __restrict__ counters) {
  constexpr int kTile = 32 * kVec;  // columns per block
  __shared__ float warp_sums[kGatherWarps][kRows][kTile];
  __shared__ bool finishes_tile;
  const int warp = static_cast<int>(threadIdx.x / 32), lane = static_cast<int>(threadIdx.x % 32);
  const int64_t tile = blockIdx.x, split = blockIdx.y, k_splits = gridDim.y;
  const int64_t column = tile * kTile + static_cast<int64_t>(lane) * kVec;  // this lane's first column
  // With kVec > 1 the plan guarantees n % kVec == 0, so a vector is wholly inside [0, n) or wholly outside.
  const bool column_in_range = column < n;

  for (int64_t group = blockIdx.z; group < row_groups; group += gridDim.z) {
    const int64_t row0 = group * kRows;
    const int rows = static_cast<int>(m - row0 < kRows ? m - row0 : kRows);
    RowSelection selection[kRows];
#pragma unroll
    for (int r = 0; r < kRows; ++r) selection[r] = r < rows ? (selections ? selections[row0 + r] : uniform) : kKeepNothing;

    float sum[kRows][kVec];
#pragma unroll
    for (int r = 0; r < kRows; ++r)
#pragma unroll
      for (int v = 0; v < kVec; ++v) sum[r][v] = 0.f;

    const int64_t begin = (split * kGatherWarps + warp) * k_per_warp;
    const int64_t end = begin + k_per_warp < k_dim ? begin + k_per_warp : k_dim;
    for (int64_t base = begin; base < end; base += 32) {
      const int64_t i = base + lane;
      float coefficient[kRows];
      bool any = false;
#pragma unroll
      for (int r = 0; r < kRows; ++r) {
        coefficient[r] = 0.f;
        if (i < end && r < rows) {
          const float value = ToFloat(a[(row0 + r) * k_dim + i]);
          if (Keeps(selection[r], MagnitudeKeyOfBits(__float_as_uint(value)), i)) {
            coefficient[r] = value;
            any = true;
          }
        }
      }
      unsigned kept = __ballot_sync(0xffffffffu, any);  // the same in every lane: the loops below are uniform
      while (kept != 0u) {
        int source[kUnroll];  // lanes whose entries are processed now, -1 for none
#pragma unroll
        for (int u = 0; u < kUnroll; ++u) {
          source[u] = kept != 0u ? __ffs(kept) - 1 : -1;
          kept &= kept - 1u;
        }
        Pack<T, kVec> loaded[kUnroll];
#pragma unroll
        for (int u = 0; u < kUnroll; ++u)
          if (source[u] >= 0 && column_in_range)
            loaded[u] = *reinterpret_cast<const Pack<T, kVec>*>(b + (base + source[u]) * n + column);
#pragma unroll
        for (int u = 0; u < kUnroll; ++u) {
          if (source[u] < 0) continue;
#pragma unroll
          for (int r = 0; r < kRows; ++r) {
            const float c = __shfl_sync(0xffffffffu, coefficient[r], source[u]);
            if (column_in_range)
#pragma unroll
              for (int v = 0; v < kVec; ++v) sum[r][v] = fmaf(c, ToFloat(loaded[u].values[v]), sum[r][v]);
          }
        }
      }
    }

    // Warps' sums, added in warp order.
#pragma unroll
    for (int r = 0; r < kRows; ++r)
#pragma unroll
      for (int v = 0; v < kVec; ++v) warp_sums[warp][r][lane * kVec + v] = sum[r][v];
    __syncthreads();
    for (int e = threadIdx.x; e < kRows * kTile; e += kThreads) {
      const int r = e / kTile, c = e % kTile;
      const int64_t col = tile * kTile + c;
      if (r >= rows || col >= n) continue;
      float total = warp_sums[0][r][c];
#pragma unroll
      for (int w = 1; w < kGatherWarps; ++w) total += warp_sums[w][r][c];
      if (k_splits == 1) y[(row0 + r) * n + col] = FromFloat<T>(total);
      else partials[(split * m + row0 + r) * n + col] = total;
    }
    if (k_splits > 1) {
      // The last block of this column tile and row group to finish adds the splits' partials in split order.
      __threadfence();  // this block's partials are visible device-wide before its ticket is
      __syncthreads();
      if (threadIdx.x == 0) {
        uint32_t* ticket = &counters[group * gridDim.x + tile];
        finishes_tile = atomicAdd(ticket, 1u) == k_splits - 1;
        // Every other block of this call has taken its ticket: reset it, so a caller may keep the counters
        // between calls on one stream instead of zeroing them each time.
        if (finishes_tile) *ticket = 0u;
      }
      __syncthreads();
      if (finishes_tile) {
        __threadfence();
        for (int e = threadIdx.x; e < kRows * kTile; e += kThreads) {
          const int r = e / kTile, c = e % kTile;
          const int64_t col = tile * kTile + c;
          if (r >= rows || col >= n) continue;
          float total = 0.f;
          for (int64_t s = 0; s < k_splits; ++s) total += __ldcg(&partials[(s * m + row0 + r) * n + col]);  // from L2, not a stale L1
          y[(row0 + r) * n + col] = FromFloat<T>(total);
        }
      }
    }
    __syncthreads();  // warp_sums and finishes_tile are reused by the next group
  }
}

template <typename T, int kRows, int kVec>
cudaError_t Launch(const Plan& plan, const GatherArguments& g, cudaStream_t stream) {
  const dim3 grid(static_cast<unsigned>(plan.column_tiles), static_cast<unsigned>(plan.k_splits),
                  static_cast<unsigned>(plan.row_groups < kMaxGridZ ? plan.row_groups : kMaxGridZ));
  GatherGemvKernel<T, kRows, kVec><<<grid, kThreads, 0, stream>>>(
      static_cast<const T*>(g.a), static_cast<const T*>(g.b), static_cast<T*>(g.y), g.m, g.k_dim, g.n, g.selections, g.uniform,
      plan.k_per_warp, plan.row_groups, g.partials, g.counters);
  return cudaGetLastError();
}

template <typename T, int kRows>
cudaError_t LaunchForRows(const Plan& plan, const GatherArguments& g, cudaStream_t stream) {
  constexpr int kWide = static_cast<int>(16 / sizeof(T));
  if (plan.vector_width == kWide) return Launch<T, kRows, kWide>(plan, g, stream);
  if (plan.vector_width == 1) return Launch<T, kRows, 1>(plan, g, stream);
  return cudaErrorInvalidValue;
}

template <typename T>
cudaError_t LaunchTyped(const Plan& plan, const GatherArguments& g, cudaStream_t stream) {
  // The smallest group that holds every row (one group of 1, 2 or 4 for small batches), else groups of 8.
  if (g.m <= 1) return LaunchForRows<T, 1>(plan, g, stream);
  if (g.m <= 2) return LaunchForRows<T, 2>(plan, g, stream);
  if (g.m <= 4) return LaunchForRows<T, 4>(plan, g, stream);
  return LaunchForRows<T, kGatherRowGroup>(plan, g, stream);
}

template <typename T, int kRows>
int ResidentForRows(bool wide) {
  constexpr int kWide = static_cast<int>(16 / sizeof(T));
  int blocks = 0;
  const cudaError_t error = wide ? cudaOccupancyMaxActiveBlocksPerMultiprocessor(&blocks, GatherGemvKernel<T, kRows, kWide>, kThreads, 0)
                                 : cudaOccupancyMaxActiveBlocksPerMultiprocessor(&blocks, GatherGemvKernel<T, kRows, 1>, kThreads, 0);
  if (error != cudaSuccess) {
    cudaGetLastError();
    return 0;
  }
  return blocks;
}

template <typename T>
int ResidentTyped(int64_t rows_per_group, bool wide) {
  switch (RowGroupIndex(rows_per_group)) {
    case 0: return ResidentForRows<T, 1>(wide);
    case 1: return ResidentForRows<T, 2>(wide);
    case 2: return ResidentForRows<T, 4>(wide);
    default: return ResidentForRows<T, kGatherRowGroup>(wide);
  }
}

}  // namespace

int GatherResidentBlocks(ElementType type, int64_t rows_per_group, bool wide) {
  switch (type) {
    case ElementType::kFloat32: return ResidentTyped<float>(rows_per_group, wide);
    case ElementType::kFloat16: return ResidentTyped<__half>(rows_per_group, wide);
    case ElementType::kBFloat16: return ResidentTyped<__nv_bfloat16>(rows_per_group, wide);
  }
  return 0;
}

int64_t GatherRowsPerGroup(int64_t m) { return m <= 1 ? 1 : m <= 2 ? 2 : m <= 4 ? 4 : kGatherRowGroup; }

cudaError_t LaunchGatherGemv(ElementType type, const Plan& plan, const GatherArguments& arguments, cudaStream_t stream) {
  if (arguments.m <= 0 || arguments.n <= 0) return cudaSuccess;
  SPARSEONNX_DISPATCH_ELEMENT(type, LaunchTyped<T>(plan, arguments, stream));
}

}  // namespace sparseonnx::cuda
