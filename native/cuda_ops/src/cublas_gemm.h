// The masked dense product's GEMM through cuBLAS, which is loaded at run time (dlopen) rather than linked: the
// op library must load on hosts without CUDA (it carries the CPU op too), and in a process running ORT's
// CUDA execution provider cuBLAS is already loaded, so the op uses that very copy.
#pragma once

#include <cstdint>
#include <string>

#include <cuda_runtime_api.h>

#include "sparseonnx/cuda_topk_sparse_matmul.h"

namespace sparseonnx::cuda {

// Y [m, n] = A [m, k] · B [k, n], row-major, element type `type` for all three, float32 accumulation
// (CUBLAS_COMPUTE_32F: no TF32 shortcut for float32, so it matches the CPU op), on `stream`, through a cuBLAS
// handle of the calling thread and the current device.
Status RowMajorGemm(ElementType type, int64_t m, int64_t n, int64_t k, const void* a, const void* b, void* y, cudaStream_t stream);

}  // namespace sparseonnx::cuda
