#pragma once

#include <algorithm>
#include <cstdint>

namespace matthan {

// Which decoded frames go on to analysis: one per interval of the frames' own media time.
// Media time, not server time: server time is held still while the timestamp smoother pulls
// its anchor back (a camera that sends its buffered GOP in a burst on connect), and frames on
// a held clock would all fall inside one interval. Owned by the one thread that decodes.
class AnalysisPacer {
 public:
  explicit AnalysisPacer(std::int64_t interval_us) : interval_us_(interval_us) {}

  // True if the frame at media_us is to be analysed.
  bool due(std::int64_t media_us) {
    // Media time going back by more than two intervals is a camera that restarted its clock:
    // the grid starts again rather than waiting for the old one.
    const bool restart = !started_ || media_us < next_us_ - 2 * interval_us_;
    if (!restart && media_us < next_us_) return false;
    // One frame every interval from the first on. After a hole (a stall, frames lost on a slow
    // link) the grid restarts at this frame, and the next one is at least half an interval
    // later: never two analysed frames one frame apart.
    next_us_ = restart ? media_us + interval_us_
                       : std::max(next_us_ + interval_us_, media_us + interval_us_ / 2);
    started_ = true;
    return true;
  }

 private:
  std::int64_t interval_us_;
  std::int64_t next_us_ = 0;
  bool started_ = false;
};

}  // namespace matthan
