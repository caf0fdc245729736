// A minimal ONNX model writer for the native host test: just enough protobuf encoding to describe a graph of
// one node with float inputs and a float initializer, so the test needs no protobuf library.
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

// Y = op(A, B) with A a graph input [dims] and B a float32 initializer [K, N].
std::string SingleNodeModel(const std::string& domain, const std::string& op_type, const std::vector<OnnxDim>& a_dims,
                            int64_t K, int64_t N, const std::vector<float>& b, const std::vector<OnnxAttribute>& attributes);

}  // namespace sparseonnx::test
