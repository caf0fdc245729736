// The quantized-weight products (quantized_rows.h): layout arithmetic, the decode product over selected
// rows, and the prefill product through DenseGemm's blocked GEMM.
//
// Decode: one task per range of kQuantTaskColumns columns (and partition of K, for narrow weights). A task
// walks its blocks in order; for
// each block, every row of A adds its kept rows of that block (the block's rows are read from memory by the
// first row of A that selected them and from L1 by the others). Each selected row is read as one
// contiguous stretch of the task's columns, so a dropped row skips whole cache lines, and the hardware
// prefetcher sees long runs instead of scattered lines.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <thread>
#include <vector>

#include "element_convert.h"
#include "kernel_table.h"
#include "quantized_rows_kernels.h"
#include "sparseonnx/quantized_rows.h"

namespace sparseonnx {

int64_t QuantPaddedColumns(int64_t N) { return (N + kQuantChunkColumns - 1) / kQuantChunkColumns * kQuantChunkColumns; }

int64_t QuantRowBytes(int bits, int64_t N) { return QuantPaddedColumns(N) * bits / 8; }

size_t QuantCodesBytes(int bits, int64_t K, int64_t N) { return static_cast<size_t>(K * QuantRowBytes(bits, N)); }

size_t QuantScaleCount(int64_t K, int64_t N, int64_t block_size) {
  if (block_size <= 0) return 0;
  return static_cast<size_t>((K + block_size - 1) / block_size * QuantPaddedColumns(N));
}

const char* QuantLayoutProblem(int bits, int64_t K, int64_t N, int64_t block_size) {
  if (bits != 4 && bits != 8) return "bits must be 4 or 8";
  if (K <= 0 || N <= 0) return "K and N must be positive";
  if (K > (int64_t{1} << 31) - 1 || N > (int64_t{1} << 31) - 1) return "K and N must fit in 31 bits";
  if (block_size < 16 || (block_size & (block_size - 1)) != 0) return "block_size must be a power of two, at least 16";
  return nullptr;
}

int QuantCode(const QuantizedRows& w, int64_t k, int64_t n) {
  const uint8_t* row = w.codes + static_cast<size_t>(k * QuantRowBytes(w.bits, w.N));
  const int64_t chunk = n / kQuantChunkColumns, j = n % kQuantChunkColumns;
  if (w.bits == 8) return row[chunk * 64 + j];
  const uint8_t byte = row[chunk * 32 + PermutedColumn(j % 32)];
  return j < 32 ? byte & 0x0F : byte >> 4;
}

float QuantScale(const QuantizedRows& w, size_t index) {
  return w.float16_scales ? detail::Float16ToFloat(static_cast<const uint16_t*>(w.scales)[index]) : static_cast<const float*>(w.scales)[index];
}

float QuantWeight(const QuantizedRows& w, int64_t k, int64_t n) {
  const size_t at = static_cast<size_t>((k / w.block_size) * QuantPaddedColumns(w.N) + n);
  const float zero = w.zero_points ? w.zero_points[at] : static_cast<float>(1 << (w.bits - 1));
  return QuantScale(w, at) * (static_cast<float>(QuantCode(w, k, n)) - zero);
}

float QuantizeActivations(const float* values, size_t count, int8_t* a_int) {
  float absmax = 0.f;
  for (size_t i = 0; i < count; ++i) absmax = std::max(absmax, std::abs(values[i]));
  const float scale = absmax / 127.f;
  const float inverse = absmax > 0.f ? 127.f / absmax : 0.f;
  for (size_t i = 0; i < count; ++i) {
    // A block with Inf or NaN quantizes to garbage that no caller uses (such rows are multiplied in float32),
    // but never converts NaN to an integer.
    const float r = std::nearbyint(values[i] * inverse);
    a_int[i] = std::isnan(r) ? int8_t{0} : static_cast<int8_t>(std::clamp(r, -127.f, 127.f));
  }
  return scale;
}

namespace detail {

bool AllFinite(const float* values, size_t count) {
  for (size_t i = 0; i < count; ++i)
    if (!std::isfinite(values[i])) return false;
  return true;
}

int64_t HardwareThreads() {
  static const int64_t threads = std::clamp<int64_t>(static_cast<int64_t>(std::thread::hardware_concurrency()), 1, 256);
  return threads;
}

// The scalar block kernel, the definition the vector ones follow. kFloat: every weight dequantized, one
// FMA per kept row in row order. kInt8: exact integer sums per column, then one scaling per block.
void QuantBlockScalar(const QuantizedRows& w, QuantAccuracy accuracy, const BlockSelection& s, int64_t n0, int64_t width, float* y) {
  const int64_t padded = QuantPaddedColumns(w.N);
  const int64_t end = std::min(n0 + width, w.N);
  if (accuracy == QuantAccuracy::kFloat) {
    for (size_t r = 0; r < s.count; ++r)
      for (int64_t n = n0; n < end; ++n) y[n - n0] = std::fma(s.values[r], QuantWeight(w, s.indices[r], n), y[n - n0]);
    return;
  }
  int32_t activation_sum = 0;
  for (size_t r = 0; r < s.count; ++r) activation_sum += s.quantized[r];
  const size_t scales = static_cast<size_t>(s.block * padded);
  const float* zeros = w.zero_points ? w.zero_points + s.block * padded : nullptr;
  const float default_zero = static_cast<float>(1 << (w.bits - 1));
  for (int64_t n = n0; n < end; ++n) {
    int32_t sum = 0;
    for (size_t r = 0; r < s.count; ++r) sum += s.quantized[r] * QuantCode(w, s.indices[r], n);
    const float zero = zeros ? zeros[n] : default_zero;
    const float t = std::fma(-zero, static_cast<float>(activation_sum), static_cast<float>(sum));
    y[n - n0] = std::fma(s.activation_scale * QuantScale(w, scales + static_cast<size_t>(n)), t, y[n - n0]);
  }
}

QuantBlockFn ActiveQuantBlock() {
  switch (ActiveIsa()) {
#if defined(SPARSEONNX_HAVE_AVX2)
    case Isa::kAvx512:  // no AVX-512 block kernel yet: the AVX2 one runs on AVX-512 CPUs
    case Isa::kAvx2:
      return QuantBlockAvx2;
#endif
    default:
      return QuantBlockScalar;
  }
}

DequantizePanelFn ActiveDequantizePanel() {
  switch (ActiveIsa()) {
#if defined(SPARSEONNX_HAVE_AVX2)
    case Isa::kAvx512:
    case Isa::kAvx2:
      return DequantizePanelAvx2;
#endif
    default:
      return DequantizePanel;
  }
}

void DequantizePanel(const QuantizedRows& w, int64_t k0, int64_t kc, int64_t n0, int64_t width, int64_t nr, float* panel) {
  const int64_t padded = QuantPaddedColumns(w.N), row_bytes = QuantRowBytes(w.bits, w.N);
  const float default_zero = static_cast<float>(1 << (w.bits - 1));
  for (int64_t p = 0; p < kc; ++p) {
    const int64_t k = k0 + p;
    const uint8_t* row = w.codes + static_cast<size_t>(k * row_bytes);
    const size_t at = static_cast<size_t>((k / w.block_size) * padded);
    const float* zero = w.zero_points ? w.zero_points + at : nullptr;
    float* out = panel + p * nr;
    for (int64_t j = 0; j < width; ++j) {
      const int64_t n = n0 + j, chunk = n / kQuantChunkColumns, c = n % kQuantChunkColumns;
      int code;
      if (w.bits == 8) {
        code = row[chunk * 64 + c];
      } else {
        const uint8_t byte = row[chunk * 32 + PermutedColumn(c % 32)];
        code = c < 32 ? byte & 0x0F : byte >> 4;
      }
      out[j] = QuantScale(w, at + static_cast<size_t>(n)) * (static_cast<float>(code) - (zero ? zero[n] : default_zero));
    }
    for (int64_t j = width; j < nr; ++j) out[j] = 0.f;
  }
}

}  // namespace detail

namespace {

// How much of each of the next block's rows (and of its scales) is prefetched ahead: the first lines of
// each stretch; the kernel's own prefetch runs ahead within a stretch once it is under way.
constexpr int64_t kLeadBytes = 128;

}  // namespace

void QuantizedSelectedProduct(const QuantizedRows& w, QuantAccuracy accuracy, int64_t M, const int32_t* indices,
                              const float* values, const size_t* counts, const float* bias, float* Y,
                              const ParallelFor& parallel_for, ScratchAllocator& scratch) {
  if (M <= 0 || w.N <= 0) return;
  const int64_t K = w.K, blocks = (K + w.block_size - 1) / w.block_size;

  // Per row of A: where each block's kept entries start in its list, and (kInt8) their int8 values and
  // each block's activation scale. Rows with Inf or NaN take the float path weight by weight.
  ScratchBuffer starts(scratch, static_cast<size_t>(M * (blocks + 1)) * sizeof(size_t));
  ScratchBuffer quantized(scratch, static_cast<size_t>(M * K));
  ScratchBuffer activation_scales(scratch, static_cast<size_t>(M * blocks) * sizeof(float));
  std::vector<char> finite(static_cast<size_t>(M));
  for (int64_t m = 0; m < M; ++m) {
    const int32_t* row_indices = indices + m * K;
    size_t* start = starts.As<size_t>() + m * (blocks + 1);
    size_t r = 0;
    for (int64_t b = 0; b <= blocks; ++b) {
      while (r < counts[m] && row_indices[r] < b * w.block_size) ++r;
      start[b] = r;
    }
    finite[static_cast<size_t>(m)] = detail::AllFinite(values + m * K, counts[m]);
    if (accuracy == QuantAccuracy::kInt8)
      for (int64_t b = 0; b < blocks; ++b)
        activation_scales.As<float>()[m * blocks + b] = QuantizeActivations(
            values + m * K + start[b], start[b + 1] - start[b], quantized.As<int8_t>() + m * K + start[b]);
  }

  const detail::QuantBlockFn fast = detail::ActiveQuantBlock();
  const int64_t padded = QuantPaddedColumns(w.N), chunks = padded / kQuantChunkColumns;
  // Tasks: column ranges of equal width (whole chunks) × partitions of the blocks. Narrow weights split K
  // instead, so every thread gets work. Each partition sums into its own tile; the partition that finishes
  // a range last adds the tiles in partition order (the result does not depend on the thread count or on
  // which task finished last) and stores Y, so the product is one parallel section.
  // The partitions depend on the shape alone (they set the order of the float sums); the column ranges may
  // then be narrowed so that their number is a multiple of the machine's threads (columns are summed
  // independently, so that changes no result): three ranges on two threads would leave one idle a third of
  // the time (measured at N = 16384: 1.18x against 1.40x for two products of N = 8192).
  const int64_t shape_ranges = (padded + detail::kQuantTaskColumns - 1) / detail::kQuantTaskColumns;
  const int64_t partitions = std::clamp<int64_t>((detail::kQuantMinTasks + shape_ranges - 1) / shape_ranges, 1, blocks);
  const int64_t workers = detail::HardwareThreads();
  const int64_t ranges = shape_ranges >= 2 ? std::min(chunks, (shape_ranges + workers - 1) / workers * workers) : shape_ranges;
  const int64_t range_chunks = (chunks + ranges - 1) / ranges;
  const int64_t tile_width = range_chunks * kQuantChunkColumns;
  ScratchBuffer tiles(scratch, static_cast<size_t>(ranges * partitions * M * tile_width) * sizeof(float));
  std::vector<std::atomic<int64_t>> finished(static_cast<size_t>(ranges));
  for (auto& f : finished) f.store(0);
  const int64_t row_bytes = QuantRowBytes(w.bits, w.N);
  parallel_for(static_cast<size_t>(ranges * partitions), [&](size_t task) {
    const int64_t range = static_cast<int64_t>(task) / partitions, part = static_cast<int64_t>(task) % partitions;
    const int64_t n0 = range * tile_width;
    if (n0 >= padded) return;
    const int64_t width = std::min(tile_width, padded - n0);
    const int64_t valid = std::min(width, w.N - n0);
    const int64_t first_block = blocks * part / partitions, end_block = blocks * (part + 1) / partitions;
    const int64_t stretch = width * w.bits / 8;
    auto tile = [&](int64_t p, int64_t m) { return tiles.As<float>() + ((range * partitions + p) * M + m) * tile_width; };
    for (int64_t m = 0; m < M; ++m) std::memset(tile(part, m), 0, static_cast<size_t>(width) * sizeof(float));
    for (int64_t b = first_block; b < end_block; ++b)
      for (int64_t m = 0; m < M; ++m) {
        const size_t* start = starts.As<size_t>() + m * (blocks + 1);
        // The first lines of the next block's rows and scales, a block ahead of their use: the rows are
        // scattered, so the hardware prefetcher cannot find them until each stretch is under way (and the
        // block kernel prefetches ahead within a stretch once it is).
        if (m == 0 && b + 1 < end_block) {
          for (size_t r = start[b + 1]; r < start[b + 2]; ++r)
            for (int64_t i = 0; i < std::min<int64_t>(stretch, kLeadBytes); i += 64)
              __builtin_prefetch(w.codes + static_cast<int64_t>(indices[r]) * row_bytes + n0 * w.bits / 8 + i);
          const int64_t scale_bytes = w.float16_scales ? 2 : 4;
          const auto* next_scales = static_cast<const char*>(w.scales) + ((b + 1) * padded + n0) * scale_bytes;
          for (int64_t i = 0; i < std::min<int64_t>(width * scale_bytes, kLeadBytes); i += 64) __builtin_prefetch(next_scales + i);
        }
        if (start[b] == start[b + 1]) continue;
        detail::BlockSelection s;
        s.block = b;
        s.indices = indices + m * K + start[b];
        s.values = values + m * K + start[b];
        s.quantized = quantized.As<int8_t>() + m * K + start[b];
        s.activation_scale = activation_scales.As<float>()[m * blocks + b];
        s.count = start[b + 1] - start[b];
        if (finite[static_cast<size_t>(m)])
          fast(w, accuracy, s, n0, width, tile(part, m));
        else
          detail::QuantBlockScalar(w, QuantAccuracy::kFloat, s, n0, width, tile(part, m));
      }
    // acq_rel: the last partition of a range sees every other partition's tile.
    if (finished[static_cast<size_t>(range)].fetch_add(1, std::memory_order_acq_rel) + 1 != partitions) return;
    for (int64_t m = 0; m < M; ++m) {
      float* out = Y + m * w.N + n0;
      const float* first = tile(0, m);
      for (int64_t j = 0; j < valid; ++j) {
        float sum = first[j];
        for (int64_t p = 1; p < partitions; ++p) sum += tile(p, m)[j];
        out[j] = bias ? sum + bias[n0 + j] : sum;
      }
    }
  });
}

void QuantizedDenseProduct(const QuantizedRows& w, QuantAccuracy accuracy, const float* A, int64_t M, const float* bias, float* Y,
                           const ParallelFor& parallel_for, ScratchAllocator& scratch) {
  if (M <= 0 || w.N <= 0) return;
  if (accuracy == QuantAccuracy::kInt8 && w.bits == 4) return detail::Int8DenseProduct(w, A, M, bias, Y, parallel_for, scratch);
  const detail::DequantizePanelFn dequantize = detail::ActiveDequantizePanel();
  const detail::PanelSource source = [&w, dequantize](int64_t k0, int64_t kc, int64_t n0, int64_t width, int64_t nr, float* panel) {
    dequantize(w, k0, kc, n0, width, nr, panel);
  };
  detail::PanelGemm(A, w.K, source, M, w.K, w.N, Y, w.N, parallel_for, scratch);
  if (bias)
    parallel_for(static_cast<size_t>(M), [&](size_t m) {
      float* row = Y + static_cast<int64_t>(m) * w.N;
      for (int64_t n = 0; n < w.N; ++n) row[n] += bias[n];
    });
}

}  // namespace sparseonnx
