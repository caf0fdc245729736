// The SparseOnnx custom-op library's single exported symbol. ONNX Runtime hosts load it with
//   C#:     sessionOptions.RegisterSparseOnnxOps()            (SparseOnnx.CustomOps)
//   Python: session_options.register_custom_ops_library(path)
//   C++:    session_options.RegisterCustomOpsLibrary(path)
// and ORT calls RegisterCustomOps, which adds the ai.sparseonnx domain to the session options: the CPU ops
// (TopKSparseMatMul, TopKSparseMatMulNBits), and the CUDA TopKSparseMatMul when the library was built with CUDA (SPARSEONNX_WITH_CUDA). ORT gives a node to the CUDA
// variant in sessions with the CUDA execution provider, to the CPU one otherwise.
#include <mutex>
#include <string>

#include "common/op_common.h"
#include "cpu/topk_sparse_matmul_nbits_op.h"
#include "cpu/topk_sparse_matmul_op.h"
#include "onnxruntime_c_api.h"
#if defined(SPARSEONNX_WITH_CUDA)
#include "cuda/topk_sparse_matmul_cuda_op.h"
#endif

#if defined(_WIN32)
#define SPARSEONNX_EXPORT __declspec(dllexport)
#else
#define SPARSEONNX_EXPORT __attribute__((visibility("default")))
#endif

namespace {

constexpr const char* kDomain = "ai.sparseonnx";

// One domain for the life of the process, shared by every session options object. ORT keeps pointers to
// it in sessions, so it is never released (releasing it while a session might still use it would crash).
OrtCustomOpDomain* SharedDomain(const OrtApi& api) {
  static std::once_flag once;
  static OrtCustomOpDomain* domain = nullptr;
  static OrtStatus* failure = nullptr;
  std::call_once(once, [&] {
    failure = sparseonnx::op::Guard(api, [&] {
      sparseonnx::op::Check(api, api.CreateCustomOpDomain(kDomain, &domain));
      auto add = [&](const OrtCustomOp* const* ops, size_t count) {
        for (size_t i = 0; i < count; ++i)
          sparseonnx::op::Check(api, api.CustomOpDomain_Add(domain, const_cast<OrtCustomOp*>(ops[i])));
      };
      size_t count = 0;
      const OrtCustomOp* const* cpu_ops = sparseonnx::cpu::TopKSparseMatMulOps(&count);
      add(cpu_ops, count);
      const OrtCustomOp* nbits = sparseonnx::cpu::TopKSparseMatMulNBitsOp();
      add(&nbits, 1);
#if defined(SPARSEONNX_WITH_CUDA)
      const OrtCustomOp* const* cuda_ops = sparseonnx::cuda_op::TopKSparseMatMulOps(&count);
      add(cuda_ops, count);
#endif
    });
  });
  if (failure) throw sparseonnx::op::OrtError(api.GetErrorCode(failure), api.GetErrorMessage(failure));
  return domain;
}

}  // namespace

extern "C" SPARSEONNX_EXPORT OrtStatus* ORT_API_CALL RegisterCustomOps(OrtSessionOptions* options,
                                                                     const OrtApiBase* api_base) {
  if (api_base == nullptr) return nullptr;
  const OrtApi* api = api_base->GetApi(ORT_API_VERSION);
  if (api == nullptr) {
    // An older runtime: report it through the oldest API, which every version provides.
    const OrtApi* oldest = api_base->GetApi(1);
    const std::string message = std::string("The SparseOnnx op library needs ONNX Runtime API version ") +
                                std::to_string(ORT_API_VERSION) + " or newer; this runtime is " +
                                api_base->GetVersionString() + ".";
    return oldest ? oldest->CreateStatus(ORT_FAIL, message.c_str()) : nullptr;
  }
  return sparseonnx::op::Guard(*api, [&] {
    sparseonnx::op::SetApi(api);
    sparseonnx::op::Check(*api, api->AddCustomOpDomain(options, SharedDomain(*api)));
  });
}
