// Server-side timestamps: the wall clock at arrival, smoothed by the stream's media timestamps
// so frame spacing stays exact, with PTS jumps and wraps detected. See docs/design/time.md.
#pragma once

#include <cstdint>

namespace matthan {

struct SmoothedTime {
  std::int64_t wall_us = 0;
  bool reanchored = false;   // the PTS jumped (or this is the first packet): anchor was reset
  std::int64_t jump_us = 0;  // how far the PTS jumped against the arrival clock
};

// Not thread-safe: owned by one stream session's demux thread.
class TimestampSmoother {
 public:
  // jump_threshold_us: a disagreement between PTS and arrival larger than this is a jump.
  // drift_per_s_us: how fast the anchor may follow arrivals that come consistently late.
  explicit TimestampSmoother(std::int64_t jump_threshold_us = 1'000'000,
                             std::int64_t max_drift_per_s_us = 2'000);

  static constexpr int kDriftWindow = 50;
  static constexpr std::int64_t kMaxBackwardUs = 100'000;

  // pts_us: media timestamp in µs (any origin); arrival_us: wall clock when the packet arrived.
  SmoothedTime update(std::int64_t pts_us, std::int64_t arrival_us);
  void reset() { anchored_ = false; }
  std::int64_t jumps() const { return jumps_; }

 private:
  std::int64_t jump_threshold_us_;
  std::int64_t max_drift_per_s_us_;
  bool anchored_ = false;
  std::int64_t anchor_wall_us_ = 0;
  std::int64_t anchor_pts_us_ = 0;
  std::int64_t last_pts_us_ = 0;
  std::int64_t last_wall_us_ = 0;
  std::int64_t jumps_ = 0;
  // Drift is judged on the quickest arrival of a window of packets, so jitter (which only ever
  // delays) does not bend the timeline.
  std::int64_t window_min_error_us_ = 0;
  int window_count_ = 0;
  std::int64_t window_start_pts_us_ = 0;
};

}  // namespace matthan
