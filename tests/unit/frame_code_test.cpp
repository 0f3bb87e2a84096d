#include "matthan/camsim/frame_code.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <vector>

namespace matthan::camsim {
namespace {

TEST(FrameCode, RoundTripsOnLuma) {
  for (int h : {360, 720, 1080}) {
    const int w = h * 16 / 9;
    std::vector<std::uint8_t> plane(static_cast<std::size_t>(w) * h, 128);
    for (std::uint32_t index : {0u, 1u, 12345u, kFrameCodeMax}) {
      burn_frame_code(plane.data(), w, 1, w, h, index);
      EXPECT_EQ(read_frame_code(plane.data(), w, w, h), index) << h;
    }
  }
}

TEST(FrameCode, AbsentOrDamagedStripIsRejected) {
  const int w = 640, h = 360;
  std::vector<std::uint8_t> plane(static_cast<std::size_t>(w) * h, 128);
  EXPECT_FALSE(read_frame_code(plane.data(), w, w, h).has_value());
  burn_frame_code(plane.data(), w, 1, w, h, 777);
  // Flip one index bit's block: the check nibble must catch it.
  const int b = frame_code_block(h);
  for (int y = b; y < 2 * b; ++y) {
    for (int x = b + 10 * b; x < b + 11 * b; ++x) plane[y * w + x] = 255 - plane[y * w + x];
  }
  EXPECT_FALSE(read_frame_code(plane.data(), w, w, h).has_value());
}

TEST(FrameCode, SurvivesNoise) {
  const int w = 640, h = 360;
  std::vector<std::uint8_t> plane(static_cast<std::size_t>(w) * h, 90);
  burn_frame_code(plane.data(), w, 1, w, h, 4242);
  unsigned seed = 1;
  for (auto& p : plane) {
    seed = seed * 1103515245 + 12345;
    p = static_cast<std::uint8_t>(
        std::clamp(static_cast<int>(p) + static_cast<int>((seed >> 16) % 41) - 20, 0, 255));
  }
  EXPECT_EQ(read_frame_code(plane.data(), w, w, h), 4242u);
}

}  // namespace
}  // namespace matthan::camsim
