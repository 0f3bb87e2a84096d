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
                         std::int64_t threshold_us, std::int64_t max_absorb_us)
    : base_(base),
      slew_(slew),
      threshold_us_(threshold_us),
      max_absorb_us_(max_absorb_us),
      not_before_us_(not_before_us) {}

void ServerClock::note_step(std::int64_t at_us, std::int64_t delta_us) const {
  ++steps_.count;
  steps_.last_at_us = at_us;
  steps_.last_delta_us = delta_us;
  if (pending_.size() < 64) pending_.emplace_back(at_us, delta_us);
}

std::int64_t ServerClock::now_us() const {
  // Both clocks read under the lock: a thread descheduled between the reads and the lock would
  // otherwise see a "step".
  std::lock_guard lock(mutex_);
  const std::int64_t wall = base_.now_us();
  const std::int64_t steady = base_.steady_us();
  if (!started_) {
    started_ = true;
    last_steady_us_ = steady;
    // Recordings that end far in the future were stamped by a clock that was badly wrong: not
    // a reason to run ahead for days.
    const bool absorb = not_before_us_ - wall <= max_absorb_us_;
    last_server_us_ = absorb ? std::max(wall, not_before_us_) : wall;
    lag_us_ = last_server_us_ - wall;
    if (not_before_us_ - wall > threshold_us_) note_step(last_server_us_, wall - not_before_us_);
    return last_server_us_;
  }
  const std::int64_t elapsed = std::max<std::int64_t>(0, steady - last_steady_us_);
  const std::int64_t expected = last_server_us_ + elapsed;
  // The slowest server time may run: it still moves forward, so durations stay positive.
  const auto slowest =
      last_server_us_ + elapsed - static_cast<std::int64_t>(static_cast<double>(elapsed) * slew_);
  std::int64_t server = std::max(wall, slowest);
  if (wall - expected > threshold_us_) {
    note_step(wall, wall - expected);  // forward: followed at once
  } else if (expected - wall > lag_us_ + threshold_us_) {
    // Backward (or further back than already being absorbed).
    if (expected - wall > max_absorb_us_) {
      server = wall;  // too far to absorb: followed, and the step says so
      note_step(wall, wall - expected);
      last_server_us_ = wall;
    } else {
      note_step(server, wall - expected);
    }
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

std::vector<std::pair<std::int64_t, std::int64_t>> ServerClock::take_steps() {
  std::lock_guard lock(mutex_);
  return std::exchange(pending_, {});
}

}  // namespace matthan
