#include "reference.h"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <numeric>
#include <stdexcept>
#include <thread>

#include "element_convert.h"

namespace sparseonnx::test {

std::vector<float> ToFloats(const void* data, ElementType type, size_t count) {
  std::vector<float> out(count);
  for (size_t i = 0; i < count; ++i) {
    switch (type) {
      case ElementType::kFloat32:
        out[i] = static_cast<const float*>(data)[i];
        break;
      case ElementType::kFloat16:
        out[i] = detail::Float16ToFloat(static_cast<const uint16_t*>(data)[i]);
        break;
      case ElementType::kBFloat16:
        out[i] = detail::BFloat16ToFloat(static_cast<const uint16_t*>(data)[i]);
        break;
    }
  }
  return out;
}

std::vector<bool> ReferenceMask(const std::vector<float>& row, const SelectionRule& rule) {
  const size_t K = row.size();
  std::vector<bool> keep(K, false);
  if (rule.mode == SelectionRule::Mode::kThreshold) {
    for (size_t i = 0; i < K; ++i) keep[i] = std::isnan(row[i]) || std::fabs(row[i]) > rule.threshold;
    return keep;
  }
  std::vector<size_t> order(K);
  std::iota(order.begin(), order.end(), 0);
  auto rank_above = [&](size_t a, size_t b) {  // true when a ranks strictly above b
    const float x = row[a], y = row[b];
    if (std::isnan(x) != std::isnan(y)) return std::isnan(x);
    if (!std::isnan(x) && std::fabs(x) != std::fabs(y)) return std::fabs(x) > std::fabs(y);
    return a < b;  // equal magnitude (or both NaN): the lower index wins
  };
  std::sort(order.begin(), order.end(), rank_above);
  for (int64_t j = 0; j < rule.k && j < static_cast<int64_t>(K); ++j) keep[order[j]] = true;
  return keep;
}

std::vector<double> ReferenceProduct(const std::vector<float>& A, const std::vector<float>& B, int64_t M, int64_t K,
                                     int64_t N, const SelectionRule& rule) {
  std::vector<double> Y(static_cast<size_t>(M * N), 0.0);
  for (int64_t m = 0; m < M; ++m) {
    std::vector<float> row(A.begin() + m * K, A.begin() + (m + 1) * K);
    auto keep = ReferenceMask(row, rule);
    for (int64_t i = 0; i < K; ++i)
      if (keep[i])
        for (int64_t n = 0; n < N; ++n) Y[m * N + n] += static_cast<double>(row[i]) * static_cast<double>(B[i * N + n]);
  }
  return Y;
}

std::vector<double> ErrorBound(const std::vector<float>& A, const std::vector<float>& B, int64_t M, int64_t K,
                               int64_t N, const SelectionRule& rule) {
  std::vector<double> bound(static_cast<size_t>(M * N), 0.0);
  const double gamma = 2.0 * static_cast<double>(K + 2) * std::ldexp(1.0, -24);
  for (int64_t m = 0; m < M; ++m) {
    std::vector<float> row(A.begin() + m * K, A.begin() + (m + 1) * K);
    auto keep = ReferenceMask(row, rule);
    for (int64_t i = 0; i < K; ++i)
      if (keep[i])
        for (int64_t n = 0; n < N; ++n) bound[m * N + n] += std::fabs(static_cast<double>(row[i]) * B[i * N + n]);
  }
  for (auto& b : bound) b = b * gamma + 1e-30;
  return bound;
}

GuardedBuffer::GuardedBuffer(size_t bytes) : bytes_(bytes) {
  const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  const size_t data_pages = (bytes + page - 1) / page;
  mapping_bytes_ = (data_pages + 1) * page;
  mapping_ = mmap(nullptr, mapping_bytes_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (mapping_ == MAP_FAILED) throw std::runtime_error("mmap failed");
  auto* guard = static_cast<unsigned char*>(mapping_) + data_pages * page;
  if (mprotect(guard, page, PROT_NONE) != 0) throw std::runtime_error("mprotect failed");
  data_ = guard - bytes;  // the last byte of data sits right before the guard page
}

GuardedBuffer::~GuardedBuffer() { munmap(mapping_, mapping_bytes_); }

ParallelFor SerialFor() {
  return [](size_t count, const std::function<void(size_t)>& body) {
    for (size_t i = 0; i < count; ++i) body(i);
  };
}

ParallelFor ThreadedFor(int threads) {
  return [threads](size_t count, const std::function<void(size_t)>& body) {
    std::atomic<size_t> next{0};
    std::vector<std::thread> pool;
    for (int t = 0; t < threads; ++t)
      pool.emplace_back([&] {
        for (size_t i = next++; i < count; i = next++) body(i);
      });
    for (auto& thread : pool) thread.join();
  };
}

}  // namespace sparseonnx::test
