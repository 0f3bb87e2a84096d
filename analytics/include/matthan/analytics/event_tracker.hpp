// Turns per-frame motion into events with hysteresis: an event starts after motion persisted
// for min_frames analysis intervals, updates when its peak grows, and ends after gap_s without
// motion. Pre/post capture say how much recording around it belongs to the event.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "matthan/analytics/motion_detector.hpp"
#include "matthan/core/event.hpp"

namespace matthan::analytics {

struct TrackerSettings {
  // Local minute of the day of a time (armed hours); injectable for tests.
  int (*minute_of_day)(std::int64_t utc_us) = &local_minute_of_day;
  // Regular frames with a persisting object (one also there the frame before); a frame taken
  // half an interval early (LumaFrame::early) counts half, so the persistence asked for spans
  // the same time however the frames came.
  int min_frames = 2;
  double gap_s = 3.0;
  int pre_capture_s = 5;
  int post_capture_s = 5;
  double update_min_interval_s = 1.0;
};

struct CameraInfo {
  std::string id;
  std::string commune;
  std::string hamlet;
  std::vector<Polygon> masks;
  std::vector<Zone> zones;  // detection zones; empty: the whole picture
  Schedule armed;           // the camera's armed hours; empty: always
};

// A new event of a camera: its ULID is made from the start time; armed by the camera's hours.
Event new_event(const CameraInfo& camera, std::string type, std::int64_t start_us,
                int (*minute_of_day)(std::int64_t) = &local_minute_of_day);

// Not thread-safe: one per camera, driven by one analysis worker at a time.
class EventTracker {
 public:
  // snapshot(event) is called when a new peak is reached; it returns the snapshot path.
  using Snapshot = std::function<std::string(const Event&)>;

  EventTracker(CameraInfo camera, TrackerSettings settings, EventSink* sink,
               Snapshot snapshot = {});
  void update(std::int64_t wall_us, const MotionResult& motion, bool early = false);
  // Ends an open event at `now_us` (camera gone, server stopping).
  void close(std::int64_t now_us);
  bool active() const { return event_.has_value(); }
  // The open event's id and label (empty when none).
  std::string active_id() const { return event_ ? event_->id : std::string(); }
  std::string active_label() const { return event_ ? event_->label : std::string(); }
  // A classifier recognised the open event (e.g. "person"): label it and send an update.
  void set_label(const std::string& event_id, const std::string& label);

 private:
  CameraInfo camera_;
  TrackerSettings settings_;
  EventSink* sink_;
  Snapshot snapshot_;
  int streak_ = 0;  // in half frames
  std::int64_t streak_start_us_ = 0;
  std::int64_t last_motion_us_ = 0;
  std::int64_t last_update_us_ = 0;
  bool dirty_ = false;
  std::vector<bool> zones_touched_;
  std::optional<Event> event_;
};

}  // namespace matthan::analytics
