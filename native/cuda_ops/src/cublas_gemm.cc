#include "cublas_gemm.h"

#if defined(_WIN32)
#define WIN32_LEAN_AND_MEAN
#include <windows.h>
#else
#include <dlfcn.h>
#endif

#include <climits>
#include <unordered_map>

#include <library_types.h>
#if __has_include(<cublas_v2.h>)
#include <cublas_v2.h>  // only to check the ABI constants below
#define SPARSEONNX_HAVE_CUBLAS_HEADER 1
#endif

namespace sparseonnx::cuda {
namespace {

// cuBLAS's C ABI, declared here so that building needs no cuBLAS headers. Every enum is an int; the values are
// cuBLAS's documented ones (cublas_api.h), checked against the header when it is present.
using CublasHandle = void*;
using CreateFunction = int (*)(CublasHandle*);
using SetStreamFunction = int (*)(CublasHandle, cudaStream_t);
using GemmExFunction = int (*)(CublasHandle, int transa, int transb, int m, int n, int k, const void* alpha, const void* a,
                               cudaDataType a_type, int lda, const void* b, cudaDataType b_type, int ldb, const void* beta,
                               void* c, cudaDataType c_type, int ldc, int compute_type, int algorithm);
constexpr int kCublasSuccess = 0;
constexpr int kCublasOpN = 0;
constexpr int kCublasCompute32F = 68;
constexpr int kCublasGemmDefault = -1;
#if defined(SPARSEONNX_HAVE_CUBLAS_HEADER)
static_assert(kCublasSuccess == CUBLAS_STATUS_SUCCESS && kCublasOpN == CUBLAS_OP_N &&
              kCublasCompute32F == CUBLAS_COMPUTE_32F && kCublasGemmDefault == CUBLAS_GEMM_DEFAULT);
#endif

struct Cublas {
  CreateFunction create = nullptr;
  SetStreamFunction set_stream = nullptr;
  GemmExFunction gemm_ex = nullptr;
  std::string failure;  // why it could not be loaded, or empty
};

// The platform's shared-library calls: the cuBLAS already in the process (the one ORT's CUDA provider loaded) if
// any, else the newest installed; never unloaded, since handles made from it live until the process ends.
#if defined(_WIN32)
constexpr const char* kCublasNames[] = {"cublas64_13.dll", "cublas64_12.dll", "cublas64_11.dll"};
void* FindLoaded(const char* name) { return reinterpret_cast<void*>(GetModuleHandleA(name)); }
void* LoadLibraryNamed(const char* name) { return reinterpret_cast<void*>(LoadLibraryA(name)); }
void* Symbol(void* library, const char* name) { return reinterpret_cast<void*>(GetProcAddress(static_cast<HMODULE>(library), name)); }
#else
constexpr const char* kCublasNames[] = {"libcublas.so.13", "libcublas.so.12", "libcublas.so.11", "libcublas.so"};
void* FindLoaded(const char* name) { return dlopen(name, RTLD_NOW | RTLD_NOLOAD); }
void* LoadLibraryNamed(const char* name) { return dlopen(name, RTLD_NOW | RTLD_LOCAL); }
void* Symbol(void* library, const char* name) { return dlsym(library, name); }
#endif

const Cublas& LoadCublas() {
  static const Cublas cublas = [] {
    Cublas loaded;
    void* library = nullptr;
    for (const char* name : kCublasNames)
      if ((library = FindLoaded(name)) != nullptr) break;
    if (library == nullptr)
      for (const char* name : kCublasNames)
        if ((library = LoadLibraryNamed(name)) != nullptr) break;
    if (library == nullptr) {
      loaded.failure = std::string("cuBLAS could not be loaded (tried ") + kCublasNames[0] + ", " + kCublasNames[1] + ", " +
                       kCublasNames[2] + ")";
      return loaded;
    }
    loaded.create = reinterpret_cast<CreateFunction>(Symbol(library, "cublasCreate_v2"));
    loaded.set_stream = reinterpret_cast<SetStreamFunction>(Symbol(library, "cublasSetStream_v2"));
    loaded.gemm_ex = reinterpret_cast<GemmExFunction>(Symbol(library, "cublasGemmEx"));
    if (!loaded.create || !loaded.set_stream || !loaded.gemm_ex) loaded.failure = "the loaded cuBLAS lacks cublasGemmEx";
    return loaded;
  }();
  return cublas;
}

// One handle per thread and device: a handle must not be used by two threads at once, and it is bound to
// the device current when it was made. Handles are kept for the life of the thread and not destroyed at its
// exit (cuBLAS may already be unloading then); ORT's own CUDA provider keeps handles the same way.
Status HandleFor(const Cublas& cublas, CublasHandle* handle) {
  thread_local std::unordered_map<int, CublasHandle> handles;
  int device = 0;
  if (cudaError_t error = cudaGetDevice(&device); error != cudaSuccess)
    return {error, std::string("cudaGetDevice failed: ") + cudaGetErrorString(error)};
  auto found = handles.find(device);
  if (found == handles.end()) {
    CublasHandle created = nullptr;
    if (int status = cublas.create(&created); status != kCublasSuccess)
      return {cudaErrorUnknown, "cublasCreate failed with status " + std::to_string(status)};
    found = handles.emplace(device, created).first;
  }
  *handle = found->second;
  return Status::Ok();
}

cudaDataType DataType(ElementType type) {
  switch (type) {
    case ElementType::kFloat32: return CUDA_R_32F;
    case ElementType::kFloat16: return CUDA_R_16F;
    case ElementType::kBFloat16: return CUDA_R_16BF;
  }
  return CUDA_R_32F;
}

}  // namespace

bool CublasAvailable(std::string* why) {
  const Cublas& cublas = LoadCublas();
  if (why) *why = cublas.failure;
  return cublas.failure.empty();
}

Status RowMajorGemm(ElementType type, int64_t m, int64_t n, int64_t k, const void* a, const void* b, void* y, cudaStream_t stream) {
  const Cublas& cublas = LoadCublas();
  if (!cublas.failure.empty()) return {cudaErrorUnknown, cublas.failure};
  if (m > INT_MAX || n > INT_MAX || k > INT_MAX)
    return {cudaErrorInvalidValue, "the masked dense product's dimensions exceed cuBLAS's 32-bit sizes"};
  if (m == 0 || n == 0) return Status::Ok();
  CublasHandle handle = nullptr;
  if (Status status = HandleFor(cublas, &handle); !status.ok()) return status;
  if (int status = cublas.set_stream(handle, stream); status != kCublasSuccess)
    return {cudaErrorUnknown, "cublasSetStream failed with status " + std::to_string(status)};
  // cuBLAS is column-major: row-major Y = A · B is column-major Yᵀ = Bᵀ · Aᵀ, where Bᵀ is B's memory read
  // column-major with leading dimension n, and Aᵀ is A's with leading dimension k.
  const float alpha = 1.f, beta = 0.f;
  const cudaDataType data_type = DataType(type);
  const int status = cublas.gemm_ex(handle, kCublasOpN, kCublasOpN, static_cast<int>(n), static_cast<int>(m), static_cast<int>(k),
                                    &alpha, b, data_type, static_cast<int>(n), a, data_type, static_cast<int>(k), &beta, y,
                                    data_type, static_cast<int>(n), kCublasCompute32F, kCublasGemmDefault);
  if (status != kCublasSuccess) return {cudaErrorUnknown, "cublasGemmEx failed with status " + std::to_string(status)};
  return Status::Ok();
}

}  // namespace sparseonnx::cuda
