// A minimal ONNX model writer for the native host tests and the CUDA bench: just enough protobuf encoding to
// describe a graph of a few nodes with typed inputs and raw initializers, so they need no protobuf library.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace sparseonnx::test {

struct OnnxAttribute {
  std::string name;
  bool is_int = true;
  int64_t i = 0;
  float f = 0.f;
};

struct OnnxDim {
  int64_t value = -1;  // used when symbol is empty
  std::string symbol;
};

// ONNX TensorProto element types used here.
constexpr int kOnnxFloat = 1;
constexpr int kOnnxFloat16 = 10;
constexpr int kOnnxBFloat16 = 16;

struct OnnxNode {
  std::string op_type;
  std::string domain;  // "" for the standard ops
  std::vector<std::string> inputs, outputs;
  std::vector<OnnxAttribute> attributes;
};

struct OnnxInitializer {
  std::string name;
  int elem_type = kOnnxFloat;
  std::vector<int64_t> dims;
  std::string raw;  // little-endian element bytes
};

struct OnnxValue {
  std::string name;
  int elem_type = kOnnxFloat;
  std::vector<OnnxDim> dims;
  bool typed = true;  // false: an output whose type and shape ORT infers
};

// A model of `nodes` (opset 17 plus ai.sparseonnx 1 and com.microsoft 1) over `inputs` and `initializers`, producing `outputs`.
std::string GraphModel(const std::vector<OnnxNode>& nodes, const std::vector<OnnxInitializer>& initializers,
                       const std::vector<OnnxValue>& inputs, const std::vector<OnnxValue>& outputs);

// Y = op(A, B) with A a graph input [dims] and B a float32 initializer [K, N].
std::string SingleNodeModel(const std::string& domain, const std::string& op_type, const std::vector<OnnxDim>& a_dims,
                            int64_t K, int64_t N, const std::vector<float>& b, const std::vector<OnnxAttribute>& attributes);

}  // namespace sparseonnx::test
