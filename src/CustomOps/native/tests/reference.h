// Naive reference implementations for the kernel tests: obviously correct, deliberately slow, and written
// differently from the kernels (sorting instead of radix select, double accumulation).
#pragma once

#include <cstddef>
#include <atomic>
#include <cstdint>
#include <vector>

#include "sparseonnx/kernels.h"

namespace sparseonnx::test {

// Row values as float, from raw elements of `type`.
std::vector<float> ToFloats(const void* data, ElementType type, size_t count);

// Which entries the contract keeps: top-k by |a| with NaN above everything and ties to the lower index,
// or |a| > threshold with NaN kept.
std::vector<bool> ReferenceMask(const std::vector<float>& row, const SelectionRule& rule);

// Y[m][n] = sum over kept i of A[m][i] * B[i][n], accumulated in double.
std::vector<double> ReferenceProduct(const std::vector<float>& A, const std::vector<float>& B, int64_t M, int64_t K,
                                     int64_t N, const SelectionRule& rule);

// A worst-case bound on float32 accumulation error for one output: 2 * K * 2^-24 * sum |a_i * b_in| over
// kept i (the classic gamma_K bound, doubled for the partition sums and the final rounding).
std::vector<double> ErrorBound(const std::vector<float>& A, const std::vector<float>& B, int64_t M, int64_t K,
                               int64_t N, const SelectionRule& rule);

// A buffer whose end touches an inaccessible page, so reading or writing one element past it faults.
class GuardedBuffer {
 public:
  explicit GuardedBuffer(size_t bytes);
  ~GuardedBuffer();
  GuardedBuffer(const GuardedBuffer&) = delete;
  GuardedBuffer& operator=(const GuardedBuffer&) = delete;
  void* data() const { return data_; }
  size_t size() const { return bytes_; }

 private:
  void* mapping_ = nullptr;
  size_t mapping_bytes_ = 0;
  void* data_ = nullptr;
  size_t bytes_ = 0;
};

// Scratch memory from new[], counting live allocations so tests can check nothing leaks.
struct CountingScratch final : ScratchAllocator {
  std::atomic<int> live{0};
  void* Allocate(size_t bytes) override {
    ++live;
    return new unsigned char[bytes];
  }
  void Free(void* p) override {
    --live;
    delete[] static_cast<unsigned char*>(p);
  }
};

// ParallelFor that runs the body serially, or on `threads` std::threads.
ParallelFor SerialFor();
ParallelFor ThreadedFor(int threads);

}  // namespace sparseonnx::test
