// Events: what the analytics (and ingest) saw, with a start, updates and an end. The same value
// goes to the database, ZeroMQ and, later, the UI WebSocket. Schema: docs/ref/events.md.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace matthan {

struct BoxRel {
  double x = 0, y = 0, w = 0, h = 0;  // relative to the frame, 0..1
};

struct Event {
  std::string id;  // ULID, made at start
  std::string camera_id;
  std::string commune;
  std::string hamlet;
  std::string type;   // motion, person, tamper, camera_offline, ...
  std::string label;  // e.g. "person" when a classifier agreed; empty otherwise
  std::int64_t start_us = 0;
  std::optional<std::int64_t> end_us;  // open while the event lasts
  double peak_score = 0;
  BoxRel peak_box;
  std::vector<std::string> zones;
  std::string snapshot_path;
  int pre_capture_s = 0;
  int post_capture_s = 0;
  bool armed = true;  // started inside armed hours: alert channels only send armed events
};

enum class EventPhase { start, update, end };
std::string_view to_string(EventPhase phase);

// Receives event changes. Implementations are thread-safe and must not block the caller
// (analysis workers): queue and hand off.
class EventSink {
 public:
  virtual ~EventSink() = default;
  virtual void on_event(EventPhase phase, const Event& event) = 0;
};

// Camera state changes for subscribers (status topics).
struct CameraStatusChange {
  std::string camera_id;
  std::string commune;
  std::string hamlet;
  std::string state;
  std::string error;
  std::int64_t at_us = 0;
};

class StatusSink {
 public:
  virtual ~StatusSink() = default;
  virtual void on_status(const CameraStatusChange& change) = 0;
};

}  // namespace matthan
