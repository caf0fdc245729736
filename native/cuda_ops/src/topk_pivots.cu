// Top-k selection per row of A as a RowSelection (pivot key and last kept tie): an exact radix select over the
// 32-bit magnitude keys, four passes of 8-bit digits from the most significant, each a 256-bin histogram in
// shared memory over the row entries whose higher digits match the prefix found so far.
#include <cub/block/block_scan.cuh>

#include "elements.cuh"

namespace sparseonnx::cuda {
namespace {

// One block per row (rows loop over the grid): 512 threads read a row of up to ~30K entries in a few strides.
constexpr int kPivotThreads = 512;
// Rows per grid; more loop.
constexpr int64_t kMaxPivotBlocks = 65535;

template <typename T>
__global__ void __launch_bounds__(kPivotThreads)
    TopKPivotKernel(const T* __restrict__ a, int64_t m, int64_t k_dim, int32_t k, RowSelection* __restrict__ selections,
                    uint32_t* __restrict__ counters, int64_t counter_count) {
  using Scan = cub::BlockScan<int, kPivotThreads>;
  __shared__ typename Scan::TempStorage scan_storage;
  __shared__ uint32_t histogram[256];
  __shared__ uint32_t shared_prefix;     // the digits of the pivot found so far
  __shared__ int32_t shared_remaining;   // how many of the keys matching the prefix are still to keep
  __shared__ int32_t shared_equal;       // keys equal to the pivot (the last pass's bin)
  __shared__ int32_t shared_tie_base;    // ties seen in earlier chunks
  __shared__ int32_t shared_last_tie;

  if (blockIdx.x == 0)  // the gather's tickets, zeroed here so that top-k needs no memset launch
    for (int64_t i = threadIdx.x; i < counter_count; i += blockDim.x) counters[i] = 0;

  const int lane = threadIdx.x % 32;
  for (int64_t row = blockIdx.x; row < m; row += gridDim.x) {
    const T* a_row = a + row * k_dim;
    if (threadIdx.x == 0) {
      shared_prefix = 0;
      shared_remaining = k;
    }
    uint32_t mask = 0;  // the digits fixed so far
    for (int shift = 24; shift >= 0; shift -= 8) {
      for (int d = threadIdx.x; d < 256; d += blockDim.x) histogram[d] = 0;
      __syncthreads();
      const uint32_t prefix = shared_prefix;
      for (int64_t i = threadIdx.x; i < k_dim; i += blockDim.x) {
        const uint32_t key = MagnitudeKey(a_row[i]);
        // Activations crowd into a few bins (the high digits are mostly the exponent), so the lanes of a warp
        // that hit the same bin add once, together: one shared atomic per distinct bin, not per entry.
        const uint32_t bin = (key & mask) == prefix ? (key >> shift) & 255u : 256u;  // 256: not counted
        const unsigned peers = __match_any_sync(__activemask(), bin);
        if (bin < 256u && lane == __ffs(peers) - 1) atomicAdd(&histogram[bin], static_cast<uint32_t>(__popc(peers)));
      }
      __syncthreads();
      // The first warp finds the digit d where the count of matching keys with digit ≥ d first reaches the
      // number still to keep: lane l owns digits [8l, 8l + 8); a suffix sum over lanes says which lane holds
      // d, and that lane walks its eight bins from the top.
      if (threadIdx.x < 32) {
        int32_t own = 0;
        for (int j = 0; j < 8; ++j) own += static_cast<int32_t>(histogram[8 * lane + j]);
        int32_t from_top = own;  // Σ over lanes ≥ this one
        for (int offset = 1; offset < 32; offset <<= 1) {
          const int32_t other = __shfl_down_sync(0xffffffffu, from_top, offset);
          if (lane + offset < 32) from_top += other;
        }
        const int32_t above = from_top - own;  // keys in higher lanes' digits
        const int32_t remaining = shared_remaining;
        if (above < remaining && remaining <= from_top) {
          int32_t larger = above;
          int digit = 8 * lane + 7;
          for (; digit > 8 * lane; --digit) {
            if (larger + static_cast<int32_t>(histogram[digit]) >= remaining) break;
            larger += static_cast<int32_t>(histogram[digit]);
          }
          shared_prefix = prefix | (static_cast<uint32_t>(digit) << shift);
          shared_remaining = remaining - larger;
          shared_equal = static_cast<int32_t>(histogram[digit]);
        }
      }
      mask |= 255u << shift;
      __syncthreads();
    }
    const uint32_t pivot = shared_prefix;
    const int32_t ties = shared_remaining;  // keys equal to the pivot that fit in k, 1 ≤ ties ≤ equal
    int32_t last_tie = INT32_MAX;           // every tie fits: no index limit
    if (ties < shared_equal) {
      // Keep the first `ties` entries equal to the pivot in index order: an ordered scan over chunks finds
      // the index of the last one.
      if (threadIdx.x == 0) {
        shared_tie_base = 0;
        shared_last_tie = -1;
      }
      __syncthreads();
      for (int64_t base = 0; base < k_dim; base += blockDim.x) {
        const int64_t i = base + threadIdx.x;
        const int is_tie = i < k_dim && MagnitudeKey(a_row[i]) == pivot ? 1 : 0;
        int rank = 0, total = 0;
        Scan(scan_storage).ExclusiveSum(is_tie, rank, total);
        const int32_t before = shared_tie_base;
        if (is_tie && before + rank == ties - 1) shared_last_tie = static_cast<int32_t>(i);
        __syncthreads();
        if (threadIdx.x == 0) shared_tie_base = before + total;
        __syncthreads();
        if (shared_last_tie >= 0) break;  // the same value in every thread: the loop exits together
      }
      last_tie = shared_last_tie;
    }
    if (threadIdx.x == 0) selections[row] = RowSelection{pivot, last_tie};
    __syncthreads();  // the shared state is reset for the next row
  }
}

}  // namespace

cudaError_t LaunchTopKPivots(ElementType type, const void* a, int64_t m, int64_t k_dim, int64_t k, RowSelection* selections,
                             uint32_t* counters, int64_t counter_count, cudaStream_t stream) {
  if (m <= 0) return cudaSuccess;
  const unsigned blocks = static_cast<unsigned>(m < kMaxPivotBlocks ? m : kMaxPivotBlocks);
  SPARSEONNX_DISPATCH_ELEMENT(type, (TopKPivotKernel<T><<<blocks, kPivotThreads, 0, stream>>>(
                                         static_cast<const T*>(a), m, k_dim, static_cast<int32_t>(k), selections, counters,
                                         counter_count),
                                     cudaGetLastError()));
}

}  // namespace sparseonnx::cuda
