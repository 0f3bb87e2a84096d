// The analytics of all cameras: per camera a motion detector and an event tracker, driven by
// the analysis pool (which never runs two frames of one camera at once, so per-camera state
// needs no lock). Snapshots are written as JPEG under <data_dir>/snapshots/<camera>/.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "matthan/analytics/event_tracker.hpp"
#include "matthan/analytics/motion_detector.hpp"
#include "matthan/core/event.hpp"
#include "matthan/core/frame.hpp"

namespace matthan::analytics {

// The camera map is built in the constructor and read-only after: analyze() may run for
// different cameras on different workers at once.
class Engine {
 public:
  Engine(const std::vector<CameraInfo>& cameras, MotionSettings motion, TrackerSettings tracker,
         EventSink* sink, std::string snapshot_dir);
  void analyze(const LumaFrame& frame);
  // Ends every open event (server stopping).
  void close_all(std::int64_t now_us);

 private:
  struct PerCamera {
    explicit PerCamera(MotionSettings m) : detector(m) {}
    MotionDetector detector;
    std::unique_ptr<EventTracker> tracker;
    const LumaFrame* current = nullptr;  // the frame being analysed, for snapshots
    std::mutex mutex;                    // serialises close_all() against analyze()
  };
  std::string snapshot_dir_;
  std::map<std::string, std::unique_ptr<PerCamera>> cameras_;
};

}  // namespace matthan::analytics
