// YAML config loader: strict (unknown keys are errors), reports every problem at once with
// file, line and key, and resolves ${ENV} references for secrets.
#include "matthan/core/config.hpp"

#include <yaml-cpp/yaml.h>

#include <cstdlib>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>

#include "matthan/core/url.hpp"

namespace matthan {

std::string ConfigError::to_string() const {
  std::ostringstream out;
  out << file;
  if (line > 0) out << ":" << line;
  out << ": " << key << ": " << message;
  return out.str();
}

std::optional<std::string> process_env(const std::string& name) {
  const char* value = std::getenv(name.c_str());
  if (value == nullptr) return std::nullopt;
  return std::string(value);
}

namespace {

class Parser {
 public:
  Parser(std::string file, EnvLookup env) : file_(std::move(file)), env_(env) {}

  std::vector<ConfigError> errors;

  void error(const YAML::Node& node, const std::string& key, const std::string& message) {
    const int line = node.IsDefined() && node.Mark().line >= 0 ? node.Mark().line + 1 : 0;
    errors.push_back({file_, line, key, message});
  }

  // Reports keys of a map that are not in `allowed`.
  void check_keys(const YAML::Node& map, const std::string& path,
                  const std::set<std::string>& allowed) {
    for (const auto& kv : map) {
      const auto key = kv.first.as<std::string>();
      if (!allowed.contains(key)) {
        std::string list;
        for (const auto& a : allowed) list += (list.empty() ? "" : ", ") + a;
        error(kv.first, join(path, key), "unknown key (known keys: " + list + ")");
      }
    }
  }

  static std::string join(const std::string& path, const std::string& key) {
    return path.empty() ? key : path + "." + key;
  }

  // Expands ${NAME} from the environment; a missing variable is an error.
  std::string expand(const YAML::Node& node, const std::string& key, const std::string& text) {
    static const std::regex ref(R"(\$\{([A-Za-z_][A-Za-z0-9_]*)\})");
    std::string out;
    auto begin = std::sregex_iterator(text.begin(), text.end(), ref);
    std::size_t last = 0;
    for (auto it = begin; it != std::sregex_iterator(); ++it) {
      out += text.substr(last, it->position() - last);
      const std::string name = (*it)[1];
      if (auto value = env_(name)) {
        out += *value;
      } else {
        error(node, key, "environment variable " + name + " is not set");
      }
      last = it->position() + it->length();
    }
    out += text.substr(last);
    return out;
  }

  std::optional<std::string> str(const YAML::Node& map, const std::string& path,
                                 const std::string& key) {
    const auto node = map[key];
    if (!node.IsDefined() || node.IsNull()) return std::nullopt;
    if (!node.IsScalar()) {
      error(node, join(path, key), "must be a text value");
      return std::nullopt;
    }
    return expand(node, join(path, key), node.Scalar());
  }

  template <typename T>
  std::optional<T> num(const YAML::Node& map, const std::string& path, const std::string& key,
                       T min, T max) {
    const auto node = map[key];
    if (!node.IsDefined() || node.IsNull()) return std::nullopt;
    T value{};
    try {
      value = node.as<T>();
    } catch (const YAML::Exception&) {
      error(node, join(path, key), "must be a number");
      return std::nullopt;
    }
    if (value < min || value > max) {
      std::ostringstream msg;
      msg << "must be between " << min << " and " << max << " (got " << value << ")";
      error(node, join(path, key), msg.str());
      return std::nullopt;
    }
    return value;
  }

  std::optional<bool> boolean(const YAML::Node& map, const std::string& path,
                              const std::string& key) {
    const auto node = map[key];
    if (!node.IsDefined() || node.IsNull()) return std::nullopt;
    try {
      return node.as<bool>();
    } catch (const YAML::Exception&) {
      error(node, join(path, key), "must be true or false");
      return std::nullopt;
    }
  }

