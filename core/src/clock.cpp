#include "matthan/core/clock.hpp"

#include <algorithm>
#include <chrono>

namespace matthan {

std::int64_t SystemClock::now_us() const {
  using namespace std::chrono;
  return duration_cast<microseconds>(system_clock::now().time_since_epoch()).count();
}

std::int64_t SystemClock::steady_us() const {
  using namespace std::chrono;
  return duration_cast<microseconds>(steady_clock::now().time_since_epoch()).count();
}

ServerClock::ServerClock(const Clock& base, std::int64_t not_before_us, double slew,
                         std::int64_t threshold_us)
    : base_(base), slew_(slew), threshold_us_(threshold_us), not_before_us_(not_before_us) {}

std::int64_t ServerClock::now_us() const {
  const std::int64_t wall = base_.now_us();
  const std::int64_t steady = base_.steady_us();
  std::lock_guard lock(mutex_);
  if (!started_) {
    started_ = true;
    last_steady_us_ = steady;
    last_server_us_ = std::max(wall, not_before_us_);
    lag_us_ = last_server_us_ - wall;
    if (lag_us_ > threshold_us_) {  // set back while the server was down
      ++steps_.count;
      steps_.last_at_us = last_server_us_;
      steps_.last_delta_us = -lag_us_;
    }
    return last_server_us_;
  }
  const std::int64_t elapsed = std::max<std::int64_t>(0, steady - last_steady_us_);
  const std::int64_t expected = last_server_us_ + elapsed;
  // The slowest server time may run: it still moves forward, so durations stay positive.
  const auto slowest =
      last_server_us_ + elapsed - static_cast<std::int64_t>(static_cast<double>(elapsed) * slew_);
  std::int64_t server = std::max(wall, slowest);
  if (wall - expected > threshold_us_) {
    ++steps_.count;  // forward: followed at once
    steps_.last_at_us = wall;
    steps_.last_delta_us = wall - expected;
  } else if (expected - wall > lag_us_ + threshold_us_) {
    ++steps_.count;  // backward (or further back than already being absorbed)
    steps_.last_at_us = server;
    steps_.last_delta_us = wall - expected;
  }
  server = std::max(server, last_server_us_);
  lag_us_ = std::max<std::int64_t>(0, server - wall);
  last_server_us_ = server;
  last_steady_us_ = steady;
  return server;
}

ServerClock::Steps ServerClock::steps() const {
  std::lock_guard lock(mutex_);
  Steps s = steps_;
  s.ahead_us = lag_us_;
  return s;
}

}  // namespace matthan
