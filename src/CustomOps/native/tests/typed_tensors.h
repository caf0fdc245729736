// Element types as ONNX and ONNX Runtime number them, and float values stored as raw elements of a type: for the
// host tests and the benchmark that build typed models and tensors.
#pragma once

#include <string>
#include <vector>

#include "onnx_writer.h"
#include "onnxruntime_c_api.h"
#include "sparseonnx/kernels.h"

namespace sparseonnx::test {

inline int OnnxElementType(ElementType type) {
  switch (type) {
    case ElementType::kFloat32: return kOnnxFloat;
    case ElementType::kFloat16: return kOnnxFloat16;
    case ElementType::kBFloat16: return kOnnxBFloat16;
  }
  return kOnnxFloat;
}

inline ONNXTensorElementDataType OrtElementType(ElementType type) {
  switch (type) {
    case ElementType::kFloat32: return ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT;
    case ElementType::kFloat16: return ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT16;
    case ElementType::kBFloat16: return ONNX_TENSOR_ELEMENT_DATA_TYPE_BFLOAT16;
  }
  return ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT;
}

// `values` rounded to `type` (round to nearest even), as little-endian element bytes.
inline std::string RawElements(const std::vector<float>& values, ElementType type) {
  std::string raw(values.size() * ElementSize(type), '\0');
  StoreFloats(values.data(), static_cast<int64_t>(values.size()), type, raw.data());
  return raw;
}

}  // namespace sparseonnx::test