  void parse_server(const YAML::Node& node, ServerConfig& server) {
    if (!node.IsMap()) {
      error(node, "server", "must be a mapping");
      return;
    }
    check_keys(node, "server",
               {"listen", "data_dir", "time_zone", "log_file", "log_level", "heartbeat_s"});
    if (auto listen = str(node, "server", "listen")) {
      const auto colon = listen->rfind(':');
      int port = -1;
      if (colon != std::string::npos) {
        try {
          port = std::stoi(listen->substr(colon + 1));
        } catch (...) {
          port = -1;
        }
      }
      if (colon == std::string::npos || colon == 0 || port < 0 || port > 65535) {
        error(node["listen"], "server.listen", "must be ADDRESS:PORT, e.g. 127.0.0.1:8080");
      } else {
        server.listen_address = listen->substr(0, colon);
        server.listen_port = port;
      }
    }
    if (auto v = str(node, "server", "data_dir")) server.data_dir = *v;
    if (auto v = str(node, "server", "time_zone")) server.time_zone = *v;
    if (auto v = str(node, "server", "log_file")) server.log_file = *v;
    if (auto v = str(node, "server", "log_level")) {
      static const std::set<std::string> levels{"trace", "debug", "info", "warn", "error"};
      if (!levels.contains(*v)) {
        error(node["log_level"], "server.log_level", "must be trace, debug, info, warn or error");
      } else {
        server.log_level = *v;
      }
    }
    if (auto v = num<int>(node, "server", "heartbeat_s", 1, 300)) server.heartbeat_s = *v;
  }

  void parse_analytics(const YAML::Node& node, AnalyticsConfig& a) {
    if (!node.IsMap()) {
      error(node, "analytics", "must be a mapping");
      return;
    }
    check_keys(node, "analytics",
               {"zmq_endpoint", "analysis_height", "threshold_min", "min_area", "min_frames",
                "gap_s", "pre_capture_s", "post_capture_s", "tamper_min_s", "people"});
    if (auto v = str(node, "analytics", "zmq_endpoint")) {
      if (!v->empty() && !v->starts_with("tcp://") && !v->starts_with("ipc://")) {
        error(node["zmq_endpoint"], "analytics.zmq_endpoint",
              "must be empty (off), tcp://HOST:PORT or ipc://PATH");
      }
      a.zmq_endpoint = *v;
    }
    if (auto v = num<int>(node, "analytics", "analysis_height", 90, 720)) a.analysis_height = *v;
    if (auto v = num<double>(node, "analytics", "threshold_min", 2.0, 100.0)) a.threshold_min = *v;
    if (auto v = num<double>(node, "analytics", "min_area", 0.00001, 0.5)) a.min_area = *v;
    if (auto v = num<int>(node, "analytics", "min_frames", 1, 100)) a.min_frames = *v;
    if (auto v = num<double>(node, "analytics", "gap_s", 0.2, 600.0)) a.gap_s = *v;
    if (auto v = num<int>(node, "analytics", "pre_capture_s", 0, 300)) a.pre_capture_s = *v;
    if (auto v = num<int>(node, "analytics", "post_capture_s", 0, 300)) a.post_capture_s = *v;
    if (auto v = num<double>(node, "analytics", "tamper_min_s", 1.0, 3600.0)) a.tamper_min_s = *v;
    if (auto v = boolean(node, "analytics", "people")) a.people = *v;
  }

