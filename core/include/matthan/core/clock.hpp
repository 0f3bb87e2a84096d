// Clock: the one source of "now" so tests can run time fast and deterministically.
#pragma once

#include <atomic>
#include <cstdint>
#include <mutex>
#include <utility>
#include <vector>

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

// Server time: the system clock, except that it never runs backwards. A forward step (an NTP
// correction after a boot without a clock battery) is followed at once; a backward step of up to
// `max_absorb_us` (6 h) is absorbed by running slower than real time (by `slew`, 5 %) until the
// system clock catches up, so recorded segments never overlap and no duration is negative. A
// larger step back (a clock that was set days or a year ahead, then corrected) is followed at
// once: absorbing it would take twenty times as long. Steps larger than `threshold_us` are kept
// for the log, the UI and export manifests (docs/design/time.md).
// Thread-safe: mutex_ guards the state; each call costs two clock reads.
class ServerClock final : public Clock {
 public:
  // not_before_us: server time starts no earlier than this (the end of what is already recorded,
  // so a clock set back while the server was down does not overlap earlier footage either).
  static constexpr std::int64_t kMaxAbsorbUs = 6LL * 3600 * 1'000'000;
  explicit ServerClock(const Clock& base, std::int64_t not_before_us = 0, double slew = 0.05,
                       std::int64_t threshold_us = 1'000'000,
                       std::int64_t max_absorb_us = kMaxAbsorbUs);
  std::int64_t now_us() const override;
  std::int64_t steady_us() const override { return base_.steady_us(); }

  struct Steps {
    std::uint64_t count = 0;         // steps seen since start
    std::int64_t last_at_us = 0;     // server time of the last one
    std::int64_t last_delta_us = 0;  // system clock minus server time then (< 0: stepped back)
    std::int64_t ahead_us = 0;       // server time minus system time now (> 0 while absorbing)
  };
  Steps steps() const;
  // The steps seen since the last call (at most 64 kept), oldest first: at, delta.
  std::vector<std::pair<std::int64_t, std::int64_t>> take_steps();

 private:
  const Clock& base_;
  double slew_;
  std::int64_t threshold_us_;
  std::int64_t max_absorb_us_;
  mutable std::mutex mutex_;
  mutable std::vector<std::pair<std::int64_t, std::int64_t>> pending_;  // for take_steps()
  mutable bool started_ = false;
  mutable std::int64_t not_before_us_;
  mutable std::int64_t last_server_us_ = 0;
  mutable std::int64_t last_steady_us_ = 0;
  mutable std::int64_t lag_us_ = 0;  // how far the system clock was behind at the last call
  mutable Steps steps_;
  void note_step(std::int64_t at_us, std::int64_t delta_us) const;
};

}  // namespace matthan
