// The analytics of all cameras: per camera a motion detector and an event tracker, driven by
// the analysis pool (which never runs two frames of one camera at once, so per-camera state
// needs no lock). Snapshots are written as JPEG under <data_dir>/snapshots/<camera>/.
#pragma once

#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "matthan/analytics/event_tracker.hpp"
#include "matthan/analytics/motion_detector.hpp"
#include "matthan/analytics/person_classifier.hpp"
#include "matthan/analytics/tamper_detector.hpp"
#include "matthan/core/event.hpp"
#include "matthan/core/frame.hpp"

namespace matthan::analytics {

// The camera map is built in the constructor and read-only after: analyze() may run for
// different cameras on different workers at once.
class Engine {
 public:
  enum class People { off, hog };
  Engine(const std::vector<CameraInfo>& cameras, MotionSettings motion, TrackerSettings tracker,
         TamperSettings tamper, EventSink* sink, std::string snapshot_dir,
         People people = People::hog);
  void analyze(const LumaFrame& frame);
  // True while something new moves on the camera and no event is open yet: its next frames are
  // wanted at twice the analysis rate, so the persistence that confirms it is seen 0.1 s sooner
  // (0.3 s after the first sighting at 5 fps, instead of 0.4 s).
  bool wants_sooner(const std::string& camera_id) const;
  // Ends every open event (server stopping).
  void close_all(std::int64_t now_us);

  // What the analytics last measured for a camera: for the API and for field tuning.
  struct Figures {
    double noise = 0;      // difference noise, grey levels
    double sharpness = 0;  // normalised Laplacian
    double sharpness_baseline = 0;
    double view_match = 1;  // edge correlation with the learned view
    std::string tamper;     // "", "covered", "defocused", "moved"
    bool event_active = false;
  };
  Figures figures(const std::string& camera_id) const;
  ClassifierStats people_stats() const;

 private:
  struct PerCamera;
  static void keep_zone_blobs(const PerCamera& pc, MotionResult& motion);
  struct PerCamera {
    PerCamera(MotionSettings m, const CameraInfo& cam, TamperSettings t, EventSink* sink)
        : detector(m), tamper(cam, t, sink) {}
    MotionDetector detector;
    TamperDetector tamper;
    std::vector<Zone> zones;
    double min_area = 0;  // analytics.min_area, for zones without their own
    std::unique_ptr<EventTracker> tracker;
    const LumaFrame* current = nullptr;  // the frame being analysed, for snapshots
    Figures figures;
    std::uint64_t frames = 0;
    std::atomic<bool> sooner{false};  // written by analyze(), read by the demux threads
    mutable std::mutex mutex;         // serialises close_all() and figures() against analyze()
  };
  std::string snapshot_dir_;
  std::map<std::string, std::unique_ptr<PerCamera>> cameras_;
  // Declared last: destroyed (its thread joined) before the cameras its callback touches.
  std::unique_ptr<PersonClassifier> people_;
};

}  // namespace matthan::analytics
