// Skipping GPU tests where there is no GPU, without letting a GPU machine pass them as skipped.
#pragma once

#include <gtest/gtest.h>

#include <cstdlib>
#include <string>

namespace sparseonnx::test {

// SPARSEONNX_REQUIRE_GPU set (native/cuda_ops/gpu/check.sh sets it on the GPU machine): what is missing must fail.
inline bool RequireGpu() {
  const char* value = std::getenv("SPARSEONNX_REQUIRE_GPU");
  return value != nullptr && *value != '\0';
}

}  // namespace sparseonnx::test

// Skips the test when `reason_expression` (evaluated once per test) says why it cannot run, or fails it
// when RequireGpu().
#define SPARSEONNX_SKIP_IF_UNAVAILABLE(reason_expression)                  \
  do {                                                                     \
    static const std::string reason_ = (reason_expression);                \
    if (!reason_.empty()) {                                                \
      if (::sparseonnx::test::RequireGpu()) FAIL() << reason_;             \
      GTEST_SKIP() << reason_;                                             \
    }                                                                      \
  } while (0)
