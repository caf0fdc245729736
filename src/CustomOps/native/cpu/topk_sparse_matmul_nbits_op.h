// The TopKSparseMatMulNBits custom op (sparse input × N-bit weights stored by input row) for ONNX Runtime's
// CPU execution provider. Sessions with the CUDA execution provider place it on the CPU.
#pragma once

#include "onnxruntime_c_api.h"

namespace sparseonnx::cpu {

const OrtCustomOp* TopKSparseMatMulNBitsOp();

}  // namespace sparseonnx::cpu
