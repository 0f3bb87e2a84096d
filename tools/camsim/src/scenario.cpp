#include "matthan/camsim/scenario.hpp"

#include <yaml-cpp/yaml.h>

#include <cmath>
#include <cstdio>
#include <fstream>
#include <set>
#include <sstream>

namespace matthan::camsim {
namespace {

const std::vector<std::pair<ActorKind, std::string>> kKinds{
    {ActorKind::person, "person"},
    {ActorKind::vehicle, "vehicle"},
    {ActorKind::light_switch, "light_switch"},
    {ActorKind::ir_switch, "ir_switch"},
    {ActorKind::rain, "rain"},
    {ActorKind::foliage, "foliage"},
    {ActorKind::headlight, "headlight"},
    {ActorKind::shake, "shake"},
    {ActorKind::cover, "cover"},
    {ActorKind::defocus, "defocus"},
    {ActorKind::outage, "outage"},
    {ActorKind::dusk, "dusk"},
    {ActorKind::move, "move"}};

struct ScenarioError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

[[noreturn]] void fail(const YAML::Node& node, const std::string& what) {
  std::ostringstream msg;
  if (node.IsDefined() && node.Mark().line >= 0) msg << "line " << node.Mark().line + 1 << ": ";
  msg << what;
  throw ScenarioError(msg.str());
}

void check_keys(const YAML::Node& map, const std::string& where,
                const std::set<std::string>& keys) {
  if (!map.IsMap()) fail(map, where + " must be a mapping");
  for (const auto& kv : map) {
    if (!keys.contains(kv.first.as<std::string>())) {
      fail(kv.first, "unknown key '" + kv.first.as<std::string>() + "' in " + where);
    }
  }
}

template <typename T>
T get(const YAML::Node& map, const std::string& key, T fallback) {
  const auto n = map[key];
  if (!n.IsDefined() || n.IsNull()) return fallback;
  try {
    return n.as<T>();
  } catch (const YAML::Exception&) {
    fail(n, "bad value for '" + key + "'");
  }
}

void read_point(const YAML::Node& map, const std::string& key, double& x, double& y) {
  const auto n = map[key];
  if (!n.IsDefined()) return;
  if (!n.IsSequence() || n.size() != 2) fail(n, key + " must be [x, y]");
  x = n[0].as<double>();
  y = n[1].as<double>();
}

StreamSpec read_stream(const YAML::Node& n, StreamSpec fallback, const std::string& where) {
  if (!n.IsDefined()) return fallback;
  check_keys(n, where, {"width", "height", "bitrate_kbps"});
  fallback.width = get<int>(n, "width", fallback.width);
  fallback.height = get<int>(n, "height", fallback.height);
  fallback.bitrate_kbps = get<int>(n, "bitrate_kbps", fallback.bitrate_kbps);
  if (fallback.width < 64 || fallback.height < 64 || fallback.width % 2 || fallback.height % 2) {
    fail(n, where + ": width and height must be even and at least 64");
  }
  return fallback;
}

Scenario parse(const YAML::Node& root) {
  check_keys(root, "the scenario", {"seed", "fps", "gop_frames", "duration_s", "cameras"});
  Scenario s;
  s.seed = get<std::uint64_t>(root, "seed", 1);
  s.fps = get<int>(root, "fps", 25);
  s.gop_frames = get<int>(root, "gop_frames", 2 * s.fps);
  s.duration_s = get<double>(root, "duration_s", 30);
  if (s.fps < 1 || s.fps > 60) fail(root["fps"], "fps must be 1..60");
  if (s.duration_s < 2 || s.duration_s > 3600)
    fail(root["duration_s"], "duration_s must be 2..3600");
  const auto cams = root["cameras"];
  if (!cams.IsSequence() || cams.size() == 0) fail(cams, "cameras must be a non-empty list");
  std::set<std::string> ids;
  for (const auto& c : cams) {
    check_keys(c, "a camera",
               {"id", "name", "hamlet", "codec", "sub_codec", "main", "sub", "auth", "background",
                "noise", "actors", "file", "night"});
    CameraSpec cam;
    cam.id = get<std::string>(c, "id", "");
    if (cam.id.empty()) fail(c, "a camera needs an id");
    if (!ids.insert(cam.id).second) fail(c["id"], "duplicate camera id " + cam.id);
    cam.name = get<std::string>(c, "name", cam.id);
    cam.hamlet = get<std::string>(c, "hamlet", "");
    const auto codec = get<std::string>(c, "codec", "h264");
    if (codec == "h265" || codec == "hevc") {
      cam.codec = SceneCodec::h265;
    } else if (codec != "h264") {
      fail(c["codec"], "codec must be h264 or h265");
    }
    if (c["sub_codec"].IsDefined()) {
      const auto sub = get<std::string>(c, "sub_codec", "h264");
      if (sub == "h265" || sub == "hevc") {
        cam.sub_codec = SceneCodec::h265;
      } else if (sub == "h264") {
        cam.sub_codec = SceneCodec::h264;
      } else {
        fail(c["sub_codec"], "sub_codec must be h264 or h265");
      }
    }
    cam.main = read_stream(c["main"], cam.main, "main");
    cam.sub = read_stream(c["sub"], cam.sub, "sub");
    if (const auto a = c["auth"]; a.IsDefined()) {
      check_keys(a, "auth", {"user", "password"});
      cam.user = get<std::string>(a, "user", "");
      cam.password = get<std::string>(a, "password", "");
    }
    cam.background = get<std::string>(c, "background", "road");
    if (!std::set<std::string>{"road", "houses", "field", "market"}.contains(cam.background)) {
      fail(c["background"], "background must be road, houses, field or market");
    }
    cam.noise = get<double>(c, "noise", 3.0);
    cam.night = get<bool>(c, "night", false);
    cam.file = get<std::string>(c, "file", "");
    if (const auto acts = c["actors"]; acts.IsDefined()) {
      if (!acts.IsSequence()) fail(acts, "actors must be a list");
      for (const auto& a : acts) {
        check_keys(a, "an actor",
                   {"kind", "start_s", "duration_s", "from", "to", "size", "strength", "region"});
        Actor actor;
        const auto kind = get<std::string>(a, "kind", "");
        bool known = false;
        for (const auto& [k, name] : kKinds) {
          if (name == kind) {
            actor.kind = k;
            known = true;
          }
        }
        if (!known) fail(a["kind"], "unknown actor kind '" + kind + "'");
        actor.start_s = get<double>(a, "start_s", 0);
        actor.duration_s = get<double>(a, "duration_s", 5);
        read_point(a, "from", actor.from_x, actor.from_y);
        read_point(a, "to", actor.to_x, actor.to_y);
        actor.size = get<double>(a, "size", actor.kind == ActorKind::vehicle ? 0.25 : 0.3);
        actor.strength = get<double>(a, "strength", 1.0);
        if (const auto r = a["region"]; r.IsDefined()) {
          if (!r.IsSequence() || r.size() != 4) fail(r, "region must be [x, y, w, h]");
          actor.region_x = r[0].as<double>();
          actor.region_y = r[1].as<double>();
          actor.region_w = r[2].as<double>();
          actor.region_h = r[3].as<double>();
        }
        cam.actors.push_back(actor);
      }
    }
    s.cameras.push_back(std::move(cam));
  }
  return s;
}

}  // namespace

std::string to_string(ActorKind kind) {
  for (const auto& [k, name] : kKinds) {
    if (k == kind) return name;
  }
  return "unknown";
}

std::expected<Scenario, std::string> parse_scenario(const std::string& text) {
  try {
    return parse(YAML::Load(text));
  } catch (const ScenarioError& e) {
    return std::unexpected(std::string(e.what()));
  } catch (const YAML::Exception& e) {
    return std::unexpected("line " + std::to_string(e.mark.line + 1) + ": " + e.msg);
  }
}

std::expected<Scenario, std::string> load_scenario(const std::string& path) {
  std::ifstream in(path);
  if (!in) return std::unexpected("cannot read scenario " + path);
  std::stringstream buf;
  buf << in.rdbuf();
  auto s = parse_scenario(buf.str());
  if (!s) return std::unexpected(path + ": " + s.error());
  return s;
}

Scenario demo_commune(int cameras, std::uint64_t seed, double duration_s) {
  static const char* kHamlets[] = {"ap-binh-an", "ap-tan-hung", "ap-phu-loi"};
  static const char* kBackgrounds[] = {"road", "houses", "market", "field"};
  Scenario s;
  s.seed = seed;
  s.duration_s = duration_s;
  for (int i = 0; i < cameras; ++i) {
    CameraSpec cam;
    cam.id = "cam" + std::to_string(i + 1);
    cam.hamlet = kHamlets[i % 3];
    cam.name = std::string("Camera ") + std::to_string(i + 1);
    cam.background = kBackgrounds[i % 4];
    cam.noise = 2.5 + (i % 3);
    // People cross now and then: two walkers per loop at staggered times, one vehicle.
    const double offset = (i * 3.7);
    Actor p1;
    p1.kind = ActorKind::person;
    p1.start_s = std::fmod(offset, duration_s * 0.5);
    p1.duration_s = std::min(9.0, duration_s * 0.3);
    p1.from_x = 0.08;
    p1.from_y = 0.82;
    p1.to_x = 0.9;
    p1.to_y = 0.72;
    p1.size = 0.32;
    cam.actors.push_back(p1);
    Actor v;
    v.kind = ActorKind::vehicle;
    v.start_s = std::fmod(offset + duration_s * 0.5, duration_s * 0.9);
    v.duration_s = std::min(5.0, duration_s * 0.15);
    v.from_x = 1.1;
    v.from_y = 0.9;
    v.to_x = -0.1;
    v.to_y = 0.9;
    cam.actors.push_back(v);
    if (i % 4 == 1) {
      Actor h;
      h.kind = ActorKind::headlight;
      h.start_s = duration_s * 0.7;
      h.duration_s = 3;
      cam.actors.push_back(h);
    }
    if (i % 4 == 3) {
      Actor f;
      f.kind = ActorKind::foliage;
      f.start_s = 0;
      f.duration_s = duration_s;
      f.region_x = 0.7;
      f.region_y = 0.2;
      f.region_w = 0.25;
      f.region_h = 0.3;
      cam.actors.push_back(f);
    }
    s.cameras.push_back(std::move(cam));
  }
  return s;
}

std::string cache_key(const Scenario& scenario, const CameraSpec& cam) {
  // FNV-1a over a canonical text of everything that shapes the pixels and the bitstream.
  std::ostringstream text;
  text << "v4|" << scenario.seed << '|' << scenario.fps << '|' << scenario.gop_frames << '|'
       << scenario.duration_s << '|' << cam.id << '|' << static_cast<int>(cam.codec) << '|'
       << cam.main.width << 'x' << cam.main.height << '@' << cam.main.bitrate_kbps << '|'
       << cam.sub.width << 'x' << cam.sub.height << '@' << cam.sub.bitrate_kbps << '|'
       << cam.background << '|' << cam.noise << '|' << cam.file;
  if (cam.night) text << "|night";  // only when set: older caches stay valid
  if (cam.sub_codec) text << "|sub" << static_cast<int>(*cam.sub_codec);
  for (const auto& a : cam.actors) {
    text << '|' << static_cast<int>(a.kind) << ',' << a.start_s << ',' << a.duration_s << ','
         << a.from_x << ',' << a.from_y << ',' << a.to_x << ',' << a.to_y << ',' << a.size << ','
         << a.strength << ',' << a.region_x << ',' << a.region_y << ',' << a.region_w << ','
         << a.region_h;
  }
  std::uint64_t h = 1469598103934665603ULL;
  for (const unsigned char c : text.str()) {
    h ^= c;
    h *= 1099511628211ULL;
  }
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(h));
  return buf;
}

}  // namespace matthan::camsim
