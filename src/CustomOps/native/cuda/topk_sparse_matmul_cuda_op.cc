// TopKSparseMatMul on ONNX Runtime's CUDA execution provider: checks the node and its inputs like the CPU op
// (common/op_common.h), then hands the product to the CUDA kernel core (native/cuda_ops) on ORT's compute
// stream, with its scratch from ORT's stream-aware arena (KernelContext_GetScratchBuffer). Nothing here
// synchronizes the device or calls cudaMalloc; a failed launch becomes an ORT error naming the node.
#include "topk_sparse_matmul_cuda_op.h"

#include <algorithm>
#include <array>
#include <cstdint>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include <cuda_runtime_api.h>

#include "common/op_common.h"
#include "cuda/cuda_conversions.h"
#include "sparseonnx/cuda_topk_sparse_matmul.h"

namespace sparseonnx::cuda_op {
namespace {

using op::Api;
using op::Check;
using op::OrtError;
using op::TypedOp;

// Each device's facts (multiprocessors, how many gather blocks fit on one), asked once per device: the plan
// sizes the gather's grid from them.
const cuda::DeviceFacts& FactsFor(int device) {
  constexpr int kDevices = 64;
  static std::array<std::once_flag, kDevices> asked;
  static std::array<cuda::DeviceFacts, kDevices> facts;
  static const cuda::DeviceFacts unknown;  // one multiprocessor: a small grid, still correct
  if (device < 0 || device >= kDevices) return unknown;
  std::call_once(asked[device], [device] { facts[device] = cuda::QueryDeviceFacts(device); });
  return facts[device];
}

// Device scratch for one call: allocated on the kernel's compute stream from the provider's arena, so a
// later allocation on another stream cannot reuse it before this stream's kernels are done; freed at scope
// exit, after the launches are enqueued (the arena hands the block to later work on this stream only).
class StreamScratch {
 public:
  StreamScratch(OrtKernelContext* context, const OrtMemoryInfo* memory, size_t bytes) {
    if (bytes == 0) return;
    Check(Api(), Api().KernelContext_GetAllocator(context, memory, &allocator_));
    OrtStatus* status = Api().KernelContext_GetScratchBuffer(context, memory, bytes, &data_);
    if (status == nullptr && data_ == nullptr) status = Api().CreateStatus(ORT_FAIL, "the CUDA arena returned no scratch buffer");
    if (status != nullptr) {
      Api().ReleaseAllocator(allocator_);
      allocator_ = nullptr;
      Check(Api(), status);
    }
  }
  ~StreamScratch() {
    if (allocator_ == nullptr) return;
    if (data_ != nullptr) allocator_->Free(allocator_, data_);
    Api().ReleaseAllocator(allocator_);
  }
  StreamScratch(const StreamScratch&) = delete;
  StreamScratch& operator=(const StreamScratch&) = delete;
  void* data() const { return data_; }

 private:
  OrtAllocator* allocator_ = nullptr;
  void* data_ = nullptr;
};

// The gather's tickets, kept per compute stream (cuda::TicketBuffer): allocated and zeroed the first time a
// stream is seen (or a call needs more), then left zero by every call, so decoding launches one kernel per
// call in threshold mode rather than a memset and a kernel. If an allocation fails, calls fall back to
// counters in their scratch.
class StreamTickets {
 public:
  StreamTickets() = default;
  StreamTickets(const StreamTickets&) = delete;
  StreamTickets& operator=(const StreamTickets&) = delete;
  ~StreamTickets() {
    for (auto& entry : by_stream_) cudaFree(entry.second.data);
    for (uint32_t* data : retired_) cudaFree(data);
  }

  cuda::TicketBuffer For(cudaStream_t stream, int64_t count) {
    if (count == 0) return {};
    std::lock_guard<std::mutex> lock(mutex_);
    cuda::TicketBuffer& tickets = by_stream_[stream];
    if (tickets.count >= count) return tickets;
    // Kernels in flight on this stream may still use the smaller buffer: it is freed with the kernel.
    if (tickets.data != nullptr) retired_.push_back(tickets.data);
    tickets = {};
    const int64_t size = std::max<int64_t>(count, kMinimumTickets);
    void* memory = nullptr;
    if (cudaMalloc(&memory, static_cast<size_t>(size) * sizeof(uint32_t)) != cudaSuccess) {
      cudaGetLastError();  // clear it: this call zeroes counters in its scratch instead
      return {};
    }
    auto* data = static_cast<uint32_t*>(memory);
    if (cudaMemsetAsync(data, 0, static_cast<size_t>(size) * sizeof(uint32_t), stream) != cudaSuccess) {
      cudaGetLastError();
      retired_.push_back(data);
      return {};
    }
    tickets = {data, size};
    return tickets;
  }

