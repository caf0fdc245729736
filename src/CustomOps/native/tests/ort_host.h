// The ONNX Runtime environment the native host tests share (one per process).
#pragma once

#include "onnxruntime_cxx_api.h"

namespace sparseonnx::test {

inline Ort::Env& Environment() {
  static Ort::Env env(ORT_LOGGING_LEVEL_WARNING, "sparseonnx-host-test");
  return env;
}

}  // namespace sparseonnx::test
