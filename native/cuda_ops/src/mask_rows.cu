// A ⊙ mask written densely, for the masked dense product (cuBLAS reads it like any A).
#include "elements.cuh"

namespace sparseonnx::cuda {
namespace {

constexpr int kMaskThreads = 256;
constexpr int64_t kMaxGridY = 65535;

// grid.x strides along K, grid.y along the rows (looping beyond 65535). Kept entries are copied bit for bit,
// dropped ones become +0.0: the CPU kernel's MaskRow.
template <typename T>
__global__ void __launch_bounds__(kMaskThreads)
    MaskRowsKernel(const T* __restrict__ a, T* __restrict__ masked, int64_t m, int64_t k_dim,
                   const RowSelection* __restrict__ selections, RowSelection uniform) {
  const T zero = FromFloat<T>(0.f);
  for (int64_t row = blockIdx.y; row < m; row += gridDim.y) {
    const RowSelection selection = selections ? selections[row] : uniform;
    const T* a_row = a + row * k_dim;
    T* masked_row = masked + row * k_dim;
    for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < k_dim;
         i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
      const T value = a_row[i];
      masked_row[i] = Keeps(selection, MagnitudeKey(value), i) ? value : zero;
    }
  }
}

}  // namespace

cudaError_t LaunchMaskRows(ElementType type, const void* a, void* masked, int64_t m, int64_t k_dim, const RowSelection* selections,
                           RowSelection uniform, cudaStream_t stream) {
  if (m <= 0 || k_dim <= 0) return cudaSuccess;
  const int64_t blocks_along_k = (k_dim + kMaskThreads - 1) / kMaskThreads;
  const dim3 grid(static_cast<unsigned>(blocks_along_k < 64 ? blocks_along_k : 64),
                  static_cast<unsigned>(m < kMaxGridY ? m : kMaxGridY));
  SPARSEONNX_DISPATCH_ELEMENT(type, (MaskRowsKernel<T><<<grid, kMaskThreads, 0, stream>>>(
                                         static_cast<const T*>(a), static_cast<T*>(masked), m, k_dim, selections, uniform),
                                     cudaGetLastError()));
}

}  // namespace sparseonnx::cuda
