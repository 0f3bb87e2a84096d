#include "matthan/core/backoff.hpp"

#include <algorithm>
#include <cmath>

namespace matthan {

Backoff::Backoff(BackoffPolicy policy, std::uint64_t seed) : policy_(policy), rng_(seed) {}

std::chrono::milliseconds Backoff::next() {
  const double base = static_cast<double>(policy_.initial.count()) *
                      std::pow(policy_.multiplier, std::min(attempt_, 30));
  const double capped = std::min(base, static_cast<double>(policy_.cap.count()));
  ++attempt_;
  std::uniform_real_distribution<double> dist(capped * (1.0 - policy_.jitter), capped);
  return std::chrono::milliseconds(static_cast<std::int64_t>(dist(rng_)));
}

}  // namespace matthan