  void parse_camera(const YAML::Node& node, const std::string& path, CameraConfig& cam,
                    const CameraConfig& defaults) {
    cam = defaults;
    if (!node.IsMap()) {
      error(node, path, "must be a mapping");
      return;
    }
    check_keys(node, path,
               {"id", "name", "commune", "hamlet", "site", "brand", "host", "port", "username",
                "password", "channel", "main_url", "sub_url", "transport", "analysis_fps",
                "enabled", "connect_timeout_ms", "stall_timeout_ms", "masks"});
    static const std::regex id_re("^[a-z0-9][a-z0-9_-]{0,63}$");
    if (auto id = str(node, path, "id")) {
      if (!std::regex_match(*id, id_re)) {
        error(node["id"], path + ".id",
              "must be 1-64 characters of a-z, 0-9, '-' or '_' (it is used in paths and topics)");
      }
      cam.id = *id;
    } else {
      error(node, path + ".id", "is required");
    }
    cam.name = str(node, path, "name").value_or(cam.id);
    cam.commune = str(node, path, "commune").value_or("");
    cam.hamlet = str(node, path, "hamlet").value_or("");
    cam.site = str(node, path, "site").value_or("");
    bool brand_ok = true;
    if (auto b = str(node, path, "brand")) {
      if (auto brand = brand_from_string(*b)) {
        cam.brand = *brand;
      } else {
        brand_ok = false;  // no URL checks below: they would only repeat this error
        error(node["brand"], path + ".brand",
              "unknown brand '" + *b +
                  "' (hikvision, dahua, kbvision, imou, ezviz, uniview, xmeye, generic)");
      }
    }
    cam.host = str(node, path, "host").value_or("");
    if (auto p = num<int>(node, path, "port", 1, 65535)) cam.port = *p;
    cam.username = str(node, path, "username").value_or("");
    cam.password = str(node, path, "password").value_or("");
    if (auto c = num<int>(node, path, "channel", 1, 256)) cam.channel = *c;
    if (auto t = str(node, path, "transport")) {
      if (*t == "tcp") {
        cam.transport = Transport::tcp;
      } else if (*t == "udp") {
        cam.transport = Transport::udp;
      } else {
        error(node["transport"], path + ".transport", "must be tcp or udp");
      }
    }
    if (auto f = num<double>(node, path, "analysis_fps", 0.1, 60.0)) cam.analysis_fps = *f;
    if (auto e = boolean(node, path, "enabled")) cam.enabled = *e;
    if (auto t = num<int>(node, path, "connect_timeout_ms", 500, 120000)) {
      cam.connect_timeout = std::chrono::milliseconds(*t);
    }
    if (auto t = num<int>(node, path, "stall_timeout_ms", 500, 120000)) {
      cam.min_stall_timeout = std::chrono::milliseconds(*t);
    }

    if (const auto masks = node["masks"]; masks.IsDefined() && !masks.IsNull()) {
      if (!masks.IsSequence()) {
        error(masks, path + ".masks", "must be a list of polygons");
      } else {
        for (std::size_t m = 0; m < masks.size(); ++m) {
          const std::string mpath = path + ".masks[" + std::to_string(m) + "]";
          const auto poly = masks[m];
          std::vector<std::pair<double, double>> points;
          bool ok = poly.IsSequence() && poly.size() >= 3;
          for (std::size_t k = 0; ok && k < poly.size(); ++k) {
            const auto pt = poly[k];
            if (!pt.IsSequence() || pt.size() != 2) {
              ok = false;
              break;
            }
            try {
              const double x = pt[0].as<double>();
              const double y = pt[1].as<double>();
              if (x < 0 || x > 1 || y < 0 || y > 1) {
                error(pt, mpath, "points must be relative coordinates between 0 and 1");
              }
              points.emplace_back(x, y);
            } catch (const YAML::Exception&) {
              ok = false;
            }
          }
          if (!ok) {
            error(
                poly, mpath,
                "a polygon is a list of at least 3 [x, y] points, e.g. [[0, 0], [1, 0], [1, 0.1]]");
          } else {
            cam.masks.push_back(std::move(points));
          }
        }
      }
    }

    const auto main_url = str(node, path, "main_url");
    const auto sub_url = str(node, path, "sub_url");
    if (main_url) {
      if (!main_url->starts_with("rtsp://") && !main_url->starts_with("rtsps://")) {
        error(node["main_url"], path + ".main_url", "must start with rtsp:// or rtsps://");
      }
      cam.main_url = with_credentials(*main_url, cam.username, cam.password);
      if (sub_url) {
        if (!sub_url->starts_with("rtsp://") && !sub_url->starts_with("rtsps://")) {
          error(node["sub_url"], path + ".sub_url", "must start with rtsp:// or rtsps://");
        }
        cam.sub_url = with_credentials(*sub_url, cam.username, cam.password);
      }
    } else if (sub_url) {
      error(node["sub_url"], path + ".sub_url", "needs main_url too");
    } else if (!brand_ok) {
    } else if (cam.brand == Brand::generic) {
      error(node, path, "needs main_url (brand generic has no URL preset)");
    } else if (cam.host.empty()) {
      error(node, path + ".host", "is required for brand " + std::string(to_string(cam.brand)));
    } else {
      auto urls =
          preset_urls(cam.brand, cam.host, cam.port, cam.channel, cam.username, cam.password);
      cam.main_url = urls->main;
      cam.sub_url = urls->sub;
    }
  }

