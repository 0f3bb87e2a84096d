#include "matthan/ingest/camera_ingest.hpp"

#include <spdlog/spdlog.h>

#include "matthan/core/url.hpp"

namespace matthan::ingest {

CameraIngest::CameraIngest(const CameraConfig& config, const Clock& clock, StatusStore* store,
                           FrameSink* frame_sink)
    : config_(config), clock_(clock), store_(store) {
  since_us_ = clock_.now_us();
  if (!config_.enabled) {
    state_ = StreamState::disabled;
    return;
  }
  auto make = [&](StreamKind kind, const std::string& url, bool decode) {
    StreamOptions opts;
    opts.camera_id = config_.id;
    opts.kind = kind;
    opts.url = url;
    opts.transport = config_.transport;
    opts.builtin_rtsp = config_.builtin_rtsp;
    opts.connect_timeout = config_.connect_timeout;
    opts.min_stall_timeout = config_.min_stall_timeout;
    opts.decode = decode;
    opts.analysis_fps = config_.analysis_fps;
    opts.frame_sink = decode ? frame_sink : nullptr;
    return std::make_unique<StreamSession>(
        opts, clock_,
        [this](StreamKind k, StreamState s, const std::string& e) { on_stream_state(k, s, e); });
  };
  // The sub stream is analysed; without one, the main stream is.
  const bool has_sub = !config_.sub_url.empty();
  main_ = make(StreamKind::main, config_.main_url, !has_sub);
  if (has_sub) sub_ = make(StreamKind::sub, config_.sub_url, true);
  if (!has_sub) sub_state_ = StreamState::online;  // nothing to wait for
}

CameraIngest::~CameraIngest() {
  stop();
}

void CameraIngest::start() {
  if (!config_.enabled) {
    if (store_ != nullptr) {
      store_->record_state_change({config_.id, "camera", StreamState::disabled, since_us_, ""});
    }
    return;
  }
  if (store_ != nullptr) {
    store_->record_state_change({config_.id, "camera", StreamState::connecting, since_us_, ""});
  }
  if (main_) main_->start();
  if (sub_) sub_->start();
}

void CameraIngest::request_stop() {
  if (main_) main_->request_stop();
  if (sub_) sub_->request_stop();
}

void CameraIngest::stop() {
  request_stop();
  if (main_) main_->stop();
  if (sub_) sub_->stop();
}

StreamSession* CameraIngest::session(StreamKind kind) {
  return kind == StreamKind::main ? main_.get() : sub_.get();
}

void CameraIngest::on_stream_state(StreamKind kind, StreamState state, const std::string& error) {
  const std::int64_t now = clock_.now_us();
  if (store_ != nullptr) {
    store_->record_state_change({config_.id, std::string(to_string(kind)), state, now, error});
  }
  std::lock_guard lock(mutex_);
  if (kind == StreamKind::main) {
    main_state_ = state;
    main_error_ = error;
  } else {
    sub_state_ = state;
    sub_error_ = error;
  }
  // The camera is online only when every stream is: a camera that records but cannot be
  // analysed (or the reverse) is not healthy. Otherwise it takes the state of its main stream
  // (recording comes first), or of its sub stream when the main one is fine.
  StreamState next = StreamState::online;
  std::string next_error;
  if (main_state_ != StreamState::online) {
    next = main_state_;
    next_error = main_error_;
  } else if (sub_state_ != StreamState::online) {
    next = sub_state_;
    next_error = "sub stream: " + sub_error_;
  }
  error_ = next_error;
  if (next != state_) {
    state_ = next;
    since_us_ = now;
    if (store_ != nullptr) {
      store_->record_state_change({config_.id, "camera", next, now, next_error});
    }
  }
}

CameraStatus CameraIngest::status() const {
  CameraStatus s;
  s.id = config_.id;
  s.name = config_.name;
  s.commune = config_.commune;
  s.hamlet = config_.hamlet;
  s.site = config_.site;
  s.brand = std::string(to_string(config_.brand));
  s.enabled = config_.enabled;
  s.analysis_fps_configured = config_.analysis_fps;
  {
    std::lock_guard lock(mutex_);
    s.state = state_;
    s.last_error = error_;
    s.since_us = since_us_;
  }
  if (main_) s.streams.push_back(main_->stats());
  if (sub_) s.streams.push_back(sub_->stats());
  return s;
}

}  // namespace matthan::ingest
