// Reads a video file (any container/codec libavformat/libavcodec read) and hands its luma
// frames, at a chosen analysis rate, to a callback: the same frames the live path would analyse,
// for `matthan tune` (replay a clip with candidate settings).
#pragma once

#include <cstdint>
#include <expected>
#include <functional>
#include <string>

#include "matthan/core/frame.hpp"

namespace matthan::ingest {

struct ClipInfo {
  int frames_decoded = 0;
  int frames_analysed = 0;  // of which frames_sooner were half-slot frames the analysis asked for
  int frames_sooner = 0;
  double duration_s = 0;
};

// exact: every pixel as the encoder meant it (tests reading frame numbers, evidence).
// analysis: decoded as the live analysis decodes (without the deblocking filter), so that a replay
// (`matthan tune`, the evaluation) sees the pictures the server would see.
enum class Decode { exact, analysis };

// Frame times are base_us + the frame's media time since the first frame. Runs as fast as it
// can decode (no real-time pacing). `sooner`, asked at each half slot as the live path asks its
// analysis, takes that frame too (flagged `early`); none: the half slots are skipped.
// analysis_fps <= 0: every decoded frame, whatever its time (a camera that stalled sends the
// frames it held a tick apart, which any rate's grid would thin out).
std::expected<ClipInfo, std::string> read_clip(
    const std::string& path, const std::string& camera_id, double analysis_fps,
    std::int64_t base_us, const std::function<void(const LumaFrame&)>& on_frame,
    Decode decode = Decode::exact, const std::function<bool()>& sooner = {});

}  // namespace matthan::ingest
