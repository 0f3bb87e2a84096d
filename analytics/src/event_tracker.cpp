#include "matthan/analytics/event_tracker.hpp"

#include "matthan/core/ids.hpp"

namespace matthan::analytics {

Event new_event(const CameraInfo& camera, std::string type, std::int64_t start_us) {
  Event e;
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

void EventTracker::update(std::int64_t wall_us, const MotionResult& motion) {
  const bool moving = !motion.blobs.empty();
  if (moving) {
    if (streak_ == 0) streak_start_us_ = wall_us;
    ++streak_;
    last_motion_us_ = wall_us;
  } else {
    streak_ = 0;
  }
  if (!event_ && moving && streak_ >= settings_.min_frames) {
    Event e = new_event(camera_, "motion", streak_start_us_);
    e.pre_capture_s = settings_.pre_capture_s;
    e.post_capture_s = settings_.post_capture_s;
    e.zones = {"all"};
    event_ = e;
  }
  if (!event_) return;
  if (moving) {
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
