#include "matthan/core/ts_smoother.hpp"

#include <gtest/gtest.h>

#include <cstdlib>
#include <random>

#include "matthan/core/clock.hpp"

namespace matthan {
namespace {

TEST(TimestampSmoother, JitteryArrivalsGiveExactSpacing) {
  FakeClock clock;
  TimestampSmoother s;
  std::mt19937 rng(3);
  std::uniform_int_distribution<int> jitter(0, 30'000);  // up to 30 ms of network delay
  std::int64_t first = 0;
  std::int64_t prev = 0;
  for (int i = 0; i < 500; ++i) {
    const std::int64_t pts = 90'000 + i * 40'000;  // 25 fps, arbitrary origin
    const auto out = s.update(pts, clock.now_us() + jitter(rng));
    if (i == 0) first = out.wall_us;
    if (i > 50) {
      // Spacing is the media spacing, not the network's: within 2 ms of 40 ms, where raw
      // arrivals wander by up to 30 ms.
      EXPECT_NEAR(static_cast<double>(out.wall_us - prev), 40'000.0, 2'000.0) << i;
    }
    EXPECT_GE(out.wall_us, prev);
    prev = out.wall_us;
    clock.advance_us(40'000);
  }
  EXPECT_EQ(s.jumps(), 0);
  // No drift: the result stays within the jitter of the true capture time.
  EXPECT_LE(std::llabs(prev - (first + 499 * 40'000)), 30'000);
}

TEST(TimestampSmoother, PtsJumpReanchorsAndIsCounted) {
  FakeClock clock;
  TimestampSmoother s;
  std::int64_t pts = 0;
  for (int i = 0; i < 10; ++i) {
    s.update(pts, clock.now_us());
    pts += 40'000;
    clock.advance_us(40'000);
  }
  // Camera reboots: PTS restarts near zero (a wrap or reset).
  const auto out = s.update(5'000, clock.now_us());
  EXPECT_TRUE(out.reanchored);
  EXPECT_EQ(s.jumps(), 1);
  EXPECT_EQ(out.wall_us, clock.now_us());
  clock.advance_us(40'000);
  const auto next = s.update(45'000, clock.now_us());
  EXPECT_EQ(next.wall_us, out.wall_us + 40'000);
}

TEST(TimestampSmoother, NeverGoesBackwards) {
  FakeClock clock;
  TimestampSmoother s;
  auto a = s.update(1'000'000, clock.now_us() + 20'000);  // delayed first packet
  clock.advance_us(40'000);
  auto b = s.update(1'040'000, clock.now_us());  // on time: anchor moves earlier
  EXPECT_GT(b.wall_us, a.wall_us);
}

TEST(TimestampSmoother, FollowsSlowCameraClockWithinLimit) {
  FakeClock clock;
  TimestampSmoother s(1'000'000, 2'000);
  std::int64_t pts = 0;
  std::int64_t out = 0;
  // The camera's clock runs 0.1 % slow: after 100 s arrivals are 100 ms late against PTS.
  for (int i = 0; i <= 2500; ++i) {
    out = s.update(pts, clock.now_us()).wall_us;
    pts += 40'000;
    clock.advance_us(40'040);
  }
  EXPECT_EQ(s.jumps(), 0);
  EXPECT_NEAR(static_cast<double>(clock.now_us() - 40'040 - out), 0.0, 5'000.0);
}

}  // namespace
}  // namespace matthan
