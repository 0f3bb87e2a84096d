// Exponential reconnect backoff with full jitter, so a commune's cameras that drop together
// (a power cut at the junction box) do not reconnect in lockstep.
#pragma once

#include <chrono>
#include <cstdint>
#include <random>

namespace matthan {

struct BackoffPolicy {
  std::chrono::milliseconds initial{500};
  std::chrono::milliseconds cap{30'000};
  double multiplier = 2.0;
  double jitter = 0.3;  // each delay is drawn from [d·(1−jitter), d]
};

// Not thread-safe: owned by one stream supervisor.
class Backoff {
 public:
  explicit Backoff(BackoffPolicy policy, std::uint64_t seed = std::random_device{}());
  // The delay before the next attempt; grows until the cap.
  std::chrono::milliseconds next();
  // After a success the next failure starts from the initial delay again.
  void reset() { attempt_ = 0; }
  int attempts() const { return attempt_; }

 private:
  BackoffPolicy policy_;
  std::mt19937_64 rng_;
  int attempt_ = 0;
};

}  // namespace matthan
