// Small helpers around ONNX Runtime's C API for the custom op: errors become OrtStatus at the boundary,
// never exceptions crossing into ORT.
#pragma once

#include <exception>
#include <stdexcept>
#include <string>

#include "onnxruntime_c_api.h"

namespace sparseonnx::op {

// An error with the ORT error code it should be reported as.
class OrtError : public std::runtime_error {
 public:
  OrtError(OrtErrorCode code, const std::string& message) : std::runtime_error(message), code_(code) {}
  OrtErrorCode code() const { return code_; }

 private:
  OrtErrorCode code_;
};

// Throws OrtError for a non-null status (releasing it).
inline void Check(const OrtApi& api, OrtStatus* status) {
  if (status == nullptr) return;
  std::string message = api.GetErrorMessage(status);
  OrtErrorCode code = api.GetErrorCode(status);
  api.ReleaseStatus(status);
  throw OrtError(code, message);
}

// Runs body and converts anything it throws into an OrtStatus: the only way errors leave the library.
template <typename Body>
OrtStatus* Guard(const OrtApi& api, Body&& body) noexcept {
  try {
    body();
    return nullptr;
  } catch (const OrtError& e) {
    return api.CreateStatus(e.code(), e.what());
  } catch (const std::bad_alloc&) {
    return api.CreateStatus(ORT_FAIL, "TopKSparseMatMul: out of memory");
  } catch (const std::exception& e) {
    return api.CreateStatus(ORT_FAIL, e.what());
  } catch (...) {
    return api.CreateStatus(ORT_FAIL, "TopKSparseMatMul: unknown error");
  }
}

}  // namespace sparseonnx::op
