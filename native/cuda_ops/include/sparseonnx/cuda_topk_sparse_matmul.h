// TopKSparseMatMul on CUDA: the kernel core, as plain host functions that launch on a given stream.
// No ONNX Runtime headers here (the ORT adapter that registers the op for CUDAExecutionProvider calls these),
// so the kernels can be built and tested on their own. The contract is docs/topk-sparse-matmul.md.
#pragma once

#include <cstddef>
#include <cstdint>

#include <cuda_runtime_api.h>

namespace sparseonnx::cuda {

/// Element type of A, B and Y (one type for all three).
enum class ElementType { kFloat32, kFloat16, kBFloat16 };

/// Per-row selection: keep the k largest |a| (ties to the lower index), or every |a| > threshold.
struct Selection {
  bool by_k;        // true: top-k; false: threshold
  int64_t k;        // 1 ≤ k ≤ K when by_k
  float threshold;  // ≥ 0 when !by_k
};

/// Bytes of device scratch LaunchTopKSparseMatMul needs for an [m, k_dim] A: the kept indices and values of
/// every row, and their counts. The caller allocates it (from ORT's allocator: no cudaMalloc per call).
size_t TopKSparseMatMulWorkspaceBytes(int64_t m, int64_t k_dim);

/// Y [m, n] = Σ over kept i of A[r, i] · B[i, n] per row r, accumulated in float32; A [m, k_dim], B [k_dim, n],
/// row-major, device pointers. Launches on `stream` only (no device-wide synchronization) and returns the
/// launch status (cudaGetLastError), which the caller turns into an ORT error.
cudaError_t LaunchTopKSparseMatMul(ElementType type, const void* a, const void* b, void* y, int64_t m, int64_t k_dim,
                                   int64_t n, Selection selection, void* workspace, size_t workspace_bytes,
                                   cudaStream_t stream);

}  // namespace sparseonnx::cuda
