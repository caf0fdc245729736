// TopKSparseMatMul on ONNX Runtime's CPU execution provider.
//
// Y = MatMul(A ⊙ mask, B) with the mask chosen per row of A (docs/topk-sparse-matmul.md). Three paths:
//   * few rows (decode, up to kMaxSelectedRowsBatch): select per row, then read only the rows of B that
//     some row selected (SelectedRowsProduct).
//   * many rows (prefill): per-row gathers lose to a dense GEMM, so A ⊙ mask (A itself when k = K) is
//     multiplied densely: by ORT's own MatMul (MLAS, through the op invocation API) for float32, by our
//     packed GEMM (DenseGemm) for float16 and bfloat16.
//
// Every entry point converts errors into an OrtStatus (ort_helpers.h): nothing throws across the C ABI.
#include "topk_sparse_matmul_op.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "common/op_common.h"
#include "common/ort_parallel.h"
#include "common/resident_memory.h"
#include "sparseonnx/kernels.h"

namespace sparseonnx::cpu {
namespace {

using op::Api;
using op::Check;
using op::TypedOp;

// Up to this many rows, the product reads only the selected rows of B (SelectedRowsProduct), even when the
// rows' selections together cover all of K (k = K included): it streams B at memory bandwidth, while ORT's
// MatMul run through the op invocation API cannot use the pre-packed B a MatMul node gets and was measured
// slower at every M from 1 to 16 (docs/benchmarks.md). Beyond it (prefill), the masked dense GEMM wins.
constexpr int64_t kMaxSelectedRowsBatch = 16;

class Kernel {
 public:
  Kernel(const OrtKernelInfo* info, const TypedOp& op) : op_(op), node_(info, op), rule_(node_.rule()) {
    if (const OrtValue* b = op::NodeContract::ConstantB(info)) {
      node_.CheckConstantB(b);
      KeepResidentCopyOfB(b);
    }
    Check(Api(), Api().CreateCpuMemoryInfo(OrtArenaAllocator, OrtMemTypeDefault, &memory_info_));
    CreateDenseMatMul(info);  // last: it cannot fail, so nothing it creates can leak
  }

  ~Kernel() {
    if (resident_b_value_) Api().ReleaseValue(resident_b_value_);
    if (resident_b_memory_) Api().ReleaseMemoryInfo(resident_b_memory_);
    if (dense_matmul_) Api().ReleaseOp(dense_matmul_);
    if (memory_info_) Api().ReleaseMemoryInfo(memory_info_);
  }

  void Compute(OrtKernelContext* context) const;

 private:
  // A constant B is copied once, at session creation, into memory of our own (common/resident_memory.h):
  // ORT's own MatMul never reads the mapping after it pre-packs B, so without the copy the sparse op would
  // lose exactly where it should win. Without a constant B (or when the allocation fails) the op reads B
  // where ORT keeps it.
  void KeepResidentCopyOfB(const OrtValue* b) {
    const op::TensorView view = op::Describe(b);
    const size_t bytes = static_cast<size_t>(view.dims[0] * view.dims[1]) * ElementSize(op_.element_type);
    const void* source = nullptr;
    Check(Api(), Api().GetTensorData(b, &source));
    resident_b_ = AllocateResident(bytes);
    if (!resident_b_) return;
    std::memcpy(resident_b_.get(), source, bytes);
    // The copy is only an optimisation: if ORT cannot wrap it as a tensor, drop it rather than fail the session.
    OrtStatus* wrap = Api().CreateCpuMemoryInfo(OrtDeviceAllocator, OrtMemTypeDefault, &resident_b_memory_);
    if (wrap == nullptr)
      wrap = Api().CreateTensorWithDataAsOrtValue(resident_b_memory_, resident_b_.get(), bytes, view.dims.data(), view.dims.size(),
                                                  op_.onnx_type, &resident_b_value_);
    if (wrap != nullptr) {
      Api().ReleaseStatus(wrap);
      if (resident_b_memory_) Api().ReleaseMemoryInfo(resident_b_memory_);
      resident_b_memory_ = nullptr;
      resident_b_value_ = nullptr;
      resident_b_.reset();
      return;
    }
    PageOut(source, bytes);
  }

