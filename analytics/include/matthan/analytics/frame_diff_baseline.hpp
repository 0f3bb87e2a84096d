// The baseline the evaluation scores Mắt Thần against: plain frame differencing as the Motion
// daemon does it by default — the difference to the previous frame, a fixed noise level, and a
// changed-pixel count threshold, no light-switch, rain or foliage handling. Not used for
// alarms; it shows what each of the real detector's stages gains.
#pragma once

#include <memory>

#include "matthan/analytics/motion_detector.hpp"

namespace matthan::analytics {

struct BaselineSettings {
  int analysis_height = 180;
  int noise_level = 32;            // Motion's default noise_level
  double pixel_fraction = 0.0049;  // Motion's default threshold: 1500 of 640x480 pixels
  std::vector<Polygon> masks;      // Motion has mask files too
};

// Not thread-safe: one per camera.
class FrameDiffBaseline {
 public:
  explicit FrameDiffBaseline(BaselineSettings settings = {});
  ~FrameDiffBaseline();
  // One blob: the bounding box of every changed pixel, when enough pixels changed.
  MotionResult process(const LumaFrame& frame);

 private:
  struct State;
  BaselineSettings settings_;
  std::unique_ptr<State> state_;
};

}  // namespace matthan::analytics
