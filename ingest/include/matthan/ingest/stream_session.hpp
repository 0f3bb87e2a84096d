// One RTSP stream of a camera: libavformat demux on its own thread, reconnect with backoff,
// server-side timestamps, optional luma decode for analysis, packets out to a fan-out.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "matthan/core/backoff.hpp"
#include "matthan/core/clock.hpp"
#include "matthan/core/frame.hpp"
#include "matthan/core/packet.hpp"
#include "matthan/core/types.hpp"

namespace matthan::ingest {

struct StreamOptions {
  std::string camera_id;
  StreamKind kind = StreamKind::main;
  std::string url;  // may hold credentials: never log it unmasked
  Transport transport = Transport::tcp;
  // H.264/H.265 over TCP through our own RTSP client (fewer system calls per packet); false,
  // or anything else (UDP, MJPEG): libavformat's.
  bool builtin_rtsp = true;
  std::chrono::milliseconds connect_timeout{5000};
  std::chrono::milliseconds min_stall_timeout{3000};
  BackoffPolicy backoff;
  std::chrono::milliseconds unauthorized_min_delay{5000};  // cameras lock accounts on storms
  bool decode = false;  // decode video and hand luma frames to frame_sink at analysis_fps
  double analysis_fps = 5.0;
  FrameSink* frame_sink = nullptr;  // outlives the session
};

struct StreamStats {
  StreamKind kind = StreamKind::main;
  StreamState state = StreamState::connecting;
  std::string last_error;
  std::int64_t since_us = 0;
  std::string url_masked;
  std::string codec;
  int width = 0;
  int height = 0;
  double fps_in = 0;
  double fps_decoded = 0;
  double bitrate_bps = 0;
  std::uint64_t packets_in = 0;
  std::uint64_t frames_decoded = 0;
  std::uint64_t frames_to_analysis = 0;
  std::uint64_t decode_errors = 0;
  std::uint64_t reconnects = 0;
  std::uint64_t timestamp_jumps = 0;
  std::uint64_t rtp_lost = 0;  // RTP packets the camera never delivered (our RTSP client only)
  std::string reader;          // "builtin" or "libavformat": who reads the stream
  std::int64_t last_packet_us = 0;
  std::int64_t stall_timeout_ms = 0;
  std::int64_t next_retry_us = 0;  // when in a failure state: the next attempt
  // Link quality while online (a lossy, slow or capped link): frames arriving below the
  // stream's own rate, holes in the arrivals, broken frames, timestamp jumps. Degraded at the
  // first sample with an issue; good again after three clean samples (~6 s).
  double nominal_fps = 0;  // the stream's declared frame rate (0: unknown)
  bool link_degraded = false;
  std::string link_issues;            // what was wrong at the last degraded sample
  std::int64_t degraded_ms = 0;       // total time spent degraded
  std::uint64_t degraded_spells = 0;  // how many times it became degraded
};

// Threads: the demux thread owns the libav contexts; state and stats are guarded by mutex_;
// start()/stop() are called by the owner (CameraIngest) only.
class StreamSession {
 public:
  using StateCallback = std::function<void(StreamKind, StreamState, const std::string& error)>;

  StreamSession(StreamOptions options, const Clock& clock, StateCallback on_state);
  ~StreamSession();
  StreamSession(const StreamSession&) = delete;
  StreamSession& operator=(const StreamSession&) = delete;

  void start();
  // Asks the thread to end (interrupts blocking reads) without waiting: stopping 100 cameras
  // one after another would take too long.
  void request_stop();
  void stop();  // request_stop() and wait for the thread
  StreamStats stats() const;
  PacketFanout& packets() { return fanout_; }

 private:
  struct Outcome {
    StreamState state;
    std::string error;
    bool streamed = false;  // got online during this attempt
  };

  void run();
  struct Input;  // an opened stream: libavformat's or our own RTSP client's
  Outcome connect_and_stream();
  Outcome stream(Input& input, const std::string& where);
  void set_state(StreamState state, const std::string& error);
  void sleep_interruptible(std::chrono::milliseconds delay);
  static int interrupt_cb(void* opaque);
  void sample_rates(std::int64_t steady_us);

  StreamOptions options_;
  const Clock& clock_;
  StateCallback on_state_;
  PacketFanout fanout_;

  std::atomic<bool> stopping_{false};
  std::atomic<std::int64_t> deadline_steady_us_{0};
  std::atomic<bool> deadline_hit_{false};
  std::thread thread_;
  std::mutex sleep_mutex_;
  std::condition_variable sleep_cv_;

  mutable std::mutex mutex_;  // guards stats_ and the rate samples
  StreamStats stats_;
  bool ever_online_ = false;
  bool builtin_unsupported_ = false;  // demux thread only: our RTSP client cannot read it
  std::int64_t rate_steady_us_ = 0;
  std::uint64_t rate_packets_ = 0;
  std::uint64_t rate_frames_ = 0;
  std::uint64_t rate_bytes_ = 0;
  std::uint64_t bytes_in_ = 0;
  std::uint64_t rate_decode_errors_ = 0;
  std::uint64_t rate_jumps_ = 0;
  std::uint64_t rate_lost_ = 0;
  std::int64_t last_arrival_steady_us_ = 0;
  std::int64_t window_max_gap_us_ = 0;  // longest silence between video packets this sample
  int clean_samples_ = 0;
};

void install_av_log_masking();

}  // namespace matthan::ingest
