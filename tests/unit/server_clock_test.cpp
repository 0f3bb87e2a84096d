// Server time against a system clock that is stepped (FakeClock: a fault no real part can give
// a unit test): it never runs backwards, follows forward steps at once, absorbs backward steps
// by running 5 % slow, and counts every step.
#include <gtest/gtest.h>

#include "matthan/core/clock.hpp"

namespace matthan {
namespace {

constexpr std::int64_t kSecond = 1'000'000;

TEST(ServerClock, FollowsTheSystemClockWhileNothingSteps) {
  FakeClock sys;
  ServerClock clock(sys);
  const std::int64_t t0 = clock.now_us();
  EXPECT_EQ(t0, sys.now_us());
  sys.advance_us(250'000);
  EXPECT_EQ(clock.now_us(), sys.now_us());
  sys.step_wall_us(300'000);  // NTP nudges below the threshold: followed, not a step
  EXPECT_EQ(clock.now_us(), sys.now_us());
  EXPECT_EQ(clock.steps().count, 0u);
}

TEST(ServerClock, AStepBackIsAbsorbedWithoutEverGoingBackwards) {
  FakeClock sys;
  ServerClock clock(sys);
  sys.advance_us(10 * kSecond);
  const std::int64_t before = clock.now_us();
  sys.step_wall_us(-3600 * kSecond);
  std::int64_t last = clock.now_us();
  EXPECT_EQ(last, before);  // no time passed: the same instant, not an hour earlier
  const auto steps = clock.steps();
  EXPECT_EQ(steps.count, 1u);
  EXPECT_EQ(steps.last_delta_us, -3600 * kSecond);
  EXPECT_EQ(steps.ahead_us, 3600 * kSecond);
  // Every second of real time moves server time by 0.95 s: durations stay positive and the
  // hour is absorbed in 20 hours.
  for (int i = 0; i < 100; ++i) {
    sys.advance_us(kSecond);
    const std::int64_t now = clock.now_us();
    EXPECT_EQ(now - last, 950'000);
    last = now;
  }
  EXPECT_EQ(clock.steps().ahead_us, 3600 * kSecond - 100 * 50'000);
  sys.advance_us(20 * 3600 * kSecond);
  EXPECT_EQ(clock.now_us(), sys.now_us());
  EXPECT_EQ(clock.steps().ahead_us, 0);
  EXPECT_EQ(clock.steps().count, 1u);  // absorbing is not a new step
}

TEST(ServerClock, AStepForwardIsFollowedAtOnceAndCounted) {
  FakeClock sys;
  ServerClock clock(sys);
  (void)clock.now_us();
  sys.advance_us(kSecond);
  sys.step_wall_us(3600 * kSecond);
  EXPECT_EQ(clock.now_us(), sys.now_us());
  EXPECT_EQ(clock.steps().count, 1u);
  EXPECT_EQ(clock.steps().last_delta_us, 3600 * kSecond);
  EXPECT_EQ(clock.steps().ahead_us, 0);
}

TEST(ServerClock, StartsNoEarlierThanWhatIsAlreadyRecorded) {
  FakeClock sys;
  const std::int64_t recorded_end = sys.now_us() + 120 * kSecond;  // set back while down
  ServerClock clock(sys, recorded_end);
  EXPECT_EQ(clock.now_us(), recorded_end);
  EXPECT_EQ(clock.steps().count, 1u);
  EXPECT_EQ(clock.steps().ahead_us, 120 * kSecond);
  sys.advance_us(kSecond);
  EXPECT_EQ(clock.now_us(), recorded_end + 950'000);
}

TEST(ServerClock, AStepBackOfDaysIsFollowedAtOnceAndEveryStepIsKept) {
  FakeClock sys;
  ServerClock clock(sys);
  (void)clock.now_us();
  sys.advance_us(kSecond);
  sys.step_wall_us(-3 * 86'400 * kSecond);  // set three days ahead once, now corrected
  EXPECT_EQ(clock.now_us(), sys.now_us());  // absorbing it would take two months
  EXPECT_EQ(clock.steps().ahead_us, 0);
  sys.advance_us(kSecond);
  sys.step_wall_us(-10 * kSecond);  // a small one right after: absorbed
  // The second that passed already runs slow: 0.95 s after the last reading.
  const std::int64_t expected = sys.now_us() + 10 * kSecond - 50'000;
  EXPECT_EQ(clock.now_us(), expected);
  const auto steps = clock.take_steps();
  ASSERT_EQ(steps.size(), 2u);
  EXPECT_EQ(steps[0].second, -3 * 86'400 * kSecond);
  EXPECT_EQ(steps[1].second, -10 * kSecond);
  EXPECT_TRUE(clock.take_steps().empty());
}

TEST(ServerClock, IgnoresRecordingsFarInTheFutureAtStart) {
  FakeClock sys;
  ServerClock clock(sys, sys.now_us() + 30 * 86'400 * kSecond);  // stamped by a wrong clock
  EXPECT_EQ(clock.now_us(), sys.now_us());
  EXPECT_EQ(clock.steps().count, 1u);
  EXPECT_EQ(clock.steps().ahead_us, 0);
}

}  // namespace
}  // namespace matthan
