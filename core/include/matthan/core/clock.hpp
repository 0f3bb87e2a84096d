// Clock: the one source of "now" so tests can run time fast and deterministically.
#pragma once

#include <atomic>
#include <cstdint>

namespace matthan {

// Wall time is µs since the Unix epoch, UTC; steady time only orders and measures intervals.
// Implementations are thread-safe.
class Clock {
 public:
  virtual ~Clock() = default;
  virtual std::int64_t now_us() const = 0;
  virtual std::int64_t steady_us() const = 0;
};

class SystemClock final : public Clock {
 public:
  std::int64_t now_us() const override;
  std::int64_t steady_us() const override;
};

// A clock that moves only when told to. Wall and steady time move together unless a test steps
// the wall clock on its own (as an NTP step or a hand-set clock would).
class FakeClock final : public Clock {
 public:
  explicit FakeClock(std::int64_t start_us = 1'767'225'600'000'000) : wall_us_(start_us) {}
  std::int64_t now_us() const override { return wall_us_.load(); }
  std::int64_t steady_us() const override { return steady_us_.load(); }
  void advance_us(std::int64_t delta_us) {
    wall_us_ += delta_us;
    steady_us_ += delta_us;
  }
  void step_wall_us(std::int64_t delta_us) { wall_us_ += delta_us; }

 private:
  std::atomic<std::int64_t> wall_us_;
  std::atomic<std::int64_t> steady_us_{0};
};

}  // namespace matthan
