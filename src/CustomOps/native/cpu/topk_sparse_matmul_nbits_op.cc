// TopKSparseMatMulNBits on ONNX Runtime's CPU execution provider (docs/topk-sparse-matmul-nbits.md).
//
// Y = (A ⊙ mask) · W (+ bias) for a weight W of N-bit codes stored by input row (quantized_rows.h):
//   * up to kMaxSelectedRowsBatch rows of A (decode): each row selects its entries, and only the selected
//     rows of W are read (QuantizedSelectedProduct), under the node's accuracy_level.
//   * more rows (prefill): A ⊙ mask is multiplied densely by W (QuantizedDenseProduct): at accuracy_level 4
//     with 4-bit codes in the decode product's integer arithmetic, otherwise in float32 with W dequantized
//     panel by panel.
// Every entry point converts errors into an OrtStatus: nothing throws across the C ABI, and a malformed
// weight fails the node (at session creation when the weight is a constant) with a message naming it.
#include "topk_sparse_matmul_nbits_op.h"

#include <algorithm>
#include <climits>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "common/op_common.h"
#include "common/ort_parallel.h"
#include "common/resident_memory.h"
#include "sparseonnx/kernels.h"
#include "sparseonnx/quantized_rows.h"

namespace sparseonnx::cpu {
namespace {

using op::Api;
using op::Check;

constexpr const char* kNBitsOpName = "TopKSparseMatMulNBits";
constexpr int64_t kMaxSelectedRowsBatch = 16;

enum Input : size_t { kA = 0, kCodes = 1, kScales = 2, kZeroPoints = 3, kBias = 4, kInputCount = 5 };

bool IntAttribute(const OrtKernelInfo* info, const char* name, int64_t* value) {
  OrtStatus* status = Api().KernelInfoGetAttribute_int64(info, name, value);
  if (status == nullptr) return true;
  Api().ReleaseStatus(status);
  return false;
}

class Kernel {
 public:
  explicit Kernel(const OrtKernelInfo* info) : node_name_(op::NodeName(info)) {
    ReadAttributes(info);
    const OrtValue* codes = op::ConstantInput(info, kCodes);
    const OrtValue* scales = op::ConstantInput(info, kScales);
    const OrtValue* zeros = op::ConstantInput(info, kZeroPoints);
    const OrtValue* bias = op::ConstantInput(info, kBias);
    if (codes) CheckTensor(codes, "codes", ONNX_TENSOR_ELEMENT_DATA_TYPE_UINT8, {K_, QuantRowBytes(bits_, N_)});
    if (scales) float16_scales_ = CheckScales(scales, "scales", true);
    if (zeros) CheckScales(zeros, "zero_points", false);
    if (bias) CheckTensor(bias, "bias", ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT, {N_});
    if (codes && scales && (zeros || !InputPresent(info, kZeroPoints))) KeepResidentCopy(codes, scales, zeros);
    Check(Api(), Api().CreateCpuMemoryInfo(OrtArenaAllocator, OrtMemTypeDefault, &memory_info_));
  }

  ~Kernel() {
    if (memory_info_) Api().ReleaseMemoryInfo(memory_info_);
  }

  void Compute(OrtKernelContext* context) const;

 private:
  std::string Where() const { return std::string(kNBitsOpName) + " node '" + node_name_ + "'"; }
  [[noreturn]] void Fail(const std::string& problem) const { throw op::OrtError(ORT_INVALID_ARGUMENT, Where() + ": " + problem); }

  // True when the node gives input `index` (an omitted optional input has an empty name).
  static bool InputPresent(const OrtKernelInfo* info, size_t index) {
    size_t count = 0;
    Check(Api(), Api().KernelInfo_GetInputCount(info, &count));
    if (index >= count) return false;
    size_t size = 0;
    Check(Api(), Api().KernelInfo_GetInputName(info, index, nullptr, &size));
    return size > 1;  // the size includes the terminating zero
  }