  // ORT's own MatMul (MLAS) for float32 prefill. Float16 and bfloat16 use DenseGemm: ORT has no bfloat16
  // MatMul on CPU, and its float16 one is not available through the op invocation API (CreateOp fails).
  void CreateDenseMatMul(const OrtKernelInfo* info) {
    if (op_.element_type != ElementType::kFloat32) return;
    const char* constraint = "T";
    OrtStatus* status = Api().CreateOp(info, "MatMul", "", 13, &constraint, &op_.onnx_type, 1, nullptr, 0, 2, 1, &dense_matmul_);
    if (status) {
      Api().ReleaseStatus(status);
      dense_matmul_ = nullptr;
    }
  }

  void DenseProduct(OrtKernelContext* context, const OrtValue* a, const OrtValue* b, OrtValue* y) const {
    const OrtValue* inputs[] = {a, b};
    OrtValue* outputs[] = {y};
    Check(Api(), Api().InvokeOp(context, dense_matmul_, inputs, 2, outputs, 1));
  }

  void MaskedDenseProduct(OrtKernelContext* context, const op::TensorView& a_view, const OrtValue* a, const void* a_data,
                          const OrtValue* b, const void* b_data, OrtValue* y, void* y_data, int64_t M, int64_t K, int64_t N,
                          const ParallelFor& parallel_for, ScratchAllocator& scratch) const;

  void SelectedRowsPath(const void* a_data, const void* b_data, void* y_data, int64_t M, int64_t K, int64_t N,
                        const ParallelFor& parallel_for, ScratchAllocator& scratch) const;

