// Motion on the luma plane of the analysis stream: downscale (2x steps), gain normalisation,
// adaptive background, difference against a noise-scaled threshold, morphology, blobs.
// Global changes (light switch, IR day/night switch, auto-exposure) recalibrate instead of
// alarming. See docs/design/analytics.md.
#pragma once

#include <cstdint>
#include <memory>
#include <utility>
#include <vector>

#include "matthan/core/event.hpp"
#include "matthan/core/frame.hpp"
#include "matthan/core/zones.hpp"

namespace matthan::analytics {

struct MotionSettings {
  int analysis_height = 180;       // rows after downscaling
  double threshold_min = 14;       // grey levels: the floor of the difference threshold
  double threshold_noise_k = 4;    // threshold = max(floor, k × measured noise)
  double min_area = 0.0015;        // of the frame, per blob
  double global_change = 0.30;     // changed fraction above which the scene changed as a whole
  double learn_quiet = 0.02;       // background learning rate while quiet
  double learn_recalibrate = 0.3;  // while recalibrating after a global change
  int recalibrate_frames = 10;
  int warmup_frames = 15;                  // after (re)connecting: learn the scene before alarming
  std::int64_t resume_gap_us = 3'000'000;  // frames this far apart: a reconnect, warm up again
  double texture_min = 0.14;      // changed detail / changed brightness below this: just light
  double activity_max = 0.2;      // fraction of recent frames a pixel moved above which it is
                                  // "always moving" (foliage, flags) and ignored
  double activity_rate = 0.01;    // per frame; ~20 s memory at 5 fps
  double shake_trigger = 0.01;    // changed fraction above which a shift is tried...
  int shake_cells = 5;            // ...if at least this many cells of a 4x4 grid changed
  double shake_cell = 0.015;      // by more than this fraction each (a shake is everywhere)
  double shake_explained = 0.35;  // a shift leaving less than this of the change: a shake
  // Cells left out of that comparison, those the shift explains worst: what the camera draws
  // on top (its clock, its name) and whoever walks by do not move with the picture.
  int shake_ignore_cells = 2;
  // After a test found no shake, it is not repeated for this long while the change grows
  // neither wider (cells) nor 1.5x larger: a busy scene passed it once, a shake changes both.
  // Not within 10 s of a shake found (a gust): then every frame is asked. 0: every frame.
  std::int64_t shake_retest_us = 1'000'000;
  std::vector<Polygon> masks;  // relative polygons to ignore
  // Robustness stages, each switchable so the evaluation can score what it gains.
  bool global_change_stage = true;  // light/IR switch, exposure: recalibrate, do not alarm
  bool texture_stage = true;        // a blob whose texture matches the background is light
  bool speckle_stage = true;        // rain and noise: scattered specks are not objects
  bool periodic_stage = true;       // learn and ignore places that move all the time (foliage)
  bool shake_stage = true;          // a camera shake shifts everything: not motion
  bool track_stage = true;          // a blob must persist (overlap the last frame's) to count
};

struct Blob {
  BoxRel box;
  double area = 0;  // relative
  int zone = -1;    // index of the camera's detection zone it is in (-1: no zones)
};

struct MotionResult {
  std::vector<Blob> blobs;
  double score = 0;    // changed fraction of the frame inside blobs
  double changed = 0;  // changed fraction of the unmasked picture, before any stage
  bool global_change = false;
  bool recalibrating = false;  // after a global change or while warming up
  bool shake = false;
  bool shake_tested = false;  // the shift was looked for on this frame (phase correlation ran)
  int lit_blobs = 0;          // dropped by the illumination test
  int new_blobs = 0;          // dropped by the persistence test (not there the frame before)
  double noise = 0;           // estimated per-pixel difference noise (grey levels)
  // The analysis-size luma (packed rows), valid until the next process() call: later stages
  // (tamper) reuse it instead of scaling again.
  const std::uint8_t* small = nullptr;
  int small_cols = 0;
  int small_rows = 0;
  const std::uint8_t* region = nullptr;  // 255 where the picture counts, 0 under masks
};

// Not thread-safe: one per camera, used by one analysis worker at a time.
class MotionDetector {
 public:
  explicit MotionDetector(MotionSettings settings = {});
  ~MotionDetector();
  MotionDetector(MotionDetector&&) noexcept;
  MotionResult process(const LumaFrame& frame);
  // The scene changed under a condition the detector did not see (a lens uncovered, refocused,
  // or put back): learn it again before alarming.
  void recalibrate();

 private:
  struct State;
  MotionSettings settings_;
  std::unique_ptr<State> state_;
};

}  // namespace matthan::analytics
