#include "matmul_nbits_fixture.h"

#include <cstring>

#include "element_convert.h"

namespace sparseonnx::test {
namespace {

std::string Bytes(const std::vector<float>& v) { return std::string(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(float)); }

}  // namespace

int NBitsWeight::Code(int64_t n, int64_t k) const {
  const int64_t blob = block_size * bits / 8;
  const auto byte = static_cast<uint8_t>(b[static_cast<size_t>((n * Blocks() + k / block_size) * blob + (k % block_size) * bits / 8)]);
  if (bits == 8) return byte;
  return k % 2 == 0 ? byte & 0x0F : byte >> 4;
}

int NBitsWeight::ZeroPoint(int64_t n, int64_t block) const {
  if (!zero_points) return 1 << (bits - 1);
  const int64_t per_column = (Blocks() * bits + 7) / 8;
  const auto byte = static_cast<uint8_t>(zp[static_cast<size_t>(n * per_column + block * bits / 8)]);
  if (bits == 8) return byte;
  return block % 2 == 0 ? byte & 0x0F : byte >> 4;
}

NBitsWeight RandomNBitsWeight(int bits, int64_t K, int64_t N, int64_t block_size, bool zero_points, std::mt19937& random,
                              bool float16_row_scales) {
  NBitsWeight w;
  w.bits = bits;
  w.K = K;
  w.N = N;
  w.block_size = block_size;
  w.zero_points = zero_points;
  w.float16_row_scales = float16_row_scales;
  std::uniform_int_distribution<int> byte(0, 255);
  std::uniform_real_distribution<float> scale(0.005f, 0.05f);
  const int64_t blocks = w.Blocks(), blob = block_size * bits / 8;
  w.b.resize(static_cast<size_t>(N * blocks * blob));
  for (auto& c : w.b) c = static_cast<char>(byte(random));
  w.scales.resize(static_cast<size_t>(N * blocks));
  for (auto& s : w.scales) s = float16_row_scales ? detail::Float16ToFloat(detail::FloatToFloat16(scale(random))) : scale(random);
  if (zero_points) {
    w.zp.resize(static_cast<size_t>(N * ((blocks * bits + 7) / 8)));
    for (auto& c : w.zp) c = static_cast<char>(byte(random));
  }
  // The row layout (quantized_rows.h): codes by input row, 64-column chunks, 4-bit groups 1 and 2 swapped.
  const int64_t padded = (N + 63) / 64 * 64, row_bytes = padded * bits / 8;
  w.row_codes.assign(static_cast<size_t>(K * row_bytes), '\0');
  for (int64_t k = 0; k < K; ++k)
    for (int64_t n = 0; n < N; ++n) {
      const int q = w.Code(n, k);
      char* row = &w.row_codes[static_cast<size_t>(k * row_bytes)];
      const int64_t chunk = n / 64, j = n % 64;
      if (bits == 8) {
        row[chunk * 64 + j] = static_cast<char>(q);
      } else {
        const int64_t within = j % 32, group = within / 8;
        const int64_t at = chunk * 32 + (group == 1 ? 2 : group == 2 ? 1 : group) * 8 + within % 8;
        row[at] = static_cast<char>(static_cast<uint8_t>(row[at]) | (j < 32 ? q : q << 4));
      }
    }
  w.row_scales.assign(static_cast<size_t>(blocks * padded), 0.f);
  if (zero_points) w.row_zero_points.assign(w.row_scales.size(), 0.f);
  for (int64_t blk = 0; blk < blocks; ++blk)
    for (int64_t n = 0; n < N; ++n) {
      w.row_scales[static_cast<size_t>(blk * padded + n)] = w.scales[static_cast<size_t>(n * blocks + blk)];
      if (zero_points) w.row_zero_points[static_cast<size_t>(blk * padded + n)] = static_cast<float>(w.ZeroPoint(n, blk));
    }
  return w;
}

void AddMatMulNBits(const NBitsWeight& w, int accuracy_level, const std::string& suffix, std::vector<OnnxNode>& nodes,
                    std::vector<OnnxInitializer>& initializers) {
  const int64_t blocks = w.Blocks();
  initializers.push_back({"B" + suffix, kOnnxUint8, {w.N, blocks, w.block_size * w.bits / 8}, w.b});
  initializers.push_back({"scales" + suffix, kOnnxFloat, {w.N * blocks}, Bytes(w.scales)});
  std::vector<std::string> inputs = {"A", "B" + suffix, "scales" + suffix};
  if (w.zero_points) {
    initializers.push_back({"zp" + suffix, kOnnxUint8, {static_cast<int64_t>(w.zp.size())}, w.zp});
    inputs.push_back("zp" + suffix);
  }
  nodes.push_back({"MatMulNBits", "com.microsoft", inputs, {"Y" + suffix},
                   {{"K", true, w.K, 0.f}, {"N", true, w.N, 0.f}, {"bits", true, w.bits, 0.f}, {"block_size", true, w.block_size, 0.f},
                    {"accuracy_level", true, accuracy_level, 0.f}}});
}

void AddSparseNBits(const NBitsWeight& w, int accuracy_level, int64_t k, float threshold, const std::string& suffix,
                    std::vector<OnnxNode>& nodes, std::vector<OnnxInitializer>& initializers) {
  const int64_t padded = (w.N + 63) / 64 * 64;
  initializers.push_back({"codes" + suffix, kOnnxUint8, {w.K, padded * w.bits / 8}, w.row_codes});
  if (w.float16_row_scales) {
    std::string half(w.row_scales.size() * 2, '\0');
    for (size_t i = 0; i < w.row_scales.size(); ++i) {
      const uint16_t h = detail::FloatToFloat16(w.row_scales[i]);
      std::memcpy(&half[i * 2], &h, 2);
    }
    initializers.push_back({"row_scales" + suffix, kOnnxFloat16, {w.Blocks(), padded}, half});
  } else {
    initializers.push_back({"row_scales" + suffix, kOnnxFloat, {w.Blocks(), padded}, Bytes(w.row_scales)});
  }
  std::vector<std::string> inputs = {"A", "codes" + suffix, "row_scales" + suffix};
  if (w.zero_points) {
    initializers.push_back({"row_zp" + suffix, kOnnxFloat, {w.Blocks(), padded}, Bytes(w.row_zero_points)});
    inputs.push_back("row_zp" + suffix);
  }
  std::vector<OnnxAttribute> attributes = {{"K", true, w.K, 0.f}, {"N", true, w.N, 0.f}, {"bits", true, w.bits, 0.f},
                                           {"block_size", true, w.block_size, 0.f}, {"accuracy_level", true, accuracy_level, 0.f}};
  attributes.push_back(k > 0 ? OnnxAttribute{"k", true, k, 0.f} : OnnxAttribute{"threshold", false, 0, threshold});
  nodes.push_back({"TopKSparseMatMulNBits", "ai.sparseonnx", inputs, {"Y" + suffix}, attributes});
}

}  // namespace sparseonnx::test
