// The TopKSparseMatMul custom op for ONNX Runtime's CPU execution provider.
#pragma once

#include "onnxruntime_c_api.h"

namespace sparseonnx::cpu {

// The op's OrtCustomOp descriptions, one per supported element type (float32, float16, bfloat16). ORT
// merges ops of the same name into one schema and picks the kernel by input type.
const OrtCustomOp* const* TopKSparseMatMulOps(size_t* count);

}  // namespace sparseonnx::cpu
