// The analysis stage's scheduler: a bounded queue per camera (1-2 frames deep) drained by a
// worker pool sized to the cores. When analysis falls behind, the oldest frame is dropped and
// counted, never queued into latency. The detectors (motion, tamper, people) plug in here.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "matthan/core/clock.hpp"
#include "matthan/core/frame.hpp"

namespace matthan::analytics {

struct AnalysisStats {
  std::uint64_t frames_analysed = 0;
  std::uint64_t frames_dropped = 0;
  double fps_analysed = 0;
  double mean_luma = 0;  // of the last analysed frame: 0 black .. 255 white
  double analyse_ms_avg = 0;
  std::size_t queued = 0;  // frames waiting for a worker (at most the pool's depth)
};

// Thread-safe: on_frame() is called from demux threads; workers run analysis; mutex_ guards
// the queues and stats.
class AnalysisPool final : public FrameSink {
 public:
  // Runs on a worker for each frame; must be thread-safe across cameras.
  using Analyzer = std::function<void(const LumaFrame&)>;

  // Whether a camera's analysis wants its frames sooner (Engine::wants_sooner).
  using Sooner = std::function<bool(const std::string&)>;

  AnalysisPool(unsigned workers, std::size_t queue_depth, const Clock& clock,
               Analyzer analyzer = {}, Sooner sooner = {});
  ~AnalysisPool() override;
  void on_frame(LumaFramePtr frame) override;
  // The analysis asks, and the camera has no frame waiting: a pool that is behind takes no
  // extra frames (they would only push the regular ones out).
  bool wants_sooner(const std::string& camera_id) const override;
  void stop();
  AnalysisStats stats(const std::string& camera_id) const;

 private:
  struct CameraQueue {
    std::deque<LumaFramePtr> frames;
    bool busy = false;  // a worker holds a frame of this camera: keep per-camera order
    AnalysisStats stats;
    std::int64_t rate_steady_us = 0;
    std::uint64_t rate_frames = 0;
    double total_ms = 0;
  };
  void worker_loop();

  std::size_t depth_;
  const Clock& clock_;
  Analyzer analyzer_;
  Sooner sooner_;
  mutable std::mutex mutex_;
  std::condition_variable cv_;
  std::map<std::string, CameraQueue> cameras_;
  std::deque<std::string> ready_;  // cameras with a frame waiting and no worker on them
  bool stopping_ = false;
  std::vector<std::thread> workers_;
};

}  // namespace matthan::analytics
