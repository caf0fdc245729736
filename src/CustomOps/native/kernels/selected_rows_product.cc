// Y = (selected rows of B) weighted by each row of A's coefficients: the decode-path product.
//
// Phase 1 splits the U selected rows into P fixed partitions. Each partition streams its rows of B once
// and accumulates M rows of float32 partial sums with AccumulateRows, which reads whole rows of B as long
// sequential streams. With several rows of A, the partition goes block by block of kRowsPerBlock rows of B,
// and every row of A applies its coefficients to the block (zero where it did not select that row of B)
// while the block is still in L2, so B comes from memory once. (A register-tiled kernel sharing each load
// of B among the rows of A measured no faster: the long row streams matter more.) Phase 2 adds the P
// partials in partition order, column block by column block, and stores Y in its element type.
//
// P depends only on U, never on the thread count, so Y is bitwise reproducible however many threads run.
#include <algorithm>
#include <cstring>
#include <memory>

#include "sparseonnx/kernels.h"

namespace sparseonnx {
namespace {

// A partition has at least this many rows (fewer partitions mean fewer partial sums to add).
constexpr size_t kMinRowsPerPartition = 64;
// At most this many partitions: enough to keep 16 threads busy.
constexpr size_t kMaxPartitions = 16;
// Rows of B that all rows of A apply before moving on: 8 rows of 14336 floats are 448 KiB, within L2.
constexpr size_t kRowsPerBlock = 8;
// Columns summed per phase-2 task.
constexpr int64_t kReduceColumns = 2048;

}  // namespace

void SelectedRowsProduct(const SelectedRows& selected, const void* B, ElementType type, int64_t N, void* Y,
                         const ParallelFor& parallel_for, ScratchAllocator& scratch) {
  const int64_t M = selected.m;
  const size_t U = selected.count;
  const size_t out_size = ElementSize(type);
  if (M <= 0 || N <= 0) return;
  if (U == 0) {
    std::memset(Y, 0, static_cast<size_t>(M * N) * out_size);  // every entry of A was dropped
    return;
  }

  // Every partition costs M x N partial sums to clear and add up: with more rows of A, fewer, larger partitions.
  const size_t min_rows = kMinRowsPerPartition * static_cast<size_t>(M);
  const size_t partitions = std::clamp<size_t>((U + min_rows - 1) / min_rows, 1, kMaxPartitions);
  const size_t partial_floats = static_cast<size_t>(M * N);
  ScratchBuffer partials(scratch, partitions * partial_floats * sizeof(float));
  auto* partial = partials.As<float>();

  parallel_for(partitions, [&](size_t p) {
    const size_t begin = U * p / partitions, end = U * (p + 1) / partitions;
    float* y = partial + p * partial_floats;
    std::memset(y, 0, partial_floats * sizeof(float));
    if (M == 1) {
      AccumulateRows(selected.coef + begin, selected.rows + begin, end - begin, B, type, N, 0, N, y);
      return;
    }
    for (size_t block = begin; block < end; block += kRowsPerBlock) {
      const size_t rows = std::min(kRowsPerBlock, end - block);
      for (int64_t m = 0; m < M; ++m)
        AccumulateRows(selected.coef + static_cast<size_t>(m) * U + block, selected.rows + block, rows, B, type, N, 0, N,
                       y + static_cast<size_t>(m) * N);
    }
  });

  const int64_t column_blocks = (N + kReduceColumns - 1) / kReduceColumns;
  parallel_for(static_cast<size_t>(M * column_blocks), [&](size_t task) {
    const int64_t m = static_cast<int64_t>(task) / column_blocks;
    const int64_t n0 = (static_cast<int64_t>(task) % column_blocks) * kReduceColumns;
    const int64_t n = std::min(kReduceColumns, N - n0);
    float sum[kReduceColumns];
    std::memcpy(sum, partial + m * N + n0, static_cast<size_t>(n) * sizeof(float));
    for (size_t p = 1; p < partitions; ++p) {
      const float* other = partial + p * partial_floats + m * N + n0;
      for (int64_t j = 0; j < n; ++j) sum[j] += other[j];
    }
    StoreFloats(sum, n, type, static_cast<unsigned char*>(Y) + static_cast<size_t>(m * N + n0) * out_size);
  });
}

}  // namespace sparseonnx
