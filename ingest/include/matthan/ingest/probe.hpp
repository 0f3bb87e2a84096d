// `matthan probe URL`: what a stream is (codec, resolution, fps, bitrate, GOP), measured by
// reading it for a few seconds.
#pragma once

#include <chrono>
#include <expected>
#include <string>

namespace matthan::ingest {

struct ProbeResult {
  std::string url_masked;
  std::string codec;
  std::string profile;
  int width = 0;
  int height = 0;
  double fps = 0;
  double bitrate_bps = 0;
  double gop_frames = 0;  // mean distance between keyframes
  double gop_seconds = 0;
  std::string audio_codec;
  int frames = 0;
};

std::expected<ProbeResult, std::string> probe_stream(const std::string& url,
                                                     std::chrono::milliseconds duration,
                                                     std::chrono::milliseconds timeout);

}  // namespace matthan::ingest