  Config parse(const YAML::Node& root) {
    Config config;
    if (!root.IsMap()) {
      error(root, "(top)", "the config must be a mapping with node_id, server and cameras");
      return config;
    }
    check_keys(root, "", {"node_id", "server", "defaults", "cameras", "analytics"});
    if (auto id = str(root, "", "node_id")) {
      static const std::regex id_re("^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$");
      if (!std::regex_match(*id, id_re)) {
        error(root["node_id"], "node_id",
              "must be 1-64 characters of A-Z, a-z, 0-9, '.', '-', '_'");
      }
      config.node_id = *id;
    }
    if (root["server"].IsDefined()) parse_server(root["server"], config.server);
    if (root["analytics"].IsDefined()) parse_analytics(root["analytics"], config.analytics);

    CameraConfig defaults;
    if (const auto d = root["defaults"]; d.IsDefined()) {
      if (!d.IsMap()) {
        error(d, "defaults", "must be a mapping");
      } else {
        check_keys(d, "defaults",
                   {"transport", "analysis_fps", "connect_timeout_ms", "stall_timeout_ms"});
        if (auto t = str(d, "defaults", "transport")) {
          if (*t == "udp") {
            defaults.transport = Transport::udp;
          } else if (*t != "tcp") {
            error(d["transport"], "defaults.transport", "must be tcp or udp");
          }
        }
        if (auto f = num<double>(d, "defaults", "analysis_fps", 0.1, 60.0)) {
          defaults.analysis_fps = *f;
        }
        if (auto t = num<int>(d, "defaults", "connect_timeout_ms", 500, 120000)) {
          defaults.connect_timeout = std::chrono::milliseconds(*t);
        }
        if (auto t = num<int>(d, "defaults", "stall_timeout_ms", 500, 120000)) {
          defaults.min_stall_timeout = std::chrono::milliseconds(*t);
        }
      }
    }

    const auto cams = root["cameras"];
    if (cams.IsDefined() && !cams.IsNull()) {
      if (!cams.IsSequence()) {
        error(cams, "cameras", "must be a list");
      } else {
        std::set<std::string> ids;
        for (std::size_t i = 0; i < cams.size(); ++i) {
          const std::string path = "cameras[" + std::to_string(i) + "]";
          CameraConfig cam;
          parse_camera(cams[i], path, cam, defaults);
          if (!cam.id.empty() && !ids.insert(cam.id).second) {
            error(cams[i]["id"], path + ".id", "duplicate camera id '" + cam.id + "'");
          }
          config.cameras.push_back(std::move(cam));
        }
      }
    }
    return config;
  }

 private:
  std::string file_;
  EnvLookup env_;
};

}  // namespace

std::expected<Config, std::vector<ConfigError>> load_config_text(const std::string& text,
                                                                 const std::string& file_name,
                                                                 EnvLookup env) {
  YAML::Node root;
  try {
    root = YAML::Load(text);
  } catch (const YAML::ParserException& e) {
    return std::unexpected(
        std::vector<ConfigError>{{file_name, e.mark.line + 1, "(syntax)", e.msg}});
  }
  Parser parser(file_name, env);
  Config config;
  try {
    config = parser.parse(root);
  } catch (const YAML::Exception& e) {
    parser.errors.push_back({file_name, e.mark.line + 1, "(structure)", e.msg});
  }
  if (!parser.errors.empty()) return std::unexpected(std::move(parser.errors));
  return config;
}

std::expected<Config, std::vector<ConfigError>> load_config_file(const std::string& path,
                                                                 EnvLookup env) {
  std::ifstream in(path);
  if (!in) {
    return std::unexpected(
        std::vector<ConfigError>{{path, 0, "(file)", "cannot be read (does it exist?)"}});
  }
  std::stringstream buffer;
  buffer << in.rdbuf();
  return load_config_text(buffer.str(), path, env);
}

}  // namespace matthan
