// Scenario files: per camera a procedural background, sensor noise, and timed actors, all
// deterministic from the seed. Times are seconds into the scene loop; positions and sizes are
// relative to the frame (0..1), so main and sub stream share one ground truth.
#pragma once

#include <cstdint>
#include <expected>
#include <optional>
#include <string>
#include <vector>

namespace matthan::camsim {

enum class ActorKind {
  person,
  vehicle,
  light_switch,
  ir_switch,
  rain,
  foliage,
  headlight,
  shake,
  cover,
  defocus,
  outage,
  dusk,  // the light fades and returns over the actor's duration (strength: depth)
  move   // the camera is knocked: the view stays shifted while active (strength: 1 = 5 % of width)
};
std::string to_string(ActorKind kind);

struct Actor {
  ActorKind kind = ActorKind::person;
  double start_s = 0;
  double duration_s = 5;
  double from_x = 0.05, from_y = 0.75;  // person/vehicle: bottom-centre path; headlight: sweep
  double to_x = 0.95, to_y = 0.75;
  double size = 0.3;      // person: height; vehicle: width (relative)
  double strength = 1.0;  // light_switch: brightness delta /100; rain: density; shake: px/100
  double region_x = 0, region_y = 0, region_w = 0, region_h = 0;  // foliage
};

struct StreamSpec {
  int width = 1280;
  int height = 720;
  int bitrate_kbps = 4000;
};

enum class SceneCodec { h264, h265 };

struct CameraSpec {
  std::string id;
  std::string hamlet;
  std::string name;
  SceneCodec codec = SceneCodec::h264;
  std::optional<SceneCodec> sub_codec;  // the sub stream's, when it differs (H.265 main, H.264 sub)
  StreamSpec main{1280, 720, 4000};
  StreamSpec sub{640, 360, 512};
  std::string user;  // RTSP auth when non-empty
  std::string password;
  std::string background = "road";  // road, houses, field, market
  double noise = 3.0;               // sensor noise sigma in grey levels
  bool night = false;               // the whole loop is a dark infrared (greyscale) night scene
  std::vector<Actor> actors;
  std::string file;  // serve this video file (looped) instead of a rendered scene
};

struct Scenario {
  std::uint64_t seed = 1;
  int fps = 25;
  int gop_frames = 50;     // 2 s at 25 fps
  double duration_s = 30;  // loop length
  std::vector<CameraSpec> cameras;
};

std::expected<Scenario, std::string> load_scenario(const std::string& path);
std::expected<Scenario, std::string> parse_scenario(const std::string& text);

// A simulated commune: `cameras` cameras over three hamlets, people crossing now and then.
Scenario demo_commune(int cameras, std::uint64_t seed, double duration_s);

// A stable key of everything that changes the rendered video of one camera.
std::string cache_key(const Scenario& scenario, const CameraSpec& camera);

}  // namespace matthan::camsim
