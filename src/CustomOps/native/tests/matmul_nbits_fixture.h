// A MatMulNBits weight (ONNX Runtime's contrib op layout) and the same weight in TopKSparseMatMulNBits'
// row layout, converted here independently of the C# rewriter, for the host tests and the benchmark that
// put the two ops side by side in one ONNX Runtime process.
#pragma once

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "onnx_writer.h"

namespace sparseonnx::test {

constexpr int kOnnxUint8 = 2;

struct NBitsWeight {
  int bits = 4;
  int64_t K = 0, N = 0, block_size = 32;
  bool zero_points = false;
  bool float16_row_scales = false;  // the row layout's scales as float16 (the values are float16 numbers in both)
  // MatMulNBits: B [N, blocks, block_size * bits / 8], scales [N * blocks], zero points packed uint8
  // [N * ceil(blocks * bits / 8)] (absent when !zero_points).
  std::string b, zp;
  std::vector<float> scales;
  // TopKSparseMatMulNBits: codes [K, row_bytes], scales and zero points [blocks, padded N] as float.
  std::string row_codes;
  std::vector<float> row_scales, row_zero_points;

  int64_t Blocks() const { return (K + block_size - 1) / block_size; }
  int Code(int64_t n, int64_t k) const;       // from the MatMulNBits blob
  int ZeroPoint(int64_t n, int64_t block) const;
};

// Random codes, scales in [0.005, 0.05), zero points if asked; then the row layout derived from them.
NBitsWeight RandomNBitsWeight(int bits, int64_t K, int64_t N, int64_t block_size, bool zero_points, std::mt19937& random,
                              bool float16_row_scales = false);

// The MatMulNBits node's initializers (named with `suffix`) and the node reading A.
void AddMatMulNBits(const NBitsWeight& w, int accuracy_level, const std::string& suffix, std::vector<OnnxNode>& nodes,
                    std::vector<OnnxInitializer>& initializers);
// The TopKSparseMatMulNBits node (attributes: k when k > 0, else threshold).
void AddSparseNBits(const NBitsWeight& w, int accuracy_level, int64_t k, float threshold, const std::string& suffix,
                    std::vector<OnnxNode>& nodes, std::vector<OnnxInitializer>& initializers);

}  // namespace sparseonnx::test
