// A camera: its main stream (recorded, not decoded) and its sub stream (decoded for analysis),
// the camera's overall state, and the persisted history of every state change.
#pragma once

#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "matthan/core/clock.hpp"
#include "matthan/core/config.hpp"
#include "matthan/core/frame.hpp"
#include "matthan/core/status_store.hpp"
#include "matthan/ingest/stream_session.hpp"

namespace matthan::ingest {

struct CameraStatus {
  std::string id;
  std::string name;
  std::string commune;
  std::string hamlet;
  std::string site;
  std::string brand;
  bool enabled = true;
  StreamState state = StreamState::connecting;
  std::string last_error;
  std::int64_t since_us = 0;
  double analysis_fps_configured = 0;
  std::vector<StreamStats> streams;
};

// Thread-safe. Session callbacks arrive on the sessions' demux threads; mutex_ guards the
// camera-level state.
class CameraIngest {
 public:
  CameraIngest(const CameraConfig& config, const Clock& clock, StatusStore* store,
               FrameSink* frame_sink);
  ~CameraIngest();
  void start();
  void request_stop();
  void stop();
  CameraStatus status() const;
  const std::string& id() const { return config_.id; }
  StreamSession* session(StreamKind kind);

 private:
  void on_stream_state(StreamKind kind, StreamState state, const std::string& error);

  CameraConfig config_;
  const Clock& clock_;
  StatusStore* store_;
  std::unique_ptr<StreamSession> main_;
  std::unique_ptr<StreamSession> sub_;

  mutable std::mutex mutex_;  // guards the fields below
  StreamState main_state_ = StreamState::connecting;
  StreamState sub_state_ = StreamState::connecting;
  std::string main_error_;
  std::string sub_error_;
  StreamState state_ = StreamState::connecting;
  std::string error_;
  std::int64_t since_us_ = 0;
};

}  // namespace matthan::ingest
