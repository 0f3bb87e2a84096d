#include "matthan/analytics/event_tracker.hpp"

#include "matthan/core/ids.hpp"

namespace matthan::analytics {

Event new_event(const CameraInfo& camera, std::string type, std::int64_t start_us,
                int (*minute_of_day)(std::int64_t)) {
  Event e;
  e.armed = camera.armed.always() || camera.armed.armed_at_minute(minute_of_day(start_us));
  e.id = make_ulid(start_us);
  e.camera_id = camera.id;
  e.commune = camera.commune;
  e.hamlet = camera.hamlet;
  e.type = std::move(type);
  e.start_us = start_us;
  return e;
}

EventTracker::EventTracker(CameraInfo camera, TrackerSettings settings, EventSink* sink,
                           Snapshot snapshot)
    : camera_(std::move(camera)),
      settings_(settings),
      sink_(sink),
      snapshot_(std::move(snapshot)) {}

void EventTracker::update(std::int64_t wall_us, const MotionResult& motion, bool early) {
  const bool moving = !motion.blobs.empty();
  if (moving) {
    if (streak_ == 0) streak_start_us_ = wall_us;
    streak_ += early ? 1 : 2;
    last_motion_us_ = wall_us;
  } else {
    streak_ = 0;
  }
  if (!event_ && moving && streak_ >= 2 * settings_.min_frames) {
    Event e = new_event(camera_, "motion", streak_start_us_, settings_.minute_of_day);
    e.pre_capture_s = settings_.pre_capture_s;
    e.post_capture_s = settings_.post_capture_s;
    if (camera_.zones.empty()) e.zones = {"all"};
    zones_touched_.assign(camera_.zones.size(), false);
    event_ = e;
    // Armed: a zone's own hours decide for motion in that zone, the camera's otherwise.
    if (!camera_.zones.empty()) {
      const int minute = settings_.minute_of_day(streak_start_us_);
      bool armed = false;
      for (const auto& b : motion.blobs) {
        if (b.zone < 0) continue;
        const auto& z = camera_.zones[static_cast<std::size_t>(b.zone)];
        const Schedule& s = z.has_schedule ? z.armed : camera_.armed;
        armed = armed || s.armed_at_minute(minute);
      }
      event_->armed = armed;
    }
  }
  if (!event_) return;
  if (moving) {
    bool new_zone = false;
    for (const auto& b : motion.blobs) {
      if (b.zone < 0 || zones_touched_[static_cast<std::size_t>(b.zone)]) continue;
      zones_touched_[static_cast<std::size_t>(b.zone)] = true;
      event_->zones.push_back(camera_.zones[static_cast<std::size_t>(b.zone)].name);
      new_zone = true;
    }
    dirty_ = dirty_ || (new_zone && last_update_us_ != 0);
    const Blob* biggest = &motion.blobs.front();
    for (const auto& b : motion.blobs) {
      if (b.area > biggest->area) biggest = &b;
    }
    const bool is_start = last_update_us_ == 0;
    if (motion.score > event_->peak_score) {
      event_->peak_score = motion.score;
      event_->peak_box = biggest->box;
      if (snapshot_) event_->snapshot_path = snapshot_(*event_);
      dirty_ = true;
    }
    if (is_start) {
      last_update_us_ = wall_us;
      dirty_ = false;
      if (sink_) sink_->on_event(EventPhase::start, *event_);
    } else if (dirty_ && wall_us - last_update_us_ >= settings_.update_min_interval_s * 1e6) {
      last_update_us_ = wall_us;
      dirty_ = false;
      if (sink_) sink_->on_event(EventPhase::update, *event_);
    }
  } else if (wall_us - last_motion_us_ >= static_cast<std::int64_t>(settings_.gap_s * 1e6)) {
    // Half-open [start, end): the event ends just after the last frame that moved.
    close(last_motion_us_ + 1);
  }
}

void EventTracker::set_label(const std::string& event_id, const std::string& label) {
  if (!event_ || event_->id != event_id || event_->label == label) return;
  event_->label = label;
  if (sink_) sink_->on_event(EventPhase::update, *event_);
}

void EventTracker::close(std::int64_t now_us) {
  if (!event_) return;
  event_->end_us = std::max(now_us, event_->start_us + 1);
  if (sink_) sink_->on_event(EventPhase::end, *event_);
  event_.reset();
  streak_ = 0;
  last_update_us_ = 0;
  dirty_ = false;
}

}  // namespace matthan::analytics
