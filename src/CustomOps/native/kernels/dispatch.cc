// Picks the inner kernels once, at load: the best instruction set this CPU supports among those the
// build compiled, unless SPARSEONNX_ISA (scalar | avx2 | avx512) asks for a lower one.
#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>

#include "kernel_table.h"

namespace sparseonnx {
namespace {

bool CpuSupports(Isa isa) {
#if defined(__x86_64__) || defined(_M_X64)
#if defined(__GNUC__)
  __builtin_cpu_init();
  switch (isa) {
    case Isa::kScalar:
      return true;
    case Isa::kAvx2:
      return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c");
    case Isa::kAvx512:
      return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
             __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c");
  }
#endif
#endif
  return isa == Isa::kScalar;
}

bool Compiled(Isa isa) {
  switch (isa) {
    case Isa::kScalar:
      return true;
    case Isa::kAvx2:
#if defined(SPARSEONNX_HAVE_AVX2)
      return true;
#else
      return false;
#endif
    case Isa::kAvx512:
#if defined(SPARSEONNX_HAVE_AVX512)
      return true;
#else
      return false;
#endif
  }
  return false;
}

const detail::KernelTable& TableFor(Isa isa) {
  switch (isa) {
#if defined(SPARSEONNX_HAVE_AVX512)
    case Isa::kAvx512:
      return detail::Avx512Kernels();
#endif
#if defined(SPARSEONNX_HAVE_AVX2)
    case Isa::kAvx2:
      return detail::Avx2Kernels();
#endif
    default:
      return detail::ScalarKernels();
  }
}

Isa Best() {
  for (Isa isa : {Isa::kAvx512, Isa::kAvx2})
    if (Compiled(isa) && CpuSupports(isa)) return isa;
  return Isa::kScalar;
}

Isa Initial() {
  Isa isa = Best();
  if (const char* requested = std::getenv("SPARSEONNX_ISA")) {
    for (Isa candidate : {Isa::kScalar, Isa::kAvx2, Isa::kAvx512})
      if (std::strcmp(requested, IsaName(candidate)) == 0 && static_cast<int>(candidate) <= static_cast<int>(isa))
        isa = candidate;
  }
  return isa;
}

std::atomic<const detail::KernelTable*>& ActiveTable() {
  static std::atomic<const detail::KernelTable*> table{&TableFor(Initial())};
  return table;
}

std::atomic<Isa>& ActiveIsaSlot() {
  static std::atomic<Isa> isa{Initial()};
  return isa;
}

}  // namespace

Isa DetectedIsa() { return Best(); }

const detail::KernelTable& detail::ActiveKernels() { return *ActiveTable().load(std::memory_order_relaxed); }

Isa ActiveIsa() { return ActiveIsaSlot().load(); }

bool SetActiveIsa(Isa isa) {
  if (!Compiled(isa) || !CpuSupports(isa)) return false;
  ActiveTable().store(&TableFor(isa));
  ActiveIsaSlot().store(isa);
  return true;
}

const char* IsaName(Isa isa) {
  switch (isa) {
    case Isa::kScalar:
      return "scalar";
    case Isa::kAvx2:
      return "avx2";
    case Isa::kAvx512:
      return "avx512";
  }
  return "unknown";
}

void AccumulateRows(const float* coef, const int32_t* rows, size_t count, const void* B, ElementType type,
                    int64_t ldb, int64_t n0, int64_t n, float* y) {
  ActiveTable().load(std::memory_order_relaxed)->accumulate_rows(coef, rows, count, B, type, ldb, n0, n, y);
}

void StoreFloats(const float* src, int64_t n, ElementType type, void* dst) {
  ActiveTable().load(std::memory_order_relaxed)->store_floats(src, n, type, dst);
}

}  // namespace sparseonnx
