// Decoded analysis frames: the luma plane only, as decoded (no pixel conversion).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace matthan {

struct LumaFrame {
  std::string camera_id;
  std::int64_t wall_us = 0;   // smoothed server time of capture
  std::int64_t sequence = 0;  // decoded-frame counter of the session
  int width = 0;
  int height = 0;
  int stride = 0;  // == width: rows are packed
  std::vector<std::uint8_t> luma;
};

using LumaFramePtr = std::shared_ptr<const LumaFrame>;

// Receives frames from ingest. Called from a stream's demux thread: implementations must not
// block (hand off to their own queue).
class FrameSink {
 public:
  virtual ~FrameSink() = default;
  virtual void on_frame(LumaFramePtr frame) = 0;
};

}  // namespace matthan
