// What the TopKSparseMatMul op is on every execution provider: its name, attributes, input checks, output
// shape inference and the OrtCustomOp description ORT sees. The CPU op (cpu/) and the CUDA op (cuda/) differ
// only in their kernels' Compute.
#pragma once

#include <string>
#include <vector>

#include "onnxruntime_c_api.h"
#include "ort_helpers.h"
#include "sparseonnx/kernels.h"

namespace sparseonnx::op {

constexpr const char* kOpName = "TopKSparseMatMul";

// The API the library was registered with; set once, before ORT uses any op.
void SetApi(const OrtApi* api);
const OrtApi& Api();

std::string TypeName(ONNXTensorElementDataType type);
std::string ShapeText(const std::vector<int64_t>& dims);

struct TensorView {
  ONNXTensorElementDataType type;
  std::vector<int64_t> dims;
};
TensorView Describe(const OrtValue* value);

// The node's name ("" when it has none).
std::string NodeName(const OrtKernelInfo* info);
// Input `index` when it is a constant initializer, else null.
const OrtValue* ConstantInput(const OrtKernelInfo* info, size_t index);
// The selection attributes of a sparse op: exactly one of `k` (>= 1) and `threshold` (>= 0). Errors start
// with `where` (the op and node).
SelectionRule ReadSelectionRule(const OrtKernelInfo* info, const std::string& where);

// One registered variant of the op: the C description ORT sees, plus the element type and provider it is for.
struct TypedOp : OrtCustomOp {
  ONNXTensorElementDataType onnx_type;
  ElementType element_type;
  const char* provider;  // "CPUExecutionProvider", "CUDAExecutionProvider"
};

// The inputs of one Compute, checked: Y [..., N] = A [..., K] · B [K, N] with M rows of A.
struct ProductInputs {
  const OrtValue* a = nullptr;
  const OrtValue* b = nullptr;
  TensorView a_view, b_view;
  int64_t M = 0, K = 0, N = 0;
  std::vector<int64_t> y_dims;
};

// A node's attributes and checks, shared by the kernels of every provider. Errors name the node.
class NodeContract {
 public:
  NodeContract(const OrtKernelInfo* info, const TypedOp& op);

  const SelectionRule& rule() const { return rule_; }
  const TypedOp& op() const { return op_; }
  std::string Where() const { return std::string(kOpName) + " node '" + node_name_ + "'"; }
  [[noreturn]] void Fail(const std::string& problem) const { throw OrtError(ORT_INVALID_ARGUMENT, Where() + ": " + problem); }

  // B when it is a constant initializer (the rewriter's output always), else null.
  static const OrtValue* ConstantB(const OrtKernelInfo* info);
  // A constant B is known when the session is created: its shape (and k against K) is checked then.
  void CheckConstantB(const OrtValue* b) const;
  // Reads A and B from the context and checks types, ranks and K; does not touch the data.
  ProductInputs ReadInputs(OrtKernelContext* context) const;

 private:

  const TypedOp& op_;
  std::string node_name_;
  SelectionRule rule_;
};

// The C functions every variant shares.
const char* ORT_API_CALL GetName(const OrtCustomOp*) noexcept;
const char* ORT_API_CALL GetExecutionProviderType(const OrtCustomOp* op) noexcept;
ONNXTensorElementDataType ORT_API_CALL GetType(const OrtCustomOp* op, size_t) noexcept;
OrtStatusPtr ORT_API_CALL InferOutputShape(const OrtCustomOp*, OrtShapeInferContext* context) noexcept;
// Fills the parts of the description that do not depend on the kernel.
TypedOp DescribeOp(ONNXTensorElementDataType onnx_type, ElementType element_type, const char* provider);

// The description of a variant whose kernel is `Kernel`: constructed from (const OrtKernelInfo*, const TypedOp&)
// when ORT creates the session (it may throw OrtError), then Compute(OrtKernelContext*) const per run.
template <typename Kernel>
TypedOp MakeOp(ONNXTensorElementDataType onnx_type, ElementType element_type, const char* provider) {
  TypedOp op = DescribeOp(onnx_type, element_type, provider);
  // ORT >= 1.16 uses CreateKernelV2 and KernelComputeV2, which can report errors.
  op.CreateKernelV2 = [](const OrtCustomOp* self, const OrtApi*, const OrtKernelInfo* info, void** kernel) noexcept -> OrtStatusPtr {
    *kernel = nullptr;
    return Guard(Api(), [&] { *kernel = new Kernel(info, *static_cast<const TypedOp*>(self)); });
  };
  op.KernelComputeV2 = [](void* kernel, OrtKernelContext* context) noexcept -> OrtStatusPtr {
    return Guard(Api(), [&] { static_cast<const Kernel*>(kernel)->Compute(context); });
  };
  op.KernelDestroy = [](void* kernel) noexcept { delete static_cast<Kernel*>(kernel); };
  return op;
}

// The variants of `Kernel` for `provider`, one per element type (float32, float16, bfloat16). ORT merges ops
// of the same name into one schema and picks the kernel by input type (and provider).
template <typename Kernel>
const OrtCustomOp* const* TypedOps(const char* provider, size_t* count) {
  static const TypedOp ops[] = {
      MakeOp<Kernel>(ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT, ElementType::kFloat32, provider),
      MakeOp<Kernel>(ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT16, ElementType::kFloat16, provider),
      MakeOp<Kernel>(ONNX_TENSOR_ELEMENT_DATA_TYPE_BFLOAT16, ElementType::kBFloat16, provider),
  };
  static const OrtCustomOp* const pointers[] = {&ops[0], &ops[1], &ops[2]};
  *count = 3;
  return pointers;
}

}  // namespace sparseonnx::op
