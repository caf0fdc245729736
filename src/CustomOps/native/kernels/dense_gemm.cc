// The prefill product: a packed, blocked GEMM (the BLIS structure) on the active instruction set's
// micro-kernel (kernel_table.h).
//
//   for each block of kNc columns of B (one task each, run in parallel):
//     for each block of kKc rows of B (k):
//       pack B[k block, column block] into panels of nr columns, float32, zero-padded
//       for each panel of mr rows of A (packed once, up front):
//         for each panel of nr columns: micro-kernel, adding this k block into C
//
// A packed panel is kKc x mr floats and a B panel kKc x nr: both stay in L1 while the micro-kernel runs;
// the task's packed B block (kKc x kNc floats, 512 KiB) stays in L2 across all row panels of A.
#include <algorithm>
#include <cstring>

#include "element_convert.h"
#include "kernel_table.h"
#include "quantized_rows_kernels.h"
#include "sparseonnx/kernels.h"

namespace sparseonnx {
namespace {

constexpr int64_t kKc = 256;  // depth of one packed block
constexpr int64_t kNc = 512;  // columns of B per task (a multiple of every micro-kernel's nr)

inline float Element(const void* base, ElementType type, int64_t index) {
  switch (type) {
    case ElementType::kFloat32:
      return static_cast<const float*>(base)[index];
    case ElementType::kFloat16:
      return detail::Float16ToFloat(static_cast<const uint16_t*>(base)[index]);
    case ElementType::kBFloat16:
      return detail::BFloat16ToFloat(static_cast<const uint16_t*>(base)[index]);
  }
  return 0.f;
}

// The GEMM with B's panels from `pack_b` (typed B, or dequantized codes) and A of `type`.
void BlockedGemm(const void* A, int64_t lda, ElementType type, const detail::PanelSource& pack_b, int64_t M, int64_t K,
                 int64_t N, void* Y, int64_t ldy, const ParallelFor& parallel_for, ScratchAllocator& scratch) {
  if (M <= 0 || N <= 0) return;
  const size_t out_size = ElementSize(type);
  if (K <= 0) {
    for (int64_t m = 0; m < M; ++m)
      std::memset(static_cast<unsigned char*>(Y) + static_cast<size_t>(m * ldy) * out_size, 0, static_cast<size_t>(N) * out_size);
    return;
  }
  const detail::KernelTable& kernels = detail::ActiveKernels();
  const int64_t mr = kernels.gemm_mr, nr = kernels.gemm_nr;
  const int64_t m_panels = (M + mr - 1) / mr, k_blocks = (K + kKc - 1) / kKc;

  // A, packed once: panel (k block kb, rows ib*mr..) holds kc steps of mr values, rows beyond M zero.
  ScratchBuffer packed_a(scratch, static_cast<size_t>(k_blocks * m_panels * kKc * mr) * sizeof(float));
  parallel_for(static_cast<size_t>(k_blocks), [&](size_t kb) {
    const int64_t k0 = static_cast<int64_t>(kb) * kKc, kc = std::min(kKc, K - k0);
    for (int64_t ib = 0; ib < m_panels; ++ib) {
      float* panel = packed_a.As<float>() + (static_cast<int64_t>(kb) * m_panels + ib) * kKc * mr;
      for (int64_t p = 0; p < kc; ++p)
        for (int64_t i = 0; i < mr; ++i) {
          const int64_t row = ib * mr + i;
          panel[p * mr + i] = row < M ? Element(A, type, row * lda + k0 + p) : 0.f;
        }
    }
  });

  const int64_t n_blocks = (N + kNc - 1) / kNc;
  parallel_for(static_cast<size_t>(n_blocks), [&](size_t jb) {
    const int64_t n0 = static_cast<int64_t>(jb) * kNc, nc = std::min(kNc, N - n0);
    const int64_t n_panels = (nc + nr - 1) / nr;
    ScratchBuffer packed_b(scratch, static_cast<size_t>(kKc * n_panels * nr) * sizeof(float));
    // float32 output is accumulated in place; 16-bit output in a float32 block converted at the end.
    const bool in_place = type == ElementType::kFloat32;
    ScratchBuffer block(scratch, (in_place ? 1 : static_cast<size_t>(M * nc)) * sizeof(float));
    float* c = in_place ? static_cast<float*>(Y) + n0 : block.As<float>();
    const int64_t ldc = in_place ? ldy : nc;

    for (int64_t kb = 0; kb < k_blocks; ++kb) {
      const int64_t k0 = kb * kKc, kc = std::min(kKc, K - k0);
      for (int64_t jr = 0; jr < n_panels; ++jr)
        pack_b(k0, kc, n0 + jr * nr, std::min(nr, nc - jr * nr), nr, packed_b.As<float>() + jr * kKc * nr);
      for (int64_t ib = 0; ib < m_panels; ++ib) {
        const float* a_panel = packed_a.As<float>() + (kb * m_panels + ib) * kKc * mr;
        const int64_t rows = std::min(mr, M - ib * mr);
        for (int64_t jr = 0; jr < n_panels; ++jr)
          kernels.gemm_micro_kernel(a_panel, packed_b.As<float>() + jr * kKc * nr, kc, c + ib * mr * ldc + jr * nr, ldc, rows,
                                    std::min(nr, nc - jr * nr), kb > 0);
      }
    }
    if (!in_place)
      for (int64_t m = 0; m < M; ++m)
        StoreFloats(c + m * ldc, nc, type, static_cast<unsigned char*>(Y) + static_cast<size_t>(m * ldy + n0) * out_size);
  });
}

}  // namespace

void DenseGemm(const void* A, int64_t lda, const void* B, int64_t ldb, ElementType type, int64_t M, int64_t K, int64_t N,
               void* Y, int64_t ldy, const ParallelFor& parallel_for, ScratchAllocator& scratch) {
  const detail::KernelTable& kernels = detail::ActiveKernels();
  const size_t element = ElementSize(type);
  const detail::PanelSource pack_b = [&](int64_t k0, int64_t kc, int64_t n0, int64_t width, int64_t, float* panel) {
    kernels.pack_b_panel(static_cast<const unsigned char*>(B) + static_cast<size_t>(k0 * ldb + n0) * element, type, ldb, kc, width, panel);
  };
  BlockedGemm(A, lda, type, pack_b, M, K, N, Y, ldy, parallel_for, scratch);
}

void detail::PanelGemm(const float* A, int64_t lda, const PanelSource& pack_b, int64_t M, int64_t K, int64_t N, float* Y,
                       int64_t ldy, const ParallelFor& parallel_for, ScratchAllocator& scratch) {
  BlockedGemm(A, lda, ElementType::kFloat32, pack_b, M, K, N, Y, ldy, parallel_for, scratch);
}

}  // namespace sparseonnx