  const TypedOp& op_;
  op::NodeContract node_;
  const SelectionRule rule_;
  OrtOp* dense_matmul_ = nullptr;
  OrtMemoryInfo* memory_info_ = nullptr;
  ResidentMemory resident_b_;  // the copy of a constant B, or null
  OrtMemoryInfo* resident_b_memory_ = nullptr;
  OrtValue* resident_b_value_ = nullptr;          // resident_b_ as a tensor, for ORT's MatMul
};

void Kernel::Compute(OrtKernelContext* context) const {
  const op::ProductInputs in = node_.ReadInputs(context);
  const OrtValue* a = in.a;
  const OrtValue* b = in.b;
  const op::TensorView& a_view = in.a_view;
  const std::vector<int64_t>& y_dims = in.y_dims;
  const int64_t M = in.M, K = in.K, N = in.N;
  OrtValue* y = nullptr;
  Check(Api(), Api().KernelContext_GetOutput(context, 0, y_dims.data(), y_dims.size(), &y));
  if (M == 0 || N == 0) return;
  void* y_data = nullptr;
  Check(Api(), Api().GetTensorMutableData(y, &y_data));
  if (K == 0) {  // an empty sum (threshold mode; top-k already rejected k > K)
    std::memset(y_data, 0, static_cast<size_t>(M * N) * ElementSize(op_.element_type));
    return;
  }

  const void* a_data = nullptr;
  const void* b_data = nullptr;
  Check(Api(), Api().GetTensorData(a, &a_data));
  Check(Api(), Api().GetTensorData(b, &b_data));
  if (resident_b_value_) {  // the same constant, from memory of our own (KeepResidentCopyOfB)
    b = resident_b_value_;
    b_data = resident_b_.get();
  }
  ArenaScratch scratch(context, memory_info_);
  const ParallelFor parallel_for = OrtParallelFor(context);
  if (M > kMaxSelectedRowsBatch) {
    MaskedDenseProduct(context, a_view, a, a_data, b, b_data, y, y_data, M, K, N, parallel_for, scratch);
    return;
  }
  SelectedRowsPath(a_data, b_data, y_data, M, K, N, parallel_for, scratch);
}

void Kernel::MaskedDenseProduct(OrtKernelContext* context, const op::TensorView& a_view, const OrtValue* a, const void* a_data,
                                const OrtValue* b, const void* b_data, OrtValue* y, void* y_data, int64_t M, int64_t K,
                                int64_t N, const ParallelFor& parallel_for, ScratchAllocator& scratch) const {
  const bool keep_all = rule_.mode == SelectionRule::Mode::kTopK && rule_.k == K;
  if (keep_all && dense_matmul_) {
    DenseProduct(context, a, b, y);  // nothing is dropped
    return;
  }
  const size_t row_bytes = static_cast<size_t>(K) * ElementSize(op_.element_type);
  ScratchBuffer masked(scratch, keep_all ? 1 : static_cast<size_t>(M) * row_bytes);
  if (!keep_all) {
    ScratchBuffer keys(scratch, static_cast<size_t>(M * K) * sizeof(uint32_t));
    parallel_for(static_cast<size_t>(M), [&](size_t m) {
      MaskRow(static_cast<const unsigned char*>(a_data) + m * row_bytes, op_.element_type, K, rule_,
              masked.As<unsigned char>() + m * row_bytes, keys.As<uint32_t>() + m * static_cast<size_t>(K));
    });
  }
  const void* product_input = keep_all ? a_data : masked.As<void>();
  if (!dense_matmul_) {
    DenseGemm(product_input, K, b_data, N, op_.element_type, M, K, N, y_data, N, parallel_for, scratch);
    return;
  }
  OrtValue* masked_value = nullptr;
  Check(Api(), Api().CreateTensorWithDataAsOrtValue(memory_info_, const_cast<void*>(product_input), static_cast<size_t>(M) * row_bytes,
                                                   a_view.dims.data(), a_view.dims.size(), op_.onnx_type, &masked_value));
  try {
    DenseProduct(context, masked_value, b, y);
  } catch (...) {
    Api().ReleaseValue(masked_value);
    throw;
  }
  Api().ReleaseValue(masked_value);
}

void Kernel::SelectedRowsPath(const void* a_data, const void* b_data, void* y_data, int64_t M, int64_t K, int64_t N,
                              const ParallelFor& parallel_for, ScratchAllocator& scratch) const {
  const size_t element = ElementSize(op_.element_type);
  const int64_t chunk = std::min(M, kMaxSelectedRowsBatch);
  ScratchBuffer indices(scratch, static_cast<size_t>(chunk * K) * sizeof(int32_t));
  ScratchBuffer values(scratch, static_cast<size_t>(chunk * K) * sizeof(float));
  ScratchBuffer keys(scratch, static_cast<size_t>(chunk * K) * sizeof(uint32_t));
  ScratchBuffer counts(scratch, static_cast<size_t>(chunk) * sizeof(size_t));
  ScratchBuffer union_rows(scratch, static_cast<size_t>(K) * sizeof(int32_t));
  ScratchBuffer position(scratch, static_cast<size_t>(K) * sizeof(int32_t));
  ScratchBuffer coef(scratch, static_cast<size_t>(chunk * K) * sizeof(float));

  for (int64_t m0 = 0; m0 < M; m0 += chunk) {
    const int64_t rows = std::min(chunk, M - m0);
    const auto* a_rows = static_cast<const unsigned char*>(a_data) + static_cast<size_t>(m0 * K) * element;
    parallel_for(static_cast<size_t>(rows), [&](size_t m) {
      counts.As<size_t>()[m] = SelectRow(a_rows + m * static_cast<size_t>(K) * element, op_.element_type, K, rule_,
                                         indices.As<int32_t>() + m * static_cast<size_t>(K),
                                         values.As<float>() + m * static_cast<size_t>(K),
                                         keys.As<uint32_t>() + m * static_cast<size_t>(K));
    });

    // The rows of B any row of A selected, ascending, and each one's position in that list.
    int32_t* position_of = position.As<int32_t>();
    std::fill(position_of, position_of + K, -1);
    for (int64_t m = 0; m < rows; ++m)
      for (size_t j = 0; j < counts.As<size_t>()[m]; ++j) position_of[indices.As<int32_t>()[m * K + static_cast<int64_t>(j)]] = 0;
    size_t union_count = 0;
    for (int64_t i = 0; i < K; ++i)
      if (position_of[i] == 0) {
        position_of[i] = static_cast<int32_t>(union_count);
        union_rows.As<int32_t>()[union_count++] = static_cast<int32_t>(i);
      }

    float* c = coef.As<float>();
    std::fill(c, c + static_cast<size_t>(rows) * union_count, 0.f);
    for (int64_t m = 0; m < rows; ++m)
      for (size_t j = 0; j < counts.As<size_t>()[m]; ++j) {
        const int64_t at = m * K + static_cast<int64_t>(j);
        c[static_cast<size_t>(m) * union_count + static_cast<size_t>(position_of[indices.As<int32_t>()[at]])] = values.As<float>()[at];
      }
    SelectedRows selected{union_rows.As<int32_t>(), union_count, c, rows};
    SelectedRowsProduct(selected, b_data, op_.element_type, N,
                        static_cast<unsigned char*>(y_data) + static_cast<size_t>(m0 * N) * element, parallel_for, scratch);
  }
}

}  // namespace

const OrtCustomOp* const* TopKSparseMatMulOps(size_t* count) { return op::TypedOps<Kernel>("CPUExecutionProvider", count); }

}  // namespace sparseonnx::cpu
