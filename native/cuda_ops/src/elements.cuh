// Device-side element conversions shared by the kernels: float32 is the arithmetic type, T the storage type.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "row_selection.h"

namespace sparseonnx::cuda {

__device__ __forceinline__ float ToFloat(float x) { return x; }
__device__ __forceinline__ float ToFloat(__half x) { return __half2float(x); }
__device__ __forceinline__ float ToFloat(__nv_bfloat16 x) { return __bfloat162float(x); }

template <typename T>
__device__ __forceinline__ T FromFloat(float x);
template <>
__device__ __forceinline__ float FromFloat<float>(float x) { return x; }
template <>
__device__ __forceinline__ __half FromFloat<__half>(float x) { return __float2half_rn(x); }
template <>
__device__ __forceinline__ __nv_bfloat16 FromFloat<__nv_bfloat16>(float x) { return __float2bfloat16_rn(x); }

// The magnitude key of an element (RowSelection): float16 and bfloat16 convert to float32 exactly, so the key
// orders them exactly as their values.
template <typename T>
__device__ __forceinline__ uint32_t MagnitudeKey(T x) { return MagnitudeKeyOfBits(__float_as_uint(ToFloat(x))); }

// Runs body<T>() for the storage type of `type`.
#define SPARSEONNX_DISPATCH_ELEMENT(type, ...)                  \
  switch (type) {                                               \
    case ElementType::kFloat32: {                               \
      using T = float;                                          \
      return __VA_ARGS__;                                       \
    }                                                           \
    case ElementType::kFloat16: {                               \
      using T = __half;                                         \
      return __VA_ARGS__;                                       \
    }                                                           \
    case ElementType::kBFloat16: {                              \
      using T = __nv_bfloat16;                                  \
      return __VA_ARGS__;                                       \
    }                                                           \
  }                                                             \
  return cudaErrorInvalidValue

}  // namespace sparseonnx::cuda
