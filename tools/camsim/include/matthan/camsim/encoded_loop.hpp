// A camera's scene, rendered and encoded once, kept as a list of access units and served
// packet by packet in a loop: serving costs ~2 % of a core where live encoding costs ~50 %.
#pragma once

#include <cstdint>
#include <expected>
#include <memory>
#include <string>
#include <vector>

#include "matthan/camsim/renderer.hpp"
#include "matthan/camsim/scenario.hpp"

namespace matthan::camsim {

struct AccessUnit {
  std::vector<std::uint8_t> data;  // Annex B, parameter sets repeated before every keyframe
  bool keyframe = false;
};

struct EncodedLoop {
  SceneCodec codec = SceneCodec::h264;
  int fps = 25;
  int width = 0;
  int height = 0;
  std::vector<AccessUnit> units;  // the first is a keyframe
};

struct CameraLoops {
  std::shared_ptr<const EncodedLoop> main;
  std::shared_ptr<const EncodedLoop> sub;
  std::vector<TruthEntry> truth;
};

// Renders and encodes (or loads from cache_dir) both streams of a camera.
std::expected<CameraLoops, std::string> prepare_camera(const Scenario& scenario,
                                                       const CameraSpec& camera,
                                                       const std::string& cache_dir);

// Only the sub (analysis) stream, rendered at its own size: what an analytics evaluation needs,
// at a third of the cost. `loops.main` stays empty.
std::expected<CameraLoops, std::string> prepare_sub_stream(const Scenario& scenario,
                                                           const CameraSpec& camera,
                                                           const std::string& cache_dir);

// Reads a video file (H.264/H.265 in any container libavformat reads) into a loop.
std::expected<std::shared_ptr<const EncodedLoop>, std::string> load_video_file(
    const std::string& path);

}  // namespace matthan::camsim
