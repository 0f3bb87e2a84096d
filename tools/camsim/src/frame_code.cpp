#include "matthan/camsim/frame_code.hpp"

#include <algorithm>

namespace matthan::camsim {
namespace {
constexpr int kBits = 26;  // 2 sync + 20 index + 4 check

std::uint32_t check_nibble(std::uint32_t index) {
  std::uint32_t sum = 0;
  for (int i = 0; i < 5; ++i) sum += (index >> (4 * i)) & 0xF;
  return (~sum) & 0xF;
}

bool bit_at(std::uint32_t index, int i) {
  if (i == 0) return true;
  if (i == 1) return false;
  if (i < 22) return ((index >> (21 - i)) & 1) != 0;
  return ((check_nibble(index) >> (25 - i)) & 1) != 0;
}
}  // namespace

int frame_code_block(int height) {
  return std::max(4, height / 45);
}

void burn_frame_code(std::uint8_t* plane, int stride, int pixel_step, int width, int height,
                     std::uint32_t index) {
  const int b = frame_code_block(height);
  index &= kFrameCodeMax;
  for (int i = 0; i < kBits; ++i) {
    const std::uint8_t v = bit_at(index, i) ? 235 : 16;
    const int x0 = b + i * b;
    for (int y = b; y < 2 * b && y < height; ++y) {
      for (int x = x0; x < x0 + b && x < width; ++x) {
        std::uint8_t* p = plane + static_cast<std::ptrdiff_t>(y) * stride + x * pixel_step;
        for (int c = 0; c < pixel_step; ++c) p[c] = v;
      }
    }
  }
}

std::optional<std::uint32_t> read_frame_code(const std::uint8_t* luma, int stride, int width,
                                             int height) {
  const int b = frame_code_block(height);
  if ((kBits + 1) * b > width || 2 * b > height) return std::nullopt;
  int means[kBits];
  for (int i = 0; i < kBits; ++i) {
    const int cx = b + i * b + b / 4;
    const int cy = b + b / 4;
    int sum = 0;
    int n = 0;
    for (int y = cy; y < cy + b / 2; ++y) {
      for (int x = cx; x < cx + b / 2; ++x) {
        sum += luma[static_cast<std::ptrdiff_t>(y) * stride + x];
        ++n;
      }
    }
    means[i] = sum / n;
  }
  if (means[0] - means[1] < 80) return std::nullopt;  // no sync pair: no strip
  const int threshold = (means[0] + means[1]) / 2;
  std::uint32_t index = 0;
  for (int i = 2; i < 22; ++i) index = (index << 1) | (means[i] > threshold ? 1u : 0u);
  std::uint32_t check = 0;
  for (int i = 22; i < 26; ++i) check = (check << 1) | (means[i] > threshold ? 1u : 0u);
  if (check != check_nibble(index)) return std::nullopt;
  return index;
}

}  // namespace matthan::camsim
