#include "matthan/core/ts_smoother.hpp"

#include <algorithm>
#include <cstdint>
#include <cstdlib>

namespace matthan {

TimestampSmoother::TimestampSmoother(std::int64_t jump_threshold_us,
                                     std::int64_t max_drift_per_s_us)
    : jump_threshold_us_(jump_threshold_us), max_drift_per_s_us_(max_drift_per_s_us) {}

SmoothedTime TimestampSmoother::update(std::int64_t pts_us, std::int64_t arrival_us) {
  SmoothedTime out;
  const std::int64_t predicted = anchored_ ? anchor_wall_us_ + (pts_us - anchor_pts_us_) : 0;
  const std::int64_t error = arrival_us - predicted;
  const bool jump = anchored_ && (std::llabs(error) > jump_threshold_us_ ||
                                  pts_us < last_pts_us_ - kMaxBackwardUs);
  if (!anchored_ || jump) {
    // First packet, or the media clock and the arrival clock disagree by more than network
    // jitter can explain (camera reboot, PTS reset or wrap, long stall): start over, but never
    // before the last time we handed out.
    if (jump) {
      ++jumps_;
      out.jump_us = error;
    }
    anchor_wall_us_ = anchored_ ? std::max(arrival_us, last_wall_us_ + 1) : arrival_us;
    anchored_ = true;
    anchor_pts_us_ = pts_us;
    last_pts_us_ = pts_us;
    last_wall_us_ = anchor_wall_us_;
    window_min_error_us_ = INT64_MAX;
    window_count_ = 0;
    window_start_pts_us_ = pts_us;
    out.wall_us = anchor_wall_us_;
    out.reanchored = true;
    return out;
  }
  if (error < 0) {
    // A packet cannot arrive before it was captured: the anchor had network delay in it.
    anchor_wall_us_ += error;
  } else {
    window_min_error_us_ = std::min(window_min_error_us_, error);
  }
  if (++window_count_ >= kDriftWindow) {
    // Even the quickest packet of the window came late: the camera's clock runs slow against
    // ours. Follow, at a bounded rate.
    if (window_min_error_us_ != INT64_MAX && window_min_error_us_ > 0) {
      const std::int64_t elapsed_us = std::max<std::int64_t>(0, pts_us - window_start_pts_us_);
      const std::int64_t allowed = max_drift_per_s_us_ * elapsed_us / 1'000'000;
      anchor_wall_us_ += std::min(window_min_error_us_, allowed);
    }
    window_min_error_us_ = INT64_MAX;
    window_count_ = 0;
    window_start_pts_us_ = pts_us;
  }
  last_pts_us_ = std::max(last_pts_us_, pts_us);
  std::int64_t wall = anchor_wall_us_ + (pts_us - anchor_pts_us_);
  // Never go backwards: a recorder's segments must not overlap.
  wall = std::max(wall, last_wall_us_ + 1);
  last_wall_us_ = wall;
  out.wall_us = wall;
  return out;
}

}  // namespace matthan