 private:
  // Enough for any decode shape (one per 256 columns of N), so a stream allocates once.
  static constexpr int64_t kMinimumTickets = 4096;
  std::mutex mutex_;
  std::unordered_map<cudaStream_t, cuda::TicketBuffer> by_stream_;
  std::vector<uint32_t*> retired_;
};

class Kernel {
 public:
  Kernel(const OrtKernelInfo* info, const TypedOp& op) : node_(info, op), selection_(ToCudaSelection(node_.rule())) {
    if (const OrtValue* b = op::NodeContract::ConstantB(info)) node_.CheckConstantB(b);
  }

  void Compute(OrtKernelContext* context) const {
    const op::ProductInputs in = node_.ReadInputs(context);
    OrtValue* y = nullptr;
    Check(Api(), Api().KernelContext_GetOutput(context, 0, in.y_dims.data(), in.y_dims.size(), &y));
    if (in.M == 0 || in.N == 0) return;
    void* y_data = nullptr;
    const void* a_data = nullptr;
    const void* b_data = nullptr;
    Check(Api(), Api().GetTensorMutableData(y, &y_data));
    Check(Api(), Api().GetTensorData(in.a, &a_data));
    Check(Api(), Api().GetTensorData(in.b, &b_data));
    void* stream_handle = nullptr;
    Check(Api(), Api().KernelContext_GetGPUComputeStream(context, &stream_handle));
    const auto stream = static_cast<cudaStream_t>(stream_handle);
    const cuda::ElementType type = ToCudaElementType(node_.op().element_type);

    if (in.K == 0) {  // an empty sum (threshold mode; top-k already rejected k > K)
      const size_t bytes = static_cast<size_t>(in.M * in.N) * cuda::ElementBytes(type);
      Raise(cuda::Status{cudaMemsetAsync(y_data, 0, bytes, stream), ""}, "zeroing the output");
      return;
    }

    const OrtMemoryInfo* memory = nullptr;
    Check(Api(), Api().GetTensorMemoryInfo(in.a, &memory));
    int device = 0;
    Check(Api(), Api().MemoryInfoGetId(memory, &device));

    const cuda::Problem problem{type, in.M, in.K, in.N, selection_};
    const bool aligned = (reinterpret_cast<uintptr_t>(b_data) | reinterpret_cast<uintptr_t>(y_data)) % 16 == 0;
    const cuda::Plan plan = cuda::PlanTopKSparseMatMul(problem, FactsFor(device), aligned);
    StreamScratch scratch(context, memory, plan.workspace_bytes);
    Raise(cuda::LaunchTopKSparseMatMul(problem, plan, a_data, b_data, y_data, scratch.data(), plan.workspace_bytes, stream,
                                       tickets_.For(stream, plan.ticket_count)));
  }

 private:
  // A failed launch as an ORT error naming the node: the core's message says which step failed; a bare CUDA
  // error gets `what` as that step.
  void Raise(const cuda::Status& status, const char* what = "") const {
    if (status.ok()) return;
    const std::string message = !status.message.empty() ? status.message
                                                        : std::string(what) + " failed: " + cudaGetErrorName(status.cuda) + " (" +
                                                              cudaGetErrorString(status.cuda) + ")";
    throw OrtError(ORT_FAIL, node_.Where() + ": CUDA " + message);
  }

  op::NodeContract node_;
  const cuda::Selection selection_;
  mutable StreamTickets tickets_;  // Compute is const and may run concurrently: StreamTickets locks
};

}  // namespace

const OrtCustomOp* const* TopKSparseMatMulOps(size_t* count) { return op::TypedOps<Kernel>("CUDAExecutionProvider", count); }

}  // namespace sparseonnx::cuda_op
