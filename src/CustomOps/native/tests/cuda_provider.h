// ONNX Runtime's CUDA execution provider for the native host tests and the CUDA bench.
#pragma once

#include <cstdlib>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "onnxruntime_cxx_api.h"

namespace sparseonnx::test {

// The CUDA provider library: $SPARSEONNX_ORT_CUDA_PROVIDER, else libonnxruntime_providers_cuda.so next to the
// runtime the binary was linked against (SPARSEONNX_ORT_LIBRARY_DIR).
inline std::string CudaProviderLibrary() {
  if (const char* path = std::getenv("SPARSEONNX_ORT_CUDA_PROVIDER"); path && *path) return path;
#if defined(SPARSEONNX_ORT_LIBRARY_DIR)
  return std::string(SPARSEONNX_ORT_LIBRARY_DIR) + "/libonnxruntime_providers_cuda.so";
#else
  return "libonnxruntime_providers_cuda.so";
#endif
}

// Appends the CUDA provider (device 0) to `options`: the classic way when the runtime was built with CUDA, else
// by registering the provider library as a plugin (ORT ≥ 1.22; how the npm 1.29 runtime ships it: a CPU
// libonnxruntime.so plus libonnxruntime_providers_cuda.so). Throws Ort::Exception saying why it cannot.
// `provider_options` are the CUDA provider's (e.g. {"use_tf32", "0"}).
inline void AppendCudaProvider(Ort::Env& env, Ort::SessionOptions& options,
                               const std::unordered_map<std::string, std::string>& provider_options = {}) {
  const OrtApi& api = Ort::GetApi();
  OrtCUDAProviderOptionsV2* cuda = nullptr;
  if (OrtStatus* status = api.CreateCUDAProviderOptions(&cuda); status == nullptr) {
    std::vector<const char*> keys, values;
    for (const auto& [key, value] : provider_options) {
      keys.push_back(key.c_str());
      values.push_back(value.c_str());
    }
    OrtStatus* appended = api.UpdateCUDAProviderOptions(cuda, keys.data(), values.data(), keys.size());
    if (appended == nullptr) appended = api.SessionOptionsAppendExecutionProvider_CUDA_V2(options, cuda);
    api.ReleaseCUDAProviderOptions(cuda);
    Ort::ThrowOnError(appended);
    return;
  } else {
    api.ReleaseStatus(status);  // a runtime without built-in CUDA: try the plugin
  }
  static std::once_flag once;
  static std::string failure;
  std::call_once(once, [&] {
    try {
      env.RegisterExecutionProviderLibrary("CUDA", CudaProviderLibrary());
    } catch (const Ort::Exception& e) {
      failure = std::string("cannot load the CUDA provider ") + CudaProviderLibrary() + ": " + e.what();
    }
  });
  if (!failure.empty()) throw Ort::Exception(std::string(failure), ORT_FAIL);
  std::vector<Ort::ConstEpDevice> devices;
  std::string offered;
  for (const auto& device : env.GetEpDevices()) {
    offered += std::string(offered.empty() ? "" : ", ") + device.EpName();
    if (std::string(device.EpName()) == "CUDAExecutionProvider" && devices.empty()) devices.push_back(device);
  }
  if (devices.empty()) throw Ort::Exception("the CUDA provider offers no device (execution providers: " + offered + ")", ORT_FAIL);
  options.AppendExecutionProvider_V2(env, devices, provider_options);
}

}  // namespace sparseonnx::test
