// Clips: a time range of one camera stream, remuxed on demand (never re-encoded) from the
// segments that cover it into one MP4 that starts at the keyframe at or before the range.
// Deterministic: the same segments and range give the same bytes (bit-exact muxing, no
// creation time), so HTTP Range requests and export hashes are stable.
#pragma once

#include <cstdint>
#include <expected>
#include <functional>
#include <string>
#include <vector>

#include "matthan/storage/database.hpp"

namespace matthan::storage {

struct TimeRange {
  std::int64_t start_us = 0;
  std::int64_t end_us = 0;
};

struct ClipRequest {
  std::string node_id;
  std::string camera_id;
  std::string stream = "main";
  std::int64_t from_us = 0;
  std::int64_t to_us = 0;
  bool server_time_track = false;  // a subtitle track with the server's local time, per second
  bool faststart = true;           // moov first: plays while downloading
};

struct ClipResult {
  std::string codec;
  std::int64_t bytes = 0;
  std::int64_t frames = 0;
  std::int64_t start_us = 0;               // server time of the first frame (keyframe pre-roll)
  std::int64_t end_us = 0;                 // after the last frame
  std::vector<TimeRange> covered;          // the ranges with footage, in order
  std::vector<TimeRange> gaps;             // holes inside [start_us, requested end)
  std::vector<std::string> segments;       // the segment files read
  std::int64_t source_damaged_frames = 0;  // of those segments (not only the range's) damaged
  std::vector<std::string> notes;          // e.g. a segment cut short, a parameter change
};

// Progress 0..1 as segments are read.
using ClipProgress = std::function<void(double)>;

// Writes the clip to `out_path` (through a temporary file, renamed when complete). Fails when
// no footage overlaps the range.
std::expected<ClipResult, std::string> write_clip(Database& db, const ClipRequest& request,
                                                  const std::string& out_path,
                                                  const ClipProgress& progress = {});

}  // namespace matthan::storage
