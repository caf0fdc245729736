#include "op_common.h"

#include <climits>

namespace sparseonnx::op {
namespace {

const OrtApi* g_api = nullptr;

}  // namespace

void SetApi(const OrtApi* api) { g_api = api; }

const OrtApi& Api() { return *g_api; }

std::string TypeName(ONNXTensorElementDataType type) {
  switch (type) {
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT:
      return "float32";
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT16:
      return "float16";
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_BFLOAT16:
      return "bfloat16";
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_DOUBLE:
      return "float64";
    default:
      return "element type " + std::to_string(static_cast<int>(type));
  }
}

std::string ShapeText(const std::vector<int64_t>& dims) {
  std::string text = "[";
  for (size_t i = 0; i < dims.size(); ++i) text += (i ? ", " : "") + std::to_string(dims[i]);
  return text + "]";
}

TensorView Describe(const OrtValue* value) {
  OrtTensorTypeAndShapeInfo* info = nullptr;
  Check(Api(), Api().GetTensorTypeAndShape(value, &info));
  TensorView view{};
  size_t rank = 0;
  OrtStatus* status = Api().GetTensorElementType(info, &view.type);
  if (status == nullptr) status = Api().GetDimensionsCount(info, &rank);
  if (status == nullptr) {
    view.dims.resize(rank);
    status = Api().GetDimensions(info, view.dims.data(), rank);
  }
  Api().ReleaseTensorTypeAndShapeInfo(info);
  Check(Api(), status);
  return view;
}

std::string NodeName(const OrtKernelInfo* info) {
  size_t size = 0;
  if (Api().KernelInfo_GetNodeName(info, nullptr, &size) != nullptr || size == 0) return "";
  std::vector<char> name(size);
  Check(Api(), Api().KernelInfo_GetNodeName(info, name.data(), &size));
  return name.data();
}

const OrtValue* ConstantInput(const OrtKernelInfo* info, size_t index) {
  int is_constant = 0;
  const OrtValue* value = nullptr;
  OrtStatus* status = Api().KernelInfoGetConstantInput_tensor(info, index, &is_constant, &value);
  if (status) {
    Api().ReleaseStatus(status);
    return nullptr;
  }
  return is_constant ? value : nullptr;
}

SelectionRule ReadSelectionRule(const OrtKernelInfo* info, const std::string& where) {
  auto fail = [&](const std::string& problem) { throw OrtError(ORT_INVALID_ARGUMENT, where + ": " + problem); };
  int64_t k = 0;
  float threshold = 0.f;
  OrtStatus* k_status = Api().KernelInfoGetAttribute_int64(info, "k", &k);
  OrtStatus* t_status = Api().KernelInfoGetAttribute_float(info, "threshold", &threshold);
  const bool has_k = k_status == nullptr, has_threshold = t_status == nullptr;
  if (k_status) Api().ReleaseStatus(k_status);
  if (t_status) Api().ReleaseStatus(t_status);
  if (has_k == has_threshold)
    fail(std::string("needs exactly one of the attributes 'k' (int) and 'threshold' (float); it has ") + (has_k ? "both" : "neither"));
  if (has_k) {
    if (k < 1) fail("attribute k must be at least 1, got " + std::to_string(k));
    return SelectionRule::TopK(k);
  }
  if (!(threshold >= 0.f)) fail("attribute threshold must be a non-negative number, got " + std::to_string(threshold));
  return SelectionRule::Threshold(threshold);
}

NodeContract::NodeContract(const OrtKernelInfo* info, const TypedOp& op)
    : op_(op), node_name_(NodeName(info)), rule_(ReadSelectionRule(info, Where())) {}

const OrtValue* NodeContract::ConstantB(const OrtKernelInfo* info) { return ConstantInput(info, 1); }

void NodeContract::CheckConstantB(const OrtValue* b) const {
  const TensorView view = Describe(b);
  if (view.dims.size() != 2) Fail("input B must be a matrix [K, N], got shape " + ShapeText(view.dims));
  if (rule_.mode == SelectionRule::Mode::kTopK && rule_.k > view.dims[0])
    Fail("attribute k = " + std::to_string(rule_.k) + " exceeds K = " + std::to_string(view.dims[0]) + " (the rows of B)");
}

ProductInputs NodeContract::ReadInputs(OrtKernelContext* context) const {
  ProductInputs in;
  Check(Api(), Api().KernelContext_GetInput(context, 0, &in.a));
  Check(Api(), Api().KernelContext_GetInput(context, 1, &in.b));
  if (in.a == nullptr || in.b == nullptr) Fail("inputs A and B are both required");
  in.a_view = Describe(in.a);
  in.b_view = Describe(in.b);
  if (in.a_view.type != op_.onnx_type || in.b_view.type != op_.onnx_type)
    Fail("A is " + TypeName(in.a_view.type) + " and B is " + TypeName(in.b_view.type) + "; both must have the same type");
  if (in.a_view.dims.size() < 2) Fail("input A must have rank 2 or more ([..., K]), got shape " + ShapeText(in.a_view.dims));
  if (in.b_view.dims.size() != 2) Fail("input B must be a matrix [K, N], got shape " + ShapeText(in.b_view.dims));
  in.K = in.a_view.dims.back();
  in.N = in.b_view.dims[1];
  if (in.b_view.dims[0] != in.K)
    Fail("A's last dimension is " + std::to_string(in.K) + " but B has " + std::to_string(in.b_view.dims[0]) + " rows (A " +
         ShapeText(in.a_view.dims) + ", B " + ShapeText(in.b_view.dims) + ")");
  if (rule_.mode == SelectionRule::Mode::kTopK && rule_.k > in.K)
    Fail("attribute k = " + std::to_string(rule_.k) + " exceeds K = " + std::to_string(in.K));
  in.M = 1;
  for (size_t i = 0; i + 1 < in.a_view.dims.size(); ++i) in.M *= in.a_view.dims[i];
  in.y_dims.assign(in.a_view.dims.begin(), in.a_view.dims.end() - 1);
  in.y_dims.push_back(in.N);
  return in;
}

// ---- the C functions ORT calls ----------------------------------------------------------------------

namespace {

size_t ORT_API_CALL GetInputTypeCount(const OrtCustomOp*) noexcept { return 2; }
size_t ORT_API_CALL GetOutputTypeCount(const OrtCustomOp*) noexcept { return 1; }
OrtCustomOpInputOutputCharacteristic ORT_API_CALL GetCharacteristic(const OrtCustomOp*, size_t) noexcept { return INPUT_OUTPUT_REQUIRED; }
OrtMemType ORT_API_CALL GetInputMemoryType(const OrtCustomOp*, size_t) noexcept { return OrtMemTypeDefault; }
int ORT_API_CALL VariadicMinArity(const OrtCustomOp*) noexcept { return 1; }
int ORT_API_CALL VariadicHomogeneity(const OrtCustomOp*) noexcept { return 0; }
int ORT_API_CALL GetStartVersion(const OrtCustomOp*) noexcept { return 1; }
int ORT_API_CALL GetEndVersion(const OrtCustomOp*) noexcept { return INT_MAX; }

}  // namespace

const char* ORT_API_CALL GetName(const OrtCustomOp*) noexcept { return kOpName; }

const char* ORT_API_CALL GetExecutionProviderType(const OrtCustomOp* op) noexcept { return static_cast<const TypedOp*>(op)->provider; }

ONNXTensorElementDataType ORT_API_CALL GetType(const OrtCustomOp* op, size_t) noexcept { return static_cast<const TypedOp*>(op)->onnx_type; }

// Output shape A[..., :-1] + [N] from the input shapes. ORT sets the output element type itself (from the
// inputs), and some versions ignore a returned error, so problems are reported by kernel creation and
// Compute instead; this function only fills in shapes it can derive.
OrtStatusPtr ORT_API_CALL InferOutputShape(const OrtCustomOp*, OrtShapeInferContext* context) noexcept {
  const OrtApi& api = Api();
  OrtTensorTypeAndShapeInfo* out = nullptr;
  OrtStatus* status = Guard(api, [&] {
    size_t inputs = 0;
    Check(api, api.ShapeInferContext_GetInputCount(context, &inputs));
    if (inputs != 2) return;
    OrtTensorTypeAndShapeInfo* a = nullptr;
    OrtTensorTypeAndShapeInfo* b = nullptr;  // both owned by the context
    Check(api, api.ShapeInferContext_GetInputTypeShape(context, 0, &a));
    Check(api, api.ShapeInferContext_GetInputTypeShape(context, 1, &b));
    size_t a_rank = 0, b_rank = 0;
    Check(api, api.GetDimensionsCount(a, &a_rank));
    Check(api, api.GetDimensionsCount(b, &b_rank));
    if (a_rank < 2 || b_rank != 2) return;  // unknown or invalid: Compute reports invalid shapes
    std::vector<int64_t> a_dims(a_rank), b_dims(2);
    std::vector<const char*> a_symbols(a_rank), b_symbols(2);
    Check(api, api.GetDimensions(a, a_dims.data(), a_rank));
    Check(api, api.GetDimensions(b, b_dims.data(), 2));
    Check(api, api.GetSymbolicDimensions(a, a_symbols.data(), a_rank));
    Check(api, api.GetSymbolicDimensions(b, b_symbols.data(), 2));
    std::vector<int64_t> dims(a_dims.begin(), a_dims.end() - 1);
    std::vector<std::string> names;
    for (size_t i = 0; i + 1 < a_rank; ++i) names.emplace_back(a_symbols[i] ? a_symbols[i] : "");
    dims.push_back(b_dims[1]);
    names.emplace_back(b_symbols[1] ? b_symbols[1] : "");
    for (size_t i = 0; i < dims.size(); ++i)  // a dimension with neither value nor name needs a name
      if (dims[i] < 0 && names[i].empty()) names[i] = "topk_sparse_matmul_unk_" + std::to_string(i);
    std::vector<const char*> name_ptrs;
    for (const auto& n : names) name_ptrs.push_back(n.c_str());
    Check(api, api.CreateTensorTypeAndShapeInfo(&out));
    // The element type comes from A: ORT calls this function through the first registered variant
    // whatever the node's type is.
    ONNXTensorElementDataType element_type = ONNX_TENSOR_ELEMENT_DATA_TYPE_UNDEFINED;
    Check(api, api.GetTensorElementType(a, &element_type));
    Check(api, api.SetTensorElementType(out, element_type));
    Check(api, api.SetDimensions(out, dims.data(), dims.size()));
    Check(api, api.SetSymbolicDimensions(out, name_ptrs.data(), name_ptrs.size()));
    Check(api, api.ShapeInferContext_SetOutputTypeShape(context, 0, out));
  });
  if (out) api.ReleaseTensorTypeAndShapeInfo(out);
  if (status) api.ReleaseStatus(status);
  return nullptr;
}

TypedOp DescribeOp(ONNXTensorElementDataType onnx_type, ElementType element_type, const char* provider) {
  TypedOp op{};
  op.version = ORT_API_VERSION;
  op.CreateKernel = nullptr;
  op.GetName = GetName;
  op.GetExecutionProviderType = GetExecutionProviderType;
  op.GetInputType = GetType;
  op.GetInputTypeCount = GetInputTypeCount;
  op.GetOutputType = GetType;
  op.GetOutputTypeCount = GetOutputTypeCount;
  op.KernelCompute = nullptr;
  op.GetInputCharacteristic = GetCharacteristic;
  op.GetOutputCharacteristic = GetCharacteristic;
  op.GetInputMemoryType = GetInputMemoryType;
  op.GetVariadicInputMinArity = VariadicMinArity;
  op.GetVariadicInputHomogeneity = VariadicHomogeneity;
  op.GetVariadicOutputMinArity = VariadicMinArity;
  op.GetVariadicOutputHomogeneity = VariadicHomogeneity;
  op.InferOutputShapeFn = InferOutputShape;
  op.GetStartVersion = GetStartVersion;
  op.GetEndVersion = GetEndVersion;
  op.GetMayInplace = nullptr;
  op.ReleaseMayInplace = nullptr;
  op.GetAliasMap = nullptr;
  op.ReleaseAliasMap = nullptr;
  op.onnx_type = onnx_type;
  op.element_type = element_type;
  op.provider = provider;
  return op;
}

}  // namespace sparseonnx::op
