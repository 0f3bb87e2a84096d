// The browser fallback for H.265 footage (Chromium has no H.265 decoder): a bounded, on-demand
// transcode of a clip to H.264 (libx264, one thread, at most 720 lines, veryfast). Recordings
// and exports are never transcoded; this is for playback only, one at a time (the caller holds
// the lock), and its cost is reported.
#pragma once

#include <cstdint>
#include <expected>
#include <string>

namespace matthan::storage {

struct TranscodeResult {
  std::int64_t frames = 0;
  double cpu_s = 0;  // this thread's CPU time
  double wall_s = 0;
};

// `in` is an MP4 (a clip); `out` an H.264 MP4 (faststart), written through a temporary file.
std::expected<TranscodeResult, std::string> transcode_to_h264(const std::string& in,
                                                              const std::string& out,
                                                              int max_height = 720);

}  // namespace matthan::storage
