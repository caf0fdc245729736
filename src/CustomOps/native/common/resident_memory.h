// Memory of the op's own for constant weights: ORT memory-maps large external initializers, and reading
// selected rows of a file-backed mapping was measured 1.7× slower than the same rows in anonymous memory on a
// Llama-3.2-1B-sized model (huge pages add another 15%). Both CPU ops copy their constant weights here once,
// at session creation, and page out the mapped source.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>

#if defined(__linux__)
#include <sys/mman.h>
#include <unistd.h>
#endif

namespace sparseonnx::cpu {

struct FreeDeleter {
  void operator()(void* p) const { std::free(p); }
};
using ResidentMemory = std::unique_ptr<void, FreeDeleter>;

// `bytes` of 2 MiB-aligned memory advised for transparent huge pages, or null (the caller then reads the
// weights where ORT keeps them).
inline ResidentMemory AllocateResident(size_t bytes) {
  constexpr size_t kHugePage = size_t{2} << 20;
  const size_t reserved = (bytes + kHugePage - 1) / kHugePage * kHugePage;
  void* memory = nullptr;
  if (bytes == 0 || posix_memalign(&memory, kHugePage, reserved) != 0) return nullptr;
#if defined(__linux__)
  madvise(memory, reserved, MADV_HUGEPAGE);  // advice only: failure is harmless
#endif
  return ResidentMemory(memory);
}

// The source of a copy is usually a read-only mapping of the external data file that nothing reads again:
// ask the kernel to reclaim those pages now rather than under pressure later (reclaim of a large model's page
// cache while decoding was measured to cost whole tokens). MADV_PAGEOUT never discards data: clean file pages
// are re-read if touched, anonymous ones are kept (or swapped). Only whole pages inside the source.
inline void PageOut(const void* source, size_t bytes) {
#if defined(__linux__) && defined(MADV_PAGEOUT)
  const auto page = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
  const auto first = (reinterpret_cast<uintptr_t>(source) + page - 1) / page * page;
  const auto last = (reinterpret_cast<uintptr_t>(source) + bytes) / page * page;
  if (last > first) madvise(reinterpret_cast<void*>(first), last - first, MADV_PAGEOUT);  // advice only
#else
  (void)source;
  (void)bytes;
#endif
}

}  // namespace sparseonnx::cpu
