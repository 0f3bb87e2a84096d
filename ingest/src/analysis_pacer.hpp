#pragma once

#include <cstdint>

namespace matthan {

// Which decoded frames go on to analysis, on a grid of the frames' own media time: a full slot
// every interval, and a half slot between two full ones that is taken only while the analysis
// asks for frames sooner (something new moved: the frames that confirm it come at twice the
// rate, and the event starts in half the time). Media time, not server time: server time is held
// still while the timestamp smoother pulls its anchor back (a camera that sends its buffered
// GOP in a burst on connect), and frames on a held clock would all fall inside one interval.
// Owned by the one thread that decodes.
class AnalysisPacer {
 public:
  enum class Slot { none, full, half };
  explicit AnalysisPacer(std::int64_t interval_us) : half_us_(interval_us / 2) {}

  // The slot the frame at media_us falls in: the first frame at or after each slot's time.
  Slot slot(std::int64_t media_us) {
    // Media time going back by more than two intervals is a camera that restarted its clock:
    // the grid starts again rather than waiting for the old one.
    bool restart = !started_ || media_us < next_us_ - 4 * half_us_;
    if (!restart && media_us < next_us_) return Slot::none;
    // A frame a whole half interval past its slot follows a hole (a stall, frames lost on a
    // slow link): the grid restarts at this frame, so that two analysed frames are never one
    // frame apart after a burst.
    if (!restart && media_us - next_us_ >= half_us_) restart = true;
    started_ = true;
    if (restart) {
      next_us_ = media_us + half_us_;
      half_next_ = true;
      return Slot::full;
    }
    const Slot s = half_next_ ? Slot::half : Slot::full;
    next_us_ += half_us_;
    half_next_ = !half_next_;
    return s;
  }

  // The slot of the frame at media_us if it is to be analysed, none if not: full slots always,
  // half slots when `sooner()` (asked only at a half slot) says so.
  template <typename Sooner>
  Slot take(std::int64_t media_us, const Sooner& sooner) {
    const Slot s = slot(media_us);
    return s == Slot::full || (s == Slot::half && sooner()) ? s : Slot::none;
  }

  bool due(std::int64_t media_us, bool sooner = false) {
    return take(media_us, [sooner] { return sooner; }) != Slot::none;
  }

 private:
  std::int64_t half_us_;
  std::int64_t next_us_ = 0;
  bool half_next_ = false;
  bool started_ = false;
};

}  // namespace matthan
