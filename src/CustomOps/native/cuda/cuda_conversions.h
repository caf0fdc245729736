// The CPU kernel core's element type and selection rule as the CUDA kernel core's: the CUDA op, the CUDA tests
// and the CUDA benchmark all speak kernels.h and hand the CUDA core its own types.
#pragma once

#include "sparseonnx/cuda_topk_sparse_matmul.h"
#include "sparseonnx/kernels.h"

namespace sparseonnx {

inline cuda::ElementType ToCudaElementType(ElementType type) {
  switch (type) {
    case ElementType::kFloat32: return cuda::ElementType::kFloat32;
    case ElementType::kFloat16: return cuda::ElementType::kFloat16;
    case ElementType::kBFloat16: return cuda::ElementType::kBFloat16;
  }
  return cuda::ElementType::kFloat32;
}

inline cuda::Selection ToCudaSelection(const SelectionRule& rule) {
  cuda::Selection selection;
  selection.by_k = rule.mode == SelectionRule::Mode::kTopK;
  selection.k = rule.k;
  selection.threshold = rule.threshold;
  return selection;
}

}  // namespace sparseonnx
