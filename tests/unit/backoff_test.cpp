#include "matthan/core/backoff.hpp"

#include <gtest/gtest.h>

#include <set>

namespace matthan {
namespace {

TEST(Backoff, GrowsExponentiallyWithinJitterUntilCap) {
  BackoffPolicy p;
  p.initial = std::chrono::milliseconds(500);
  p.cap = std::chrono::milliseconds(30000);
  p.multiplier = 2;
  p.jitter = 0.3;
  Backoff b(p, 42);
  double nominal = 500;
  for (int i = 0; i < 12; ++i) {
    const double expect = std::min(nominal, 30000.0);
    const auto d = b.next().count();
    EXPECT_LE(d, expect) << "attempt " << i;
    EXPECT_GE(d, expect * 0.7 - 1) << "attempt " << i;
    nominal *= 2;
  }
  EXPECT_EQ(b.attempts(), 12);
}

TEST(Backoff, ResetStartsOver) {
  Backoff b({}, 1);
  for (int i = 0; i < 8; ++i) b.next();
  b.reset();
  EXPECT_LE(b.next().count(), 500);
}

TEST(Backoff, JitterSpreadsCamerasThatFailTogether) {
  // Twenty cameras behind one switch lose power at once: their retries must not coincide.
  std::set<long> firsts;
  for (std::uint64_t seed = 0; seed < 20; ++seed) {
    Backoff b({}, seed);
    b.next();
    b.next();
    firsts.insert(static_cast<long>(b.next().count()));
  }
  EXPECT_GT(firsts.size(), 15u);
}

}  // namespace
}  // namespace matthan
