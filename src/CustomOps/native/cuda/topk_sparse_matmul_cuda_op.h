// The TopKSparseMatMul custom op for ONNX Runtime's CUDA execution provider (built when CMake finds nvcc).
#pragma once

#include "onnxruntime_c_api.h"

namespace sparseonnx::cuda_op {

// The op's OrtCustomOp descriptions for "CUDAExecutionProvider", one per element type (float32, float16,
// bfloat16). They sit in the same domain as the CPU ones: ORT assigns a node to the CUDA variant when the
// session has the CUDA provider, and to the CPU one otherwise.
const OrtCustomOp* const* TopKSparseMatMulOps(size_t* count);

}  // namespace sparseonnx::cuda_op
