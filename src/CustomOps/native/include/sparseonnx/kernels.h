// SparseOnnx kernel core: the TopKSparseMatMul computation as plain functions.
//
// Nothing here includes ONNX Runtime headers: the ORT custom op (cpu/) adapts these functions to ORT, and
// the native tests call them directly against a naive reference. Contract: docs/topk-sparse-matmul.md.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>

namespace sparseonnx {

// Element types the kernels read and write. Accumulation is always float32.
enum class ElementType : uint8_t { kFloat32, kFloat16, kBFloat16 };

size_t ElementSize(ElementType type);
const char* ElementTypeName(ElementType type);

// How each row of A chooses the entries it keeps.
struct SelectionRule {
  enum class Mode : uint8_t { kTopK, kThreshold };
  Mode mode = Mode::kTopK;
  int64_t k = 0;          // kTopK: keep the k largest |a| (1 <= k <= K), ties to the lower index.
  float threshold = 0.f;  // kThreshold: keep |a| > threshold (threshold >= 0).

  static SelectionRule TopK(int64_t k) { return {Mode::kTopK, k, 0.f}; }
  static SelectionRule Threshold(float t) { return {Mode::kThreshold, 0, t}; }
};
// NaN entries rank above every number (so they are kept first and propagate); -0.0 and +0.0 are equal.

// Selects the kept entries of one row of K elements. Writes their indices in ascending order to
// `kept_indices` and their values, converted to float, to `kept_values` (both with room for K), and
// returns how many were kept; entries past that count may be overwritten (the selection is branch-free).
// `scratch` must hold K uint32 (used by top-k only).
size_t SelectRow(const void* row, ElementType type, int64_t K, const SelectionRule& rule,
                 int32_t* kept_indices, float* kept_values, uint32_t* scratch);

// The same selection written as a masked copy of the row: kept entries copied bit for bit, dropped ones
// +0.0. `masked_row` has K elements of `type`; `scratch` must hold K uint32.
void MaskRow(const void* row, ElementType type, int64_t K, const SelectionRule& rule, void* masked_row,
             uint32_t* scratch);

// The inner kernel: y[j] += sum over r < count of coef[r] * B[rows[r] * ldb + n0 + j], for j in [0, n).
// B holds `type` elements; y is float32. Each y[j] is updated with fused multiply-adds in r order, so
// every instruction set gives bitwise identical results.
void AccumulateRows(const float* coef, const int32_t* rows, size_t count, const void* B, ElementType type,
                    int64_t ldb, int64_t n0, int64_t n, float* y);

// Converts n float32 values to `type` (round to nearest even; NaN stays NaN).
void StoreFloats(const float* src, int64_t n, ElementType type, void* dst);

// Instruction sets the kernels are built for; the best one the CPU supports is picked at load.
enum class Isa : uint8_t { kScalar, kAvx2, kAvx512 };
Isa DetectedIsa();  // the best this CPU supports
Isa ActiveIsa();    // the one in use
// Use `isa` from now on (tests and benchmarks). Returns false, changing nothing, if the CPU lacks it.
bool SetActiveIsa(Isa isa);
const char* IsaName(Isa isa);

// The host's parallel loop: runs body(i) for every i in [0, count), possibly concurrently.
using ParallelFor = std::function<void(size_t count, const std::function<void(size_t)>& body)>;

// Scratch memory from the host (ORT's arena in the custom op, plain new[] in tests).
struct ScratchAllocator {
  virtual ~ScratchAllocator() = default;
  virtual void* Allocate(size_t bytes) = 0;
  virtual void Free(void* p) = 0;
};

// A scratch buffer of `bytes` from a ScratchAllocator, freed at scope exit.
class ScratchBuffer {
 public:
  ScratchBuffer(ScratchAllocator& allocator, size_t bytes) : allocator_(allocator), data_(allocator.Allocate(bytes)) {}
  ~ScratchBuffer() { allocator_.Free(data_); }
  ScratchBuffer(const ScratchBuffer&) = delete;
  ScratchBuffer& operator=(const ScratchBuffer&) = delete;
  template <typename T>
  T* As() const {
    return static_cast<T*>(data_);
  }

 private:
  ScratchAllocator& allocator_;
  void* data_;
};

// Rows of B selected by at least one row of A, and what each row of A multiplies them by.
struct SelectedRows {
  const int32_t* rows = nullptr;  // U distinct row indices of B, ascending
  size_t count = 0;               // U
  const float* coef = nullptr;    // [M][U]: row m's coefficient for rows[u], 0 where m did not select it
  int64_t m = 0;                  // M
};

// Y[m, :] = sum over u of coef[m][u] * B[rows[u], :], for B [K, N] and Y [M, N] of `type`.
// Reads only the selected rows of B, each once, streaming along N. The rows are split into fixed
// partitions (independent of the thread count, so results are deterministic), each accumulating into
// its own float32 partial sums, which a second parallel pass adds up in partition order and stores.
void SelectedRowsProduct(const SelectedRows& selected, const void* B, ElementType type, int64_t N, void* Y,
                         const ParallelFor& parallel_for, ScratchAllocator& scratch);

// Y[M, N] = A[M, K] · B[K, N], A, B and Y of `type` (row strides lda, ldb, ldy in elements), accumulated in
// float32: the prefill product. A blocked GEMM: A is packed once into float32 panels of the micro-kernel's
// rows, each task packs a block of B's columns (converting float16 or bfloat16 on the way) and runs the
// micro-kernel over it. Tasks split only the columns, so Y does not depend on the thread count; every
// instruction set gives the same bits.
void DenseGemm(const void* A, int64_t lda, const void* B, int64_t ldb, ElementType type, int64_t M, int64_t K, int64_t N,
               void* Y, int64_t ldy, const ParallelFor& parallel_for, ScratchAllocator& scratch);

}  // namespace sparseonnx