  void ReadAttributes(const OrtKernelInfo* info) {
    int64_t bits = 4, accuracy = 0;
    if (!IntAttribute(info, "K", &K_) || !IntAttribute(info, "N", &N_)) Fail("needs the int attributes K and N");
    IntAttribute(info, "bits", &bits);
    IntAttribute(info, "block_size", &block_size_);
    IntAttribute(info, "accuracy_level", &accuracy);
    if (const char* problem = QuantLayoutProblem(static_cast<int>(bits), K_, N_, block_size_))
      Fail(std::string(problem) + " (bits " + std::to_string(bits) + ", K " + std::to_string(K_) + ", N " + std::to_string(N_) +
           ", block_size " + std::to_string(block_size_) + ")");
    bits_ = static_cast<int>(bits);
    if (accuracy != 0 && accuracy != 4) Fail("accuracy_level must be 0 (float32) or 4 (int8 activations), got " + std::to_string(accuracy));
    accuracy_ = accuracy == 4 ? QuantAccuracy::kInt8 : QuantAccuracy::kFloat;

    rule_ = op::ReadSelectionRule(info, Where());
    if (rule_.mode == SelectionRule::Mode::kTopK && rule_.k > K_)
      Fail("attribute k must be in [1, K = " + std::to_string(K_) + "], got " + std::to_string(rule_.k));
  }

  void CheckTensor(const OrtValue* value, const char* name, ONNXTensorElementDataType type, const std::vector<int64_t>& dims) const {
    const op::TensorView view = op::Describe(value);
    if (view.type != type) Fail(std::string("input ") + name + " must be " + TypeLabel(type) + ", got " + op::TypeName(view.type));
    if (view.dims != dims)
      Fail(std::string("input ") + name + " has shape " + op::ShapeText(view.dims) + " but K = " + std::to_string(K_) + ", N = " +
           std::to_string(N_) + ", bits = " + std::to_string(bits_) + " and block_size = " + std::to_string(block_size_) + " need " +
           op::ShapeText(dims));
  }

  // Scales may be float32 or float16 (zero points float32); returns whether they are float16.
  bool CheckScales(const OrtValue* value, const char* name, bool allow_float16) const {
    const op::TensorView view = op::Describe(value);
    const bool float16 = allow_float16 && view.type == ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT16;
    CheckTensor(value, name, float16 ? ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT16 : ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT,
                {Blocks(), QuantPaddedColumns(N_)});
    const void* data = nullptr;
    Check(Api(), Api().GetTensorData(value, &data));
    QuantizedRows probe;
    probe.scales = data;
    probe.float16_scales = float16;
    const size_t count = QuantScaleCount(K_, N_, block_size_);
    for (size_t i = 0; i < count; ++i)
      if (!std::isfinite(QuantScale(probe, i))) Fail(std::string("input ") + name + " holds a non-finite value at element " + std::to_string(i));
    return float16;
  }

  static std::string TypeLabel(ONNXTensorElementDataType type) {
    return type == ONNX_TENSOR_ELEMENT_DATA_TYPE_UINT8 ? "uint8" : op::TypeName(type);
  }

  int64_t Blocks() const { return (K_ + block_size_ - 1) / block_size_; }

  // Constant weights are copied once into memory of our own (common/resident_memory.h), the mapped codes
  // paged out.
  void KeepResidentCopy(const OrtValue* codes, const OrtValue* scales, const OrtValue* zeros) {
    const size_t code_bytes = QuantCodesBytes(bits_, K_, N_);
    const size_t scale_count = QuantScaleCount(K_, N_, block_size_);
    const size_t scale_bytes = scale_count * (float16_scales_ ? 2 : 4), zero_bytes = zeros ? scale_count * sizeof(float) : 0;
    const size_t aligned_codes = (code_bytes + 63) / 64 * 64, aligned_scales = (scale_bytes + 63) / 64 * 64;
    resident_ = AllocateResident(aligned_codes + aligned_scales + zero_bytes);
    if (!resident_) return;  // read the weights where ORT keeps them
    const void* source = nullptr;
    auto* base = static_cast<unsigned char*>(resident_.get());
    Check(Api(), Api().GetTensorData(codes, &source));
    std::memcpy(base, source, code_bytes);
    PageOut(source, code_bytes);
    Check(Api(), Api().GetTensorData(scales, &source));
    std::memcpy(base + aligned_codes, source, scale_bytes);
    if (zeros) {
      Check(Api(), Api().GetTensorData(zeros, &source));
      std::memcpy(base + aligned_codes + aligned_scales, source, zero_bytes);
    }
    resident_weight_.bits = bits_;
    resident_weight_.K = K_;
    resident_weight_.N = N_;
    resident_weight_.block_size = block_size_;
    resident_weight_.codes = base;
    resident_weight_.scales = base + aligned_codes;
    resident_weight_.float16_scales = float16_scales_;
    resident_weight_.zero_points = zeros ? reinterpret_cast<const float*>(base + aligned_codes + aligned_scales) : nullptr;
  }

