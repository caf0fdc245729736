#include "onnx_writer.h"

#include <cstring>

namespace sparseonnx::test {
namespace {

// Protobuf wire format: field key = (number << 3) | wire type; 0 = varint, 2 = length-delimited, 5 = 32-bit.
void Varint(std::string& out, uint64_t v) {
  while (v >= 0x80) {
    out.push_back(static_cast<char>((v & 0x7F) | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<char>(v));
}
void Key(std::string& out, int field, int wire) { Varint(out, static_cast<uint64_t>(field) << 3 | static_cast<uint64_t>(wire)); }
void IntField(std::string& out, int field, int64_t v) {
  Key(out, field, 0);
  Varint(out, static_cast<uint64_t>(v));
}
void BytesField(std::string& out, int field, const std::string& bytes) {
  Key(out, field, 2);
  Varint(out, bytes.size());
  out += bytes;
}
void FloatField(std::string& out, int field, float f) {
  Key(out, field, 5);
  char raw[4];
  std::memcpy(raw, &f, 4);
  out.append(raw, 4);
}

std::string TensorType(int elem_type, const std::vector<OnnxDim>& dims) {
  std::string shape;
  for (const auto& d : dims) {
    std::string dim;
    if (d.symbol.empty()) IntField(dim, 1, d.value);
    else BytesField(dim, 2, d.symbol);
    BytesField(shape, 1, dim);  // TensorShapeProto.dim
  }
  std::string tensor;
  IntField(tensor, 1, elem_type);  // TypeProto.Tensor.elem_type
  BytesField(tensor, 2, shape);
  std::string type;
  BytesField(type, 1, tensor);  // TypeProto.tensor_type
  return type;
}

std::string ValueInfo(const std::string& name, const std::string& type) {
  std::string info;
  BytesField(info, 1, name);
  if (!type.empty()) BytesField(info, 2, type);
  return info;
}

std::string NodeProto(const OnnxNode& n, int index) {
  std::string node;
  for (const auto& input : n.inputs) BytesField(node, 1, input);
  for (const auto& output : n.outputs) BytesField(node, 2, output);
  BytesField(node, 3, "node" + std::to_string(index));
  BytesField(node, 4, n.op_type);
  for (const auto& a : n.attributes) {
    std::string attribute;
    BytesField(attribute, 1, a.name);
    if (a.is_int) IntField(attribute, 3, a.i);
    else FloatField(attribute, 2, a.f);
    IntField(attribute, 20, a.is_int ? 2 : 1);  // AttributeProto.type: INT = 2, FLOAT = 1
    BytesField(node, 5, attribute);
  }
  if (!n.domain.empty()) BytesField(node, 7, n.domain);
  return node;
}

}  // namespace

std::string GraphModel(const std::vector<OnnxNode>& nodes, const std::vector<OnnxInitializer>& initializers,
                       const std::vector<OnnxValue>& inputs, const std::vector<OnnxValue>& outputs) {
  std::string graph;
  for (size_t i = 0; i < nodes.size(); ++i) BytesField(graph, 1, NodeProto(nodes[i], static_cast<int>(i)));
  BytesField(graph, 2, "sparseonnx_test_graph");
  for (const auto& init : initializers) {
    std::string tensor;
    for (int64_t d : init.dims) IntField(tensor, 1, d);
    IntField(tensor, 2, init.elem_type);
    BytesField(tensor, 8, init.name);
    BytesField(tensor, 9, init.raw);
    BytesField(graph, 5, tensor);
  }
  for (const auto& v : inputs) BytesField(graph, 11, ValueInfo(v.name, v.typed ? TensorType(v.elem_type, v.dims) : ""));
  for (const auto& v : outputs) BytesField(graph, 12, ValueInfo(v.name, v.typed ? TensorType(v.elem_type, v.dims) : ""));

  std::string model;
  IntField(model, 1, 8);  // ir_version
  std::string standard, custom;
  BytesField(standard, 1, "");
  IntField(standard, 2, 17);
  BytesField(model, 8, standard);
  BytesField(custom, 1, "ai.sparseonnx");
  IntField(custom, 2, 1);
  BytesField(model, 8, custom);
  std::string microsoft;  // ONNX Runtime's contrib ops (MatMulNBits, the reference for the quantized op)
  BytesField(microsoft, 1, "com.microsoft");
  IntField(microsoft, 2, 1);
  BytesField(model, 8, microsoft);
  BytesField(model, 7, graph);
  return model;
}

std::string SingleNodeModel(const std::string& domain, const std::string& op_type, const std::vector<OnnxDim>& a_dims,
                            int64_t K, int64_t N, const std::vector<float>& b, const std::vector<OnnxAttribute>& attributes) {
  OnnxNode node{op_type, domain, {"A", "B"}, {"Y"}, attributes};
  OnnxInitializer weight{"B", kOnnxFloat, {K, N}, std::string(reinterpret_cast<const char*>(b.data()), b.size() * sizeof(float))};
  return GraphModel({node}, {weight}, {OnnxValue{"A", kOnnxFloat, a_dims}}, {OnnxValue{"Y", kOnnxFloat, {}, false}});
}

}  // namespace sparseonnx::test
