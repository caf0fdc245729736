// What the CPU kernels borrow from ONNX Runtime while they run: scratch memory from the session's arena
// and its intra-op thread pool, as the kernel core's ScratchAllocator and ParallelFor.
#pragma once

#include <algorithm>
#include <exception>
#include <functional>
#include <mutex>
#include <new>

#include "common/op_common.h"
#include "sparseonnx/kernels.h"

namespace sparseonnx::cpu {

// Scratch memory from the session's CPU arena, which keeps freed blocks for the next call.
class ArenaScratch final : public ScratchAllocator {
 public:
  ArenaScratch(OrtKernelContext* context, const OrtMemoryInfo* memory_info) {
    op::Check(op::Api(), op::Api().KernelContext_GetAllocator(context, memory_info, &allocator_));
  }
  ~ArenaScratch() override { op::Api().ReleaseAllocator(allocator_); }
  void* Allocate(size_t bytes) override {
    void* p = allocator_->Alloc(allocator_, std::max<size_t>(bytes, 1));
    if (p == nullptr) throw std::bad_alloc();
    return p;
  }
  void Free(void* p) override { allocator_->Free(allocator_, p); }

 private:
  OrtAllocator* allocator_ = nullptr;
};

// ORT's intra-op thread pool as a ParallelFor. Exceptions in the body are caught on the worker thread
// (they must not unwind through ORT's pool) and the first one is rethrown on the calling thread.
inline ParallelFor OrtParallelFor(OrtKernelContext* context) {
  return [context](size_t count, const std::function<void(size_t)>& body) {
    if (count == 0) return;
    if (count == 1) {
      body(0);
      return;
    }
    struct Shared {
      const std::function<void(size_t)>* body;
      std::mutex mutex;
      std::exception_ptr error;
    } shared{&body, {}, nullptr};
    auto trampoline = [](void* data, size_t i) {
      auto* s = static_cast<Shared*>(data);
      try {
        (*s->body)(i);
      } catch (...) {
        std::lock_guard<std::mutex> lock(s->mutex);
        if (!s->error) s->error = std::current_exception();
      }
    };
    op::Check(op::Api(), op::Api().KernelContext_ParallelFor(context, trampoline, count, 0, &shared));
    if (shared.error) std::rethrow_exception(shared.error);
  };
}

}  // namespace sparseonnx::cpu