  // The weight for one Compute: the resident copy, or the inputs checked now.
  QuantizedRows Weight(OrtKernelContext* context) const;

  std::string node_name_;
  int64_t K_ = 0, N_ = 0, block_size_ = 32;
  int bits_ = 4;
  QuantAccuracy accuracy_ = QuantAccuracy::kFloat;
  bool float16_scales_ = false;
  SelectionRule rule_;
  ResidentMemory resident_;
  QuantizedRows resident_weight_;
  OrtMemoryInfo* memory_info_ = nullptr;
};

const OrtValue* OptionalInput(OrtKernelContext* context, size_t index) {
  size_t count = 0;
  Check(Api(), Api().KernelContext_GetInputCount(context, &count));
  if (index >= count) return nullptr;
  const OrtValue* value = nullptr;
  Check(Api(), Api().KernelContext_GetInput(context, index, &value));
  return value;
}

QuantizedRows Kernel::Weight(OrtKernelContext* context) const {
  if (resident_) return resident_weight_;
  const OrtValue* codes = OptionalInput(context, kCodes);
  const OrtValue* scales = OptionalInput(context, kScales);
  const OrtValue* zeros = OptionalInput(context, kZeroPoints);
  if (codes == nullptr || scales == nullptr) Fail("inputs codes and scales are required");
  CheckTensor(codes, "codes", ONNX_TENSOR_ELEMENT_DATA_TYPE_UINT8, {K_, QuantRowBytes(bits_, N_)});
  const bool float16 = CheckScales(scales, "scales", true);
  if (zeros) CheckScales(zeros, "zero_points", false);
  QuantizedRows w;
  w.float16_scales = float16;
  w.bits = bits_;
  w.K = K_;
  w.N = N_;
  w.block_size = block_size_;
  const void* data = nullptr;
  Check(Api(), Api().GetTensorData(codes, &data));
  w.codes = static_cast<const uint8_t*>(data);
  Check(Api(), Api().GetTensorData(scales, &data));
  w.scales = data;
  if (zeros) {
    Check(Api(), Api().GetTensorData(zeros, &data));
    w.zero_points = static_cast<const float*>(data);
  }
  return w;
}

void Kernel::Compute(OrtKernelContext* context) const {
  const OrtValue* a = OptionalInput(context, kA);
  if (a == nullptr) Fail("input A is required");
  const op::TensorView a_view = op::Describe(a);
  if (a_view.type != ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT) Fail("input A must be float32, got " + op::TypeName(a_view.type));
  if (a_view.dims.size() < 2) Fail("input A must have rank 2 or more ([..., K]), got shape " + op::ShapeText(a_view.dims));
  if (a_view.dims.back() != K_)
    Fail("A's last dimension is " + std::to_string(a_view.dims.back()) + " but attribute K is " + std::to_string(K_));
  const QuantizedRows w = Weight(context);
  const float* bias = nullptr;
  if (const OrtValue* b = OptionalInput(context, kBias)) {
    CheckTensor(b, "bias", ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT, {N_});
    Check(Api(), Api().GetTensorData(b, reinterpret_cast<const void**>(&bias)));
  }

  int64_t M = 1;
  for (size_t i = 0; i + 1 < a_view.dims.size(); ++i) M *= a_view.dims[i];
  std::vector<int64_t> y_dims(a_view.dims.begin(), a_view.dims.end() - 1);
  y_dims.push_back(N_);
  OrtValue* y = nullptr;
  Check(Api(), Api().KernelContext_GetOutput(context, 0, y_dims.data(), y_dims.size(), &y));
  if (M == 0) return;
  float* y_data = nullptr;
  Check(Api(), Api().GetTensorMutableData(y, reinterpret_cast<void**>(&y_data)));
  const float* a_data = nullptr;
  Check(Api(), Api().GetTensorData(a, reinterpret_cast<const void**>(&a_data)));

  ArenaScratch scratch(context, memory_info_);
  const ParallelFor parallel_for = OrtParallelFor(context);
  const size_t K = static_cast<size_t>(K_);
  if (M > kMaxSelectedRowsBatch) {
    const bool keep_all = rule_.mode == SelectionRule::Mode::kTopK && rule_.k == K_;
    ScratchBuffer masked(scratch, keep_all ? 1 : static_cast<size_t>(M) * K * sizeof(float));
    if (!keep_all) {
      ScratchBuffer keys(scratch, static_cast<size_t>(M) * K * sizeof(uint32_t));
      parallel_for(static_cast<size_t>(M), [&](size_t m) {
        MaskRow(a_data + m * K, ElementType::kFloat32, K_, rule_, masked.As<float>() + m * K, keys.As<uint32_t>() + m * K);
      });
    }
    QuantizedDenseProduct(w, accuracy_, keep_all ? a_data : masked.As<float>(), M, bias, y_data, parallel_for, scratch);
    return;
  }
  ScratchBuffer indices(scratch, static_cast<size_t>(M) * K * sizeof(int32_t));
  ScratchBuffer values(scratch, static_cast<size_t>(M) * K * sizeof(float));
  ScratchBuffer keys(scratch, static_cast<size_t>(M) * K * sizeof(uint32_t));
  std::vector<size_t> counts(static_cast<size_t>(M));
  parallel_for(static_cast<size_t>(M), [&](size_t m) {
    counts[m] = SelectRow(a_data + m * K, ElementType::kFloat32, K_, rule_, indices.As<int32_t>() + m * K, values.As<float>() + m * K,
                          keys.As<uint32_t>() + m * K);
  });
  QuantizedSelectedProduct(w, accuracy_, M, indices.As<int32_t>(), values.As<float>(), counts.data(), bias, y_data, parallel_for, scratch);
}

// ---- the OrtCustomOp description ------------------------------------------------------------------------

// The scales may be float32 or float16: UNDEFINED leaves that input's type open (Compute checks it).
ONNXTensorElementDataType ORT_API_CALL InputType(const OrtCustomOp*, size_t index) noexcept {
  if (index == kCodes) return ONNX_TENSOR_ELEMENT_DATA_TYPE_UINT8;
  if (index == kScales) return ONNX_TENSOR_ELEMENT_DATA_TYPE_UNDEFINED;
  return ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT;
}

OrtCustomOpInputOutputCharacteristic ORT_API_CALL InputCharacteristic(const OrtCustomOp*, size_t index) noexcept {
  return index >= kZeroPoints ? INPUT_OUTPUT_OPTIONAL : INPUT_OUTPUT_REQUIRED;
}

// Y's shape: A's leading dimensions and the attribute N. Problems are reported by kernel creation and
// Compute; this only fills in what it can derive.
OrtStatusPtr ORT_API_CALL InferShape(const OrtCustomOp*, OrtShapeInferContext* context) noexcept {
  const OrtApi& api = Api();
  OrtTensorTypeAndShapeInfo* out = nullptr;
  OrtStatus* status = op::Guard(api, [&] {
    const OrtOpAttr* attribute = nullptr;
    Check(api, api.ShapeInferContext_GetAttribute(context, "N", &attribute));
    int64_t N = -1;
    size_t read = 0;
    if (attribute == nullptr) return;
    Check(api, api.ReadOpAttr(attribute, ORT_OP_ATTR_INT, &N, sizeof(N), &read));
    OrtTensorTypeAndShapeInfo* a = nullptr;
    Check(api, api.ShapeInferContext_GetInputTypeShape(context, 0, &a));
    size_t rank = 0;
    Check(api, api.GetDimensionsCount(a, &rank));
    if (rank < 2 || N <= 0) return;
    std::vector<int64_t> dims(rank);
    std::vector<const char*> symbols(rank);
    Check(api, api.GetDimensions(a, dims.data(), rank));
    Check(api, api.GetSymbolicDimensions(a, symbols.data(), rank));
    std::vector<std::string> names;
    for (size_t i = 0; i + 1 < rank; ++i) {
      names.emplace_back(symbols[i] ? symbols[i] : "");
      if (dims[i] < 0 && names.back().empty()) names.back() = "topk_sparse_matmul_nbits_unk_" + std::to_string(i);
    }
    names.emplace_back("");
    dims.back() = N;
    std::vector<const char*> name_ptrs;
    for (const auto& n : names) name_ptrs.push_back(n.c_str());
    Check(api, api.CreateTensorTypeAndShapeInfo(&out));
    Check(api, api.SetTensorElementType(out, ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT));
    Check(api, api.SetDimensions(out, dims.data(), dims.size()));
    Check(api, api.SetSymbolicDimensions(out, name_ptrs.data(), name_ptrs.size()));
    Check(api, api.ShapeInferContext_SetOutputTypeShape(context, 0, out));
  });
  if (out) api.ReleaseTensorTypeAndShapeInfo(out);
  if (status) api.ReleaseStatus(status);
  return nullptr;
}

OrtCustomOp Describe() {
  OrtCustomOp op{};
  op.version = ORT_API_VERSION;
  op.GetName = [](const OrtCustomOp*) noexcept -> const char* { return kNBitsOpName; };
  op.GetExecutionProviderType = [](const OrtCustomOp*) noexcept -> const char* { return "CPUExecutionProvider"; };
  op.GetInputType = InputType;
  op.GetInputTypeCount = [](const OrtCustomOp*) noexcept -> size_t { return kInputCount; };
  op.GetOutputType = [](const OrtCustomOp*, size_t) noexcept { return ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT; };
  op.GetOutputTypeCount = [](const OrtCustomOp*) noexcept -> size_t { return 1; };
  op.GetInputCharacteristic = InputCharacteristic;
  op.GetOutputCharacteristic = [](const OrtCustomOp*, size_t) noexcept { return INPUT_OUTPUT_REQUIRED; };
  op.GetInputMemoryType = [](const OrtCustomOp*, size_t) noexcept { return OrtMemTypeDefault; };
  op.GetVariadicInputMinArity = [](const OrtCustomOp*) noexcept { return 1; };
  op.GetVariadicInputHomogeneity = [](const OrtCustomOp*) noexcept { return 0; };
  op.GetVariadicOutputMinArity = [](const OrtCustomOp*) noexcept { return 1; };
  op.GetVariadicOutputHomogeneity = [](const OrtCustomOp*) noexcept { return 0; };
  op.InferOutputShapeFn = InferShape;
  op.GetStartVersion = [](const OrtCustomOp*) noexcept { return 1; };
  op.GetEndVersion = [](const OrtCustomOp*) noexcept { return INT_MAX; };
  op.CreateKernelV2 = [](const OrtCustomOp*, const OrtApi*, const OrtKernelInfo* info, void** kernel) noexcept -> OrtStatusPtr {
    *kernel = nullptr;
    return op::Guard(Api(), [&] { *kernel = new Kernel(info); });
  };
  op.KernelComputeV2 = [](void* kernel, OrtKernelContext* context) noexcept -> OrtStatusPtr {
    return op::Guard(Api(), [&] { static_cast<const Kernel*>(kernel)->Compute(context); });
  };
  op.KernelDestroy = [](void* kernel) noexcept { delete static_cast<Kernel*>(kernel); };
  return op;
}

}  // namespace

const OrtCustomOp* TopKSparseMatMulNBitsOp() {
  static const OrtCustomOp op = Describe();
  return &op;
}

}  // namespace sparseonnx::cpu
