// The detector's hand-vectorised pixel loops (analytics/src/pixel_ops) against plain references:
// the AVX2 versions (picked on this CPU when it has AVX2) must give exactly what the simple
// loops give, including the odd widths that leave a scalar tail.
#include <gtest/gtest.h>

#include <opencv2/imgproc.hpp>
#include <random>

#include "pixel_ops.hpp"

namespace matthan::analytics {
namespace {

TEST(PixelOps, HalfSizeIsOpenCvsTwoByTwoAreaAverage) {
  std::mt19937 rng(7);
  for (const auto size : {cv::Size(640, 360), cv::Size(643, 361), cv::Size(70, 34)}) {
    cv::Mat src(size, CV_8U);
    cv::randu(src, 0, 256);
    cv::Mat mine, theirs;
    half_size(src, mine);
    // An odd last row or column is left out (OpenCV would blend it in at a scale just off 2).
    const cv::Mat even = src(cv::Rect(0, 0, size.width & ~1, size.height & ~1));
    cv::resize(even, theirs, {size.width / 2, size.height / 2}, 0, 0, cv::INTER_AREA);
    ASSERT_EQ(mine.size(), theirs.size());
    EXPECT_EQ(cv::norm(mine, theirs, cv::NORM_INF), 0) << size;
  }
}

TEST(PixelOps, SteadyDifferenceMatchesThePlainLoop) {
  std::mt19937 rng(11);
  std::uniform_int_distribution<int> byte(0, 255), bg16(0, 65280), coin(0, 3);
  for (const int n : {320, 333, 80, 63, 33, 32, 31, 1}) {
    std::vector<std::uint8_t> src(n), reg(n), nrm(n), msk(n), b8(n);
    std::vector<std::uint16_t> bg(n);
    for (int i = 0; i < n; ++i) {
      src[i] = static_cast<std::uint8_t>(byte(rng));
      // Near the picture as often as not, so both sides of the thresholds are exercised.
      bg[i] = static_cast<std::uint16_t>(
          coin(rng) == 0 ? bg16(rng) : std::min(65280, src[i] * 256 + byte(rng) * 8));
      reg[i] = coin(rng) == 0 ? 0 : 255;
    }
    for (const int thr : {0, 9, 25, 255}) {
      for (const int ql : {1, 4, 30, 255}) {
        SCOPED_TRACE(testing::Message() << "n " << n << " thr " << thr << " quiet " << ql);
        const auto c =
            diff_steady(src.data(), bg.data(), reg.data(), nrm.data(), msk.data(), b8.data(), n,
                        static_cast<std::uint8_t>(thr), static_cast<std::uint8_t>(ql));
        long changed = 0, quiet_n = 0, quiet_sum = 0;
        for (int i = 0; i < n; ++i) {
          const int b = (bg[i] + 128) >> 8;
          const int d = std::abs(src[i] - b);
          const bool moved = d > thr && reg[i] != 0;
          ASSERT_EQ(b8[i], b) << i;
          ASSERT_EQ(msk[i], moved ? 255 : 0) << i;
          ASSERT_EQ(nrm[i], src[i]) << i;
          changed += moved ? 1 : 0;
          if (d < ql) {
            ++quiet_n;
            quiet_sum += d;
          }
        }
        EXPECT_EQ(c.changed, changed);
        EXPECT_EQ(c.quiet_n, quiet_n);
        EXPECT_EQ(c.quiet_sum, quiet_sum);
      }
    }
  }
}

}  // namespace
}  // namespace matthan::analytics
