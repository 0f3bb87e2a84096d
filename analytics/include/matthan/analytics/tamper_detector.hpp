// Tamper: a covered lens (dark or uniform picture), a defocused one (sharpness far below the
// camera's learned baseline) or a moved camera (its edges no longer line up with the learned
// view), held for a minimum duration before it becomes a `tamper` event,
// so a passing truck's shadow or an autofocus hunt does not alarm.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "matthan/analytics/event_tracker.hpp"
#include "matthan/core/event.hpp"
#include "matthan/core/frame.hpp"

namespace matthan::analytics {

struct TamperSettings {
  double dark_mean = 20;       // mean luma below this: covered (or lights out)
  double uniform_stddev = 5;   // stddev below this: covered (hand, cloth, paint)
  double defocus_ratio = 0.5;  // sharpness below this fraction of the baseline: defocused
  int baseline_frames = 10;    // healthy frames seen before defocus can be judged
  double min_duration_s = 5;   // condition held this long before the event starts
  double clear_s = 2;          // condition absent this long before it ends
  double moved_match = 0.45;   // edge correlation with the learned view below this: moved
  double moved_accept_s = 60;  // after this long the new view is learnt (the event ends)
};

struct TamperState {
  double mean = 0;
  double stddev = 0;
  double sharpness = 0;
  double baseline = 0;
  double match = 1;       // edge correlation with the learned view (1: the same)
  std::string condition;  // "", "covered", "defocused" or "moved"
};

// Not thread-safe: one per camera, driven by one analysis worker at a time.
class TamperDetector {
 public:
  TamperDetector(CameraInfo camera, TamperSettings settings, EventSink* sink);
  // `small` is the analysis-size luma (CV_8U rows x cols, packed); `region` (same size, may be
  // null) is 0 under masks: an OSD clock must not count as picture detail.
  TamperState update(std::int64_t wall_us, const std::uint8_t* small, int cols, int rows,
                     const std::uint8_t* region = nullptr);
  void close(std::int64_t now_us);

 private:
  CameraInfo camera_;
  TamperSettings settings_;
  EventSink* sink_;
  double baseline_ = 0;
  int baseline_count_ = 0;
  std::string pending_;  // condition being timed
  std::int64_t pending_since_us_ = 0;
  std::int64_t clear_since_us_ = 0;
  std::optional<Event> event_;
  std::vector<float> reference_;  // the learned view's edges (quarter size, packed)
  std::int64_t moved_since_us_ = 0;
};

}  // namespace matthan::analytics
