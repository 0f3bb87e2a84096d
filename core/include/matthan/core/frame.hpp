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
  int stride = 0;  // bytes from one row to the next (>= width)
  // Taken half an analysis interval early, because the analysis asked for it (a candidate
  // awaited confirmation): per-frame learning rates count it as half a frame.
  bool early = false;
  // The pixels: owned (`luma`, rows packed), or lent by the decoder without a copy
  // (`lent_pixels`, valid while `lender` holds the decoder's buffer).
  std::vector<std::uint8_t> luma;
  const std::uint8_t* lent_pixels = nullptr;
  std::shared_ptr<const void> lender;

  const std::uint8_t* pixels() const { return lent_pixels != nullptr ? lent_pixels : luma.data(); }
};

using LumaFramePtr = std::shared_ptr<const LumaFrame>;

// Receives frames from ingest. Called from a stream's demux thread: implementations must not
// block (hand off to their own queue).
class FrameSink {
 public:
  virtual ~FrameSink() = default;
  virtual void on_frame(LumaFramePtr frame) = 0;
  // True while the analysis wants this camera's frames at twice the analysis rate: something
  // new moved and waits for the frames that confirm it (detection onset). Cheap, any thread.
  virtual bool wants_sooner(const std::string& /*camera_id*/) const { return false; }
};

}  // namespace matthan
