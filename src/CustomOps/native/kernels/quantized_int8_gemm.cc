// The prefill product at accuracy_level 4 (kInt8) for 4-bit codes: an integer GEMM with the decode
// product's arithmetic (quantized_rows.h). Each row of A is quantized to int8 per block exactly as the decode
// product quantizes a row's kept entries (the masked zeros change neither the absmax nor any other value),
// so prefill and decode compute the same integer sums; only the float32 scaling of those sums is ordered
// differently. A float32 GEMM on the same weights runs at about 70% of this machine's FMA peak and still
// loses to ONNX Runtime's int8 MatMulNBits kernel, which is why prefill needs integer arithmetic too.
//
//   for each task, a tile of kTileColumns columns × kTileRows rows of A (in parallel):
//     for each group of W's rows (32 consecutive input channels, 16 with zero points):
//       the group's rows of the tile (group_rows × tile bytes, in L1) are unpacked pair by pair and
//       multiplied against kInt8GemmRows rows of A at a time, into the tile's float32 accumulators (in L2).
//
// Rows of A with Inf or NaN are recomputed in float32 afterwards, as the decode product does for them.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "kernel_table.h"
#include "quantized_rows_kernels.h"
#include "sparseonnx/quantized_rows.h"

namespace sparseonnx {
namespace detail {

void Int8GemmScalar(const Int8GemmGroup& g, int64_t rows, int64_t width, float* C, int64_t ldc) {
  for (int64_t m = 0; m < rows; ++m) {
    const int8_t* a = g.a + m * g.lda;
    const float sa = g.activation_scales[m * g.scale_stride];
    const int32_t asum = g.activation_sums[m * g.sum_stride];
    for (int64_t j = 0; j < width; ++j) {
      const int64_t chunk = j / kQuantChunkColumns, c = j % kQuantChunkColumns;
      int32_t sum = 0;
      for (int64_t r = 0; r < 2 * g.pairs; ++r) {
        const uint8_t byte = g.rows[r][chunk * 32 + PermutedColumn(c % 32)];
        sum += a[r] * (c < 32 ? byte & 0x0F : byte >> 4);
      }
      // The AVX2 kernel's arithmetic: symmetric sums are exact integers before conversion.
      const float t = g.zeros ? std::fma(-g.zeros[j], static_cast<float>(asum), static_cast<float>(sum))
                              : static_cast<float>(sum - 8 * asum);
      C[m * ldc + j] = std::fma(sa * g.scales[j], t, C[m * ldc + j]);
    }
  }
}

Int8GemmFn ActiveInt8Gemm() {
  switch (ActiveIsa()) {
#if defined(SPARSEONNX_HAVE_AVX2)
    case Isa::kAvx512:  // no AVX-512 kernel yet: the AVX2 one runs on AVX-512 CPUs
    case Isa::kAvx2:
      return Int8GemmAvx2;
#endif
    default:
      return Int8GemmScalar;
  }
}

}  // namespace detail

namespace {

constexpr int64_t kTileColumns = 512;  // 256 bytes of each W row per group: a group of 32 rows is 8 KiB, in L1
constexpr int64_t kTileRows = 64;      // float32 accumulators of a tile: 128 KiB, in L2
// (measured at [128, 4096] x [4096, 11008]: 256 x 64 tiles 5% slower, 1024 x 32 and 256 x 128 15% slower;
// kInt8GemmRows 3 against 2 and 4: 8% faster)

}  // namespace

void detail::Int8DenseProduct(const QuantizedRows& w, const float* A, int64_t M, const float* bias, float* Y,
                               const ParallelFor& parallel_for, ScratchAllocator& scratch) {
  const int64_t K = w.K, N = w.N, block_size = w.block_size;
  const int64_t blocks = (K + block_size - 1) / block_size;
  const bool symmetric = w.zero_points == nullptr;
  // Symmetric: sum a * (q - 8) over 32 rows is at most 32 * 127 * 8 < 2^15, so a group of 32 stays in int16.
  // With zero points the kernel sums a * q, at most 16 * 127 * 15 < 2^15 over 16 rows.
  const int64_t group = symmetric ? std::min<int64_t>(block_size, 32) : 16;
  const int64_t groups = (K + group - 1) / group, padded_k = groups * group;

  ScratchBuffer quantized(scratch, static_cast<size_t>(M * padded_k));
  ScratchBuffer activation_scales(scratch, static_cast<size_t>(M * blocks) * sizeof(float));
  ScratchBuffer activation_sums(scratch, static_cast<size_t>(M * groups) * sizeof(int32_t));
  std::vector<char> finite(static_cast<size_t>(M));
  parallel_for(static_cast<size_t>(M), [&](size_t row) {
    const int64_t m = static_cast<int64_t>(row);
    const float* a = A + m * K;
    int8_t* q = quantized.As<int8_t>() + m * padded_k;
    finite[row] = detail::AllFinite(a, static_cast<size_t>(K));
    for (int64_t b = 0; b < blocks; ++b) {
      const int64_t k0 = b * block_size;
      activation_scales.As<float>()[m * blocks + b] = QuantizeActivations(a + k0, static_cast<size_t>(std::min(block_size, K - k0)), q + k0);
    }
    std::memset(q + K, 0, static_cast<size_t>(padded_k - K));
    for (int64_t g = 0; g < groups; ++g) {
      int32_t sum = 0;
      for (int64_t i = 0; i < group; ++i) sum += q[g * group + i];
      activation_sums.As<int32_t>()[m * groups + g] = sum;
    }
  });

  const detail::Int8GemmFn kernel = detail::ActiveInt8Gemm();
  const int64_t padded = QuantPaddedColumns(N), row_bytes = QuantRowBytes(4, N);
  const int64_t ranges = (padded + kTileColumns - 1) / kTileColumns, row_tiles = (M + kTileRows - 1) / kTileRows;
  // Tasks of one column range are adjacent, so threads working at the same time share that range's codes in L3.
  parallel_for(static_cast<size_t>(ranges * row_tiles), [&](size_t task) {
    const int64_t range = static_cast<int64_t>(task) / row_tiles, row_tile = static_cast<int64_t>(task) % row_tiles;
    const int64_t n0 = range * kTileColumns, width = std::min(kTileColumns, padded - n0), valid = std::min(width, N - n0);
    const int64_t m0 = row_tile * kTileRows, rows = std::min(kTileRows, M - m0);
    ScratchBuffer tile(scratch, static_cast<size_t>(rows * width) * sizeof(float));
    ScratchBuffer block_scales(scratch, static_cast<size_t>(width) * sizeof(float));
    float* C = tile.As<float>();
    std::memset(C, 0, static_cast<size_t>(rows * width) * sizeof(float));
    const uint8_t* row_codes[32];
    detail::Int8GemmGroup g;
    g.rows = row_codes;
    g.pairs = group / 2;
    g.lda = padded_k;
    g.scale_stride = blocks;
    g.sum_stride = groups;
    g.scales = block_scales.As<float>();
    for (int64_t gi = 0; gi < groups; ++gi) {
      const int64_t k0 = gi * group, b = k0 / block_size;
      if (k0 % block_size == 0) {
        const size_t at = static_cast<size_t>(b * padded + n0);
        for (int64_t j = 0; j < width; ++j) block_scales.As<float>()[j] = QuantScale(w, at + static_cast<size_t>(j));
      }
      // Rows past K repeat the last row; their activations are the zero padding.
      for (int64_t i = 0; i < group; ++i) row_codes[i] = w.codes + std::min(k0 + i, K - 1) * row_bytes + n0 / 2;
      if (gi + 1 < groups)  // the next group's rows, while this one is multiplied rows_of_A / kInt8GemmRows times
        for (int64_t i = 0; i < group; ++i) {
          const uint8_t* next = w.codes + std::min(k0 + group + i, K - 1) * row_bytes + n0 / 2;
          for (int64_t byte = 0; byte < width / 2; byte += 64) __builtin_prefetch(next + byte);
        }
      g.zeros = symmetric ? nullptr : w.zero_points + b * padded + n0;
      for (int64_t mm = 0; mm < rows; mm += detail::kInt8GemmRows) {
        const int64_t m = m0 + mm;
        g.a = quantized.As<int8_t>() + m * padded_k + k0;
        g.activation_scales = activation_scales.As<float>() + m * blocks + b;
        g.activation_sums = activation_sums.As<int32_t>() + m * groups + gi;
        kernel(g, std::min(detail::kInt8GemmRows, rows - mm), width, C + mm * width, width);
      }
    }
    for (int64_t m = 0; m < rows; ++m) {
      float* out = Y + (m0 + m) * N + n0;
      const float* sums = C + m * width;
      for (int64_t j = 0; j < valid; ++j) out[j] = bias ? sums[j] + bias[n0 + j] : sums[j];
    }
  });

  for (int64_t m = 0; m < M; ++m)
    if (!finite[static_cast<size_t>(m)]) QuantizedDenseProduct(w, QuantAccuracy::kFloat, A + m * K, 1, bias, Y + m * N, parallel_for, scratch);
}

}  // namespace sparseonnx
