// YAML config loader: strict (unknown keys are errors), reports every problem at once with
// file, line and key, and resolves ${ENV} references for secrets.
#include "matthan/core/config.hpp"

#include <yaml-cpp/yaml.h>

#include <cmath>
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

std::string_view to_string(AlertChannelConfig::Kind kind) {
  switch (kind) {
    case AlertChannelConfig::Kind::webhook:
      return "webhook";
    case AlertChannelConfig::Kind::telegram:
      return "telegram";
    case AlertChannelConfig::Kind::zalo:
      return "zalo";
  }
  return "?";
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
               {"listen", "data_dir", "time_zone", "log_file", "log_level", "heartbeat_s",
                "public_url", "tls_cert", "tls_key", "insecure_listen"});
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
    if (auto v = str(node, "server", "time_zone")) {
      // Armed hours are read in this zone: an unknown name would silently mean UTC.
      static const std::regex tz_re("^[A-Za-z0-9_+-]+(/[A-Za-z0-9_+-]+)*$");
      if (!std::regex_match(*v, tz_re) || !std::ifstream("/usr/share/zoneinfo/" + *v)) {
        error(node["time_zone"], "server.time_zone",
              "unknown time zone '" + *v + "' (e.g. Asia/Ho_Chi_Minh; see /usr/share/zoneinfo)");
      } else {
        server.time_zone = *v;
      }
    }
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
    if (auto v = str(node, "server", "public_url")) {
      if (!v->starts_with("http://") && !v->starts_with("https://")) {
        error(node["public_url"], "server.public_url", "must start with http:// or https://");
      } else {
        server.public_url = *v;
      }
    }
    for (const char* key : {"tls_cert", "tls_key"}) {
      auto v = str(node, "server", key);
      if (!v) continue;
      if (!std::ifstream(*v)) {
        error(node[key], std::string("server.") + key, "cannot read '" + *v + "'");
        continue;
      }
      (std::string(key) == "tls_cert" ? server.tls_cert : server.tls_key) = *v;
    }
    if (server.tls_cert.empty() != server.tls_key.empty()) {
      error(node, "server", "tls_cert and tls_key go together");
    }
    if (auto v = boolean(node, "server", "insecure_listen")) server.insecure_listen = *v;
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

  // A polygon in relative coordinates: at least 3 points in 0..1, an area, no crossing edges.
  std::optional<Polygon> polygon(const YAML::Node& poly, const std::string& path) {
    static const std::string example = "e.g. [[0, 0], [1, 0], [1, 0.1]]";
    Polygon points;
    bool ok = poly.IsSequence() && poly.size() >= 3;
    for (std::size_t k = 0; ok && k < poly.size(); ++k) {
      const auto pt = poly[k];
      if (!pt.IsSequence() || pt.size() != 2) {
        ok = false;
        break;
      }
      try {
        points.emplace_back(pt[0].as<double>(), pt[1].as<double>());
      } catch (const YAML::Exception&) {
        ok = false;
      }
    }
    if (!ok) {
      error(poly, path, "a polygon is a list of at least 3 [x, y] points, " + example);
      return std::nullopt;
    }
    for (std::size_t k = 0; k < points.size(); ++k) {
      const auto [x, y] = points[k];
      if (x < 0 || x > 1 || y < 0 || y > 1) {
        error(poly[k], path,
              "point " + std::to_string(k + 1) +
                  " is outside the picture: coordinates are relative, between 0 and 1");
        return std::nullopt;
      }
    }
    double area2 = 0;
    for (std::size_t i = 0, j = points.size() - 1; i < points.size(); j = i++) {
      area2 += points[j].first * points[i].second - points[i].first * points[j].second;
    }
    if (std::abs(area2) / 2 < 1e-4) {
      error(poly, path, "the polygon has (almost) no area: are its points on one line?");
      return std::nullopt;
    }
    // Edges that cross make the inside ambiguous (a bow tie): reject rather than guess.
    auto cross = [](std::pair<double, double> o, std::pair<double, double> a,
                    std::pair<double, double> b) {
      return (a.first - o.first) * (b.second - o.second) -
             (a.second - o.second) * (b.first - o.first);
    };
    const std::size_t n = points.size();
    for (std::size_t i = 0; i < n; ++i) {
      for (std::size_t j = i + 1; j < n; ++j) {
        if (j == i + 1 || (i == 0 && j == n - 1)) continue;  // neighbours share a point
        const auto a = points[i], b = points[(i + 1) % n], c = points[j], d = points[(j + 1) % n];
        const double d1 = cross(c, d, a), d2 = cross(c, d, b), d3 = cross(a, b, c),
                     d4 = cross(a, b, d);
        if (((d1 > 0 && d2 < 0) || (d1 < 0 && d2 > 0)) &&
            ((d3 > 0 && d4 < 0) || (d3 < 0 && d4 > 0))) {
          error(poly, path,
                "edges " + std::to_string(i + 1) + " and " + std::to_string(j + 1) +
                    " cross: list the points in order around the shape");
          return std::nullopt;
        }
      }
    }
    return points;
  }

  // Armed hours: "22:00-05:00" or a list of such ranges.
  Schedule schedule(const YAML::Node& node, const std::string& path) {
    Schedule out;
    std::vector<YAML::Node> items;
    if (node.IsScalar()) {
      items.push_back(node);
    } else if (node.IsSequence()) {
      for (const auto& n : node) items.push_back(n);
    } else {
      error(node, path, "must be \"HH:MM-HH:MM\" or a list of them");
      return out;
    }
    for (const auto& item : items) {
      std::pair<int, int> range;
      std::string why;
      if (!item.IsScalar() || !parse_time_range(item.Scalar(), &range, &why)) {
        error(item, path, why.empty() ? "must be HH:MM-HH:MM" : why);
      } else {
        out.ranges.push_back(range);
      }
    }
    return out;
  }

  std::vector<std::string> string_list(const YAML::Node& map, const std::string& path,
                                       const std::string& key) {
    std::vector<std::string> out;
    const auto node = map[key];
    if (!node.IsDefined() || node.IsNull()) return out;
    if (!node.IsSequence()) {
      error(node, join(path, key), "must be a list, e.g. [a, b]");
      return out;
    }
    for (const auto& item : node) {
      if (!item.IsScalar()) {
        error(item, join(path, key), "must be a list of text values");
      } else {
        out.push_back(item.Scalar());
      }
    }
    return out;
  }

  void parse_alert(const YAML::Node& node, const std::string& path, AlertChannelConfig& ch) {
    if (!node.IsMap()) {
      error(node, path, "must be a mapping with name and type");
      return;
    }
    check_keys(node, path,
               {"name", "type", "url", "bot_token", "chat_id", "access_token", "user_id", "cameras",
                "zones", "types", "armed_only", "snapshot", "timeout_ms", "max_attempts",
                "escalate_after_s", "escalate_to", "escalation_only"});
    ch.name = str(node, path, "name").value_or("");
    if (ch.name.empty()) error(node, path + ".name", "is required");
    const auto type = str(node, path, "type");
    if (!type) {
      error(node, path + ".type", "is required (webhook, telegram or zalo)");
    } else if (*type == "webhook") {
      ch.kind = AlertChannelConfig::Kind::webhook;
    } else if (*type == "telegram") {
      ch.kind = AlertChannelConfig::Kind::telegram;
      ch.url = "https://api.telegram.org";
    } else if (*type == "zalo") {
      ch.kind = AlertChannelConfig::Kind::zalo;
      ch.url = "https://openapi.zalo.me";
    } else {
      error(node["type"], path + ".type", "must be webhook, telegram or zalo");
    }
    if (auto u = str(node, path, "url")) {
      if (!u->starts_with("http://") && !u->starts_with("https://")) {
        error(node["url"], path + ".url", "must start with http:// or https://");
      }
      ch.url = *u;
    }
    ch.bot_token = str(node, path, "bot_token").value_or("");
    ch.chat_id = str(node, path, "chat_id").value_or("");
    ch.access_token = str(node, path, "access_token").value_or("");
    ch.user_id = str(node, path, "user_id").value_or("");
    using K = AlertChannelConfig::Kind;
    if (type && ch.kind == K::webhook && ch.url.empty()) {
      error(node, path + ".url", "is required for a webhook");
    }
    if (type && ch.kind == K::telegram && (ch.bot_token.empty() || ch.chat_id.empty())) {
      error(node, path, "a telegram channel needs bot_token and chat_id");
    }
    if (type && ch.kind == K::zalo && (ch.access_token.empty() || ch.user_id.empty())) {
      error(node, path, "a zalo channel needs access_token and user_id");
    }
    ch.cameras = string_list(node, path, "cameras");
    ch.zones = string_list(node, path, "zones");
    ch.types = string_list(node, path, "types");
    if (auto v = boolean(node, path, "armed_only")) ch.armed_only = *v;
    if (auto v = boolean(node, path, "snapshot")) ch.snapshot = *v;
    if (auto v = num<int>(node, path, "timeout_ms", 200, 120000)) ch.timeout_ms = *v;
    if (auto v = num<int>(node, path, "max_attempts", 1, 100)) ch.max_attempts = *v;
    if (auto v = num<int>(node, path, "escalate_after_s", 0, 86400)) ch.escalate_after_s = *v;
    if (auto v = str(node, path, "escalate_to")) ch.escalate_to = *v;
    if (auto v = boolean(node, path, "escalation_only")) ch.escalation_only = *v;
  }

  void parse_recording(const YAML::Node& node, RecordingConfig& r) {
    if (!node.IsMap()) {
      error(node, "recording", "must be a mapping");
      return;
    }
    check_keys(node, "recording",
               {"enabled", "dir", "segment_s", "fragment_s", "sync", "sub_stream", "retention_days",
                "event_retention_days", "max_mb", "min_free_mb", "retention_interval_s"});
    if (auto v = boolean(node, "recording", "enabled")) r.enabled = *v;
    if (auto v = str(node, "recording", "dir")) r.dir = *v;
    if (auto v = num<double>(node, "recording", "segment_s", 2.0, 3600.0)) r.segment_s = *v;
    if (auto v = num<double>(node, "recording", "fragment_s", 0.2, 10.0)) r.fragment_s = *v;
    if (auto v = boolean(node, "recording", "sync")) r.sync = *v;
    if (auto v = boolean(node, "recording", "sub_stream")) r.sub_stream = *v;
    if (auto v = num<double>(node, "recording", "retention_days", 0.0001, 3650.0))
      r.retention_days = *v;
    if (auto v = num<double>(node, "recording", "event_retention_days", 0.0001, 3650.0))
      r.event_retention_days = *v;
    if (auto v = num<double>(node, "recording", "max_mb", 0.0, 1e9)) r.max_mb = *v;
    if (auto v = num<double>(node, "recording", "min_free_mb", 0.0, 1e9)) r.min_free_mb = *v;
    if (auto v = num<double>(node, "recording", "retention_interval_s", 0.5, 86400.0))
      r.retention_interval_s = *v;
  }

  // A local calendar day, "YYYY-MM-DD".
  std::optional<std::string> date(const YAML::Node& map, const std::string& path,
                                  const std::string& key) {
    auto v = str(map, path, key);
    if (!v) return std::nullopt;
    static const std::regex day_re("^(\\d{4})-(\\d{2})-(\\d{2})$");
    std::smatch m;
    // A real calendar day (2026-02-30 is not), 1970 to 9998.
    const auto real_day = [&] {
      const int y = std::stoi(m[1]), mo = std::stoi(m[2]), d = std::stoi(m[3]);
      static constexpr int kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
      const bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
      return y >= 1970 && y <= 9998 && mo >= 1 && mo <= 12 && d >= 1 &&
             d <= kDays[mo - 1] + (mo == 2 && leap ? 1 : 0);
    };
    if (!std::regex_match(*v, m, day_re) || !real_day()) {
      error(map[key], join(path, key), "must be a date YYYY-MM-DD (got '" + *v + "')");
      return std::nullopt;
    }
    return v;
  }

  void parse_organisation(const YAML::Node& node, OrganisationConfig& org) {
    if (!node.IsMap()) {
      error(node, "organisation", "must be a mapping");
      return;
    }
    check_keys(node, "organisation", {"province", "communes"});
    if (const auto p = node["province"]; p.IsDefined()) {
      if (!p.IsMap()) {
        error(p, "organisation.province", "must be a mapping with code and name");
      } else {
        check_keys(p, "organisation.province", {"code", "name"});
        org.province_code = str(p, "organisation.province", "code").value_or("");
        org.province_name = str(p, "organisation.province", "name").value_or("");
      }
    }
    const auto list = node["communes"];
    if (!list.IsDefined() || list.IsNull()) return;
    if (!list.IsSequence()) {
      error(list, "organisation.communes", "must be a list");
      return;
    }
    std::set<std::string> codes;
    for (std::size_t i = 0; i < list.size(); ++i) {
      const std::string path = "organisation.communes[" + std::to_string(i) + "]";
      const auto c = list[i];
      if (!c.IsMap()) {
        error(c, path, "must be a mapping");
        continue;
      }
      check_keys(c, path, {"code", "name", "model", "former", "hamlets"});
      CommuneConfig commune;
      commune.code = str(c, path, "code").value_or("");
      commune.name = str(c, path, "name").value_or("");
      commune.model = str(c, path, "model").value_or("");
      if (commune.code.empty()) error(c, path + ".code", "is required");
      if (commune.name.empty()) error(c, path + ".name", "is required");
      if (!commune.code.empty() && !codes.insert(commune.code).second)
        error(c["code"], path + ".code", "duplicate commune code '" + commune.code + "'");
      if (const auto f = c["former"]; f.IsDefined() && !f.IsNull()) {
        if (!f.IsSequence()) error(f, path + ".former", "must be a list");
        for (std::size_t k = 0; f.IsSequence() && k < f.size(); ++k) {
          const std::string fp = path + ".former[" + std::to_string(k) + "]";
          if (!f[k].IsMap()) {
            error(f[k], fp, "must be a mapping with code, name and until");
            continue;
          }
          check_keys(f[k], fp, {"code", "name", "until"});
          FormerName former;
          former.code = str(f[k], fp, "code").value_or("");
          former.name = str(f[k], fp, "name").value_or("");
          former.until = date(f[k], fp, "until").value_or("");
          if (former.code.empty() || former.name.empty() || former.until.empty())
            error(f[k], fp, "needs code, name and until (the first day of the next name)");
          else if (!codes.insert(former.code).second)
            error(f[k]["code"], fp + ".code", "code '" + former.code + "' is used twice");
          if (!commune.former.empty() && former.until <= commune.former.back().until)
            error(f[k]["until"], fp + ".until", "former names go oldest first");
          commune.former.push_back(std::move(former));
        }
      }
      if (const auto h = c["hamlets"]; h.IsDefined() && !h.IsNull()) {
        if (!h.IsSequence()) error(h, path + ".hamlets", "must be a list");
        std::set<std::string> hamlet_codes;
        for (std::size_t k = 0; h.IsSequence() && k < h.size(); ++k) {
          const std::string hp = path + ".hamlets[" + std::to_string(k) + "]";
          if (!h[k].IsMap()) {
            error(h[k], hp, "must be a mapping with code and name");
            continue;
          }
          check_keys(h[k], hp, {"code", "name"});
          HamletConfig hamlet;
          hamlet.code = str(h[k], hp, "code").value_or("");
          hamlet.name = str(h[k], hp, "name").value_or(hamlet.code);
          if (hamlet.code.empty()) error(h[k], hp + ".code", "is required");
          if (!hamlet.code.empty() && !hamlet_codes.insert(hamlet.code).second)
            error(h[k]["code"], hp + ".code", "duplicate hamlet code '" + hamlet.code + "'");
          commune.hamlets.push_back(std::move(hamlet));
        }
      }
      org.communes.push_back(std::move(commune));
    }
  }

  void parse_camera(const YAML::Node& node, const std::string& path, CameraConfig& cam,
                    const CameraConfig& defaults) {
    cam = defaults;
    if (!node.IsMap()) {
      error(node, path, "must be a mapping");
      return;
    }
    check_keys(node, path,
               {"id",
                "name",
                "commune",
                "hamlet",
                "site",
                "brand",
                "host",
                "port",
                "username",
                "password",
                "channel",
                "main_url",
                "sub_url",
                "transport",
                "rtsp_client",
                "analysis_fps",
                "enabled",
                "connect_timeout_ms",
                "stall_timeout_ms",
                "masks",
                "zones",
                "armed",
                "retention_days",
                "event_retention_days",
                "model",
                "owner",
                "installed",
                "funding",
                "lat",
                "lon",
                "removed"});
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
    if (auto r = str(node, path, "rtsp_client")) {
      if (*r == "builtin" || *r == "libavformat") {
        cam.builtin_rtsp = *r == "builtin";
      } else {
        error(node["rtsp_client"], path + ".rtsp_client", "must be builtin or libavformat");
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
    if (auto d = num<double>(node, path, "retention_days", 0.0001, 3650.0)) cam.retention_days = *d;
    cam.model = str(node, path, "model").value_or("");
    if (auto v = str(node, path, "owner")) {
      static const std::set<std::string> owners{"model", "household", "business", "agency"};
      if (!owners.contains(*v)) {
        error(node["owner"], path + ".owner", "must be model, household, business or agency");
      } else {
        cam.owner = *v;
      }
    }
    if (auto v = date(node, path, "installed")) cam.installed = *v;
    if (auto v = date(node, path, "removed")) cam.removed = *v;
    cam.funding = str(node, path, "funding").value_or("");
    cam.lat = num<double>(node, path, "lat", -90.0, 90.0);
    cam.lon = num<double>(node, path, "lon", -180.0, 180.0);
    if (auto d = num<double>(node, path, "event_retention_days", 0.0001, 3650.0))
      cam.event_retention_days = *d;

    if (const auto masks = node["masks"]; masks.IsDefined() && !masks.IsNull()) {
      if (!masks.IsSequence()) {
        error(masks, path + ".masks", "must be a list of polygons");
      } else {
        for (std::size_t m = 0; m < masks.size(); ++m) {
          if (auto poly = polygon(masks[m], path + ".masks[" + std::to_string(m) + "]")) {
            cam.masks.push_back(std::move(*poly));
          }
        }
      }
    }
    if (const auto armed = node["armed"]; armed.IsDefined() && !armed.IsNull()) {
      cam.armed = schedule(armed, path + ".armed");
    }
    if (const auto zones = node["zones"]; zones.IsDefined() && !zones.IsNull()) {
      if (!zones.IsSequence()) {
        error(zones, path + ".zones", "must be a list of zones (name, polygon, ...)");
      } else {
        std::set<std::string> names;
        for (std::size_t z = 0; z < zones.size(); ++z) {
          const std::string zpath = path + ".zones[" + std::to_string(z) + "]";
          const auto zn = zones[z];
          if (!zn.IsMap()) {
            error(zn, zpath, "must be a mapping with name and polygon");
            continue;
          }
          check_keys(zn, zpath, {"name", "polygon", "min_area", "armed"});
          Zone zone;
          static const std::regex name_re("^[a-z0-9][a-z0-9_-]{0,31}$");
          if (auto name = str(zn, zpath, "name")) {
            if (!std::regex_match(*name, name_re)) {
              error(zn["name"], zpath + ".name", "must be 1-32 characters of a-z, 0-9, '-' or '_'");
            } else if (*name == "all" || !names.insert(*name).second) {
              error(zn["name"], zpath + ".name",
                    "'" + *name + "' is used twice (or is the reserved name 'all')");
            }
            zone.name = *name;
          } else {
            error(zn, zpath + ".name", "is required");
          }
          if (zn["polygon"].IsDefined()) {
            if (auto poly = polygon(zn["polygon"], zpath + ".polygon")) {
              zone.polygon = std::move(*poly);
            }
          } else {
            error(zn, zpath + ".polygon", "is required");
          }
          if (auto a = num<double>(zn, zpath, "min_area", 0.00001, 0.5)) zone.min_area = *a;
          if (const auto armed = zn["armed"]; armed.IsDefined() && !armed.IsNull()) {
            zone.armed = schedule(armed, zpath + ".armed");
            zone.has_schedule = true;
          }
          cam.zones.push_back(std::move(zone));
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
    check_keys(root, "",
               {"node_id", "server", "defaults", "cameras", "analytics", "alerts", "recording",
                "organisation"});
    if (auto id = str(root, "", "node_id")) {
      static const std::regex id_re("^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$");
      if (!std::regex_match(*id, id_re)) {
        error(root["node_id"], "node_id",
              "must be 1-64 characters of A-Z, a-z, 0-9, '.', '-', '_'");
      }
      config.node_id = *id;
    }
    if (root["server"].IsDefined()) parse_server(root["server"], config.server);
    if (root["organisation"].IsDefined())
      parse_organisation(root["organisation"], config.organisation);
    if (root["analytics"].IsDefined()) parse_analytics(root["analytics"], config.analytics);
    if (root["recording"].IsDefined()) parse_recording(root["recording"], config.recording);

    CameraConfig defaults;
    if (const auto d = root["defaults"]; d.IsDefined()) {
      if (!d.IsMap()) {
        error(d, "defaults", "must be a mapping");
      } else {
        check_keys(
            d, "defaults",
            {"transport", "rtsp_client", "analysis_fps", "connect_timeout_ms", "stall_timeout_ms"});
        if (auto t = str(d, "defaults", "transport")) {
          if (*t == "udp") {
            defaults.transport = Transport::udp;
          } else if (*t != "tcp") {
            error(d["transport"], "defaults.transport", "must be tcp or udp");
          }
        }
        if (auto r = str(d, "defaults", "rtsp_client")) {
          if (*r == "libavformat") {
            defaults.builtin_rtsp = false;
          } else if (*r != "builtin") {
            error(d["rtsp_client"], "defaults.rtsp_client", "must be builtin or libavformat");
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
    // With an organisation, every camera names one of its communes (by its current code) and,
    // where the commune lists hamlets, one of them: a typo would drop it from the reports.
    for (std::size_t i = 0; !config.organisation.communes.empty() && i < config.cameras.size();
         ++i) {
      const auto& cam = config.cameras[i];
      const std::string path = "cameras[" + std::to_string(i) + "]";
      const auto* commune = config.organisation.commune(cam.commune);
      if (commune == nullptr) {
        error(cams[i]["commune"].IsDefined() ? cams[i]["commune"] : cams[i], path + ".commune",
              "no commune '" + cam.commune + "' in organisation.communes");
        continue;
      }
      if (commune->code != cam.commune) {
        error(cams[i]["commune"], path + ".commune",
              "'" + cam.commune + "' is the former code of " + commune->name + "; use '" +
                  commune->code + "'");
      }
      if (commune->hamlets.empty()) continue;
      bool found = false;
      for (const auto& h : commune->hamlets) found = found || h.code == cam.hamlet;
      if (!found) {
        error(cams[i]["hamlet"].IsDefined() ? cams[i]["hamlet"] : cams[i], path + ".hamlet",
              "no hamlet '" + cam.hamlet + "' in commune " + commune->code + " (" + commune->name +
                  ")");
      }
    }
    const auto alerts = root["alerts"];
    if (alerts.IsDefined() && !alerts.IsNull()) {
      if (!alerts.IsSequence()) {
        error(alerts, "alerts", "must be a list of channels");
      } else {
        std::set<std::string> names;
        for (std::size_t i = 0; i < alerts.size(); ++i) {
          const std::string path = "alerts[" + std::to_string(i) + "]";
          AlertChannelConfig ch;
          parse_alert(alerts[i], path, ch);
          if (!ch.name.empty() && !names.insert(ch.name).second) {
            error(alerts[i]["name"], path + ".name", "duplicate channel name '" + ch.name + "'");
          }
          config.alerts.push_back(std::move(ch));
        }
      }
    }
    // Alert filters must name cameras and zones that exist: a typo would silence an alert.
    for (std::size_t i = 0; i < config.alerts.size(); ++i) {
      const auto& ch = config.alerts[i];
      const std::string at = "alerts[" + std::to_string(i) + "]";
      if (ch.escalate_after_s > 0 || !ch.escalate_to.empty()) {
        bool found = false;
        for (const auto& other : config.alerts) found = found || other.name == ch.escalate_to;
        if (ch.escalate_after_s <= 0 || ch.escalate_to.empty()) {
          error(alerts[i], at, "escalate_after_s and escalate_to go together");
        } else if (!found || ch.escalate_to == ch.name) {
          error(alerts[i]["escalate_to"], at + ".escalate_to",
                "no other alert channel named '" + ch.escalate_to + "'");
        }
      }
      for (const auto& id : ch.cameras) {
        bool found = false;
        for (const auto& c : config.cameras) found = found || c.id == id;
        if (!found) {
          error(alerts[i]["cameras"], "alerts[" + std::to_string(i) + "].cameras",
                "no camera '" + id + "'");
        }
      }
      for (const auto& z : ch.zones) {
        bool found = false;
        for (const auto& c : config.cameras) {
          for (const auto& zone : c.zones) found = found || zone.name == z;
        }
        if (!found) {
          error(alerts[i]["zones"], "alerts[" + std::to_string(i) + "].zones",
                "no camera has a zone '" + z + "'");
        }
      }
    }
    // Cameras taken out (`removed: DATE`) are not run; the reports still count them for the
    // days they served.
    for (auto it = config.cameras.begin(); it != config.cameras.end();) {
      if (it->removed.empty()) {
        ++it;
      } else {
        config.retired.push_back(std::move(*it));
        it = config.cameras.erase(it);
      }
    }
    return config;
  }

 private:
  std::string file_;
  EnvLookup env_;
};

}  // namespace

namespace {

// The admin UI's edits (docs/ref/config.md "organisation"): the organisation replaced, inventory
// keys of cameras set, before the config is read. Errors name the key as in the config.
// The edits are data: a "${VAR}" in them must not read the server's environment (secrets).
void refuse_variables(const YAML::Node& node, const std::string& name,
                      std::vector<ConfigError>& errors) {
  if (node.IsScalar() && node.Scalar().find("${") != std::string::npos) {
    errors.push_back({name, node.Mark().line + 1, "(overlay)",
                      "'${' is not allowed in edits: '" + node.Scalar() + "'"});
  } else if (node.IsSequence() || node.IsMap()) {
    for (const auto& item : node) refuse_variables(node.IsMap() ? item.second : item, name, errors);
  }
}

void apply_overlay(YAML::Node& root, const YAML::Node& overlay, const std::string& name,
                   bool strict, std::vector<ConfigError>& errors) {
  refuse_variables(overlay, name, errors);
  if (!errors.empty()) return;
  if (!overlay.IsMap()) {
    errors.push_back({name, overlay.Mark().line + 1, "(overlay)", "must be a mapping"});
    return;
  }
  for (const auto& kv : overlay) {
    const auto key = kv.first.as<std::string>();
    if (key != "organisation" && key != "cameras")
      errors.push_back({name, kv.first.Mark().line + 1, key, "unknown key"});
  }
  if (overlay["organisation"].IsDefined()) root["organisation"] = overlay["organisation"];
  const auto cams = overlay["cameras"];
  if (!cams.IsDefined() || cams.IsNull()) return;
  if (!cams.IsMap()) {
    errors.push_back({name, cams.Mark().line + 1, "cameras", "must map camera ids to keys"});
    return;
  }
  const auto& keys = overlay_camera_keys();
  for (const auto& kv : cams) {
    const auto id = kv.first.as<std::string>();
    // Fetched afresh: yaml-cpp handles share their node, so none is kept across a replacement.
    auto list = root["cameras"];
    if (!kv.second.IsMap()) {
      errors.push_back({name, kv.second.Mark().line + 1, "cameras." + id, "must be a mapping"});
      continue;
    }
    const auto flag = [&](const char* key) {
      const auto v = kv.second[key];  // a zombie node when absent: only IsDefined() is safe
      return v.IsDefined() && v.IsScalar() && v.Scalar() == "true";
    };
    const bool added = flag("added");
    const bool removed = flag("removed");
    std::optional<std::size_t> at;
    for (std::size_t i = 0; list.IsSequence() && i < list.size(); ++i) {
      const auto cam = list[i];
      if (cam.IsMap() && cam["id"].IsScalar() && cam["id"].Scalar() == id) at = i;
    }
    if (added && at) {
      // Added in the page, and since written into the file too: the file wins.
      if (strict)
        errors.push_back({name, kv.first.Mark().line + 1, "cameras." + id,
                          "a camera with this id exists already"});
      continue;
    }
    if (!added && !at) {
      // A camera since removed from the config: an error when editing, ignored when loading
      // (the server must still start).
      if (strict)
        errors.push_back({name, kv.first.Mark().line + 1, "cameras." + id, "no such camera"});
      continue;
    }
    const auto removed_on = kv.second["removed_on"];
    const bool dated = removed && removed_on.IsDefined() && removed_on.IsScalar();
    if (removed && !added && !dated) {
      // Taken out with no day: dropped. With a day it is kept as `removed: DAY` (below): not
      // run, and the reports still count the days it served.
      YAML::Node kept(YAML::NodeType::Sequence);
      for (std::size_t i = 0; i < list.size(); ++i) {
        if (i != *at) kept.push_back(list[i]);
      }
      root["cameras"] = kept;
      continue;
    }
    YAML::Node cam;
    if (added) {
      cam = YAML::Node(YAML::NodeType::Map);
      cam["id"] = id;
    } else {
      cam = list[*at];
    }
    if (removed && added && !dated) continue;  // added in the page and taken out: nothing kept
    if (removed) cam["removed"] = removed_on.Scalar();
    for (const auto& field : kv.second) {
      const auto k = field.first.as<std::string>();
      if (k == "added" || k == "removed" || k == "removed_on") continue;
      if (!keys.contains(k)) {
        errors.push_back({name, field.first.Mark().line + 1, "cameras." + id + "." + k,
                          "cannot be set here (inventory and connection keys only)"});
        continue;
      }
      if (field.second.IsNull())
        cam.remove(k);
      else
        cam[k] = field.second;
    }
    if (added) {
      if (!list.IsSequence()) root["cameras"] = YAML::Node(YAML::NodeType::Sequence);
      root["cameras"].push_back(cam);
    }
  }
}

}  // namespace

std::expected<Config, std::vector<ConfigError>> load_config_text(
    const std::string& text, const std::string& file_name, EnvLookup env,
    const std::string& overlay_text, const std::string& overlay_name, bool strict_overlay) {
  YAML::Node root;
  try {
    root = YAML::Load(text);
  } catch (const YAML::ParserException& e) {
    return std::unexpected(
        std::vector<ConfigError>{{file_name, e.mark.line + 1, "(syntax)", e.msg}});
  }
  if (!overlay_text.empty()) {
    std::vector<ConfigError> errors;
    try {
      apply_overlay(root, YAML::Load(overlay_text), overlay_name, strict_overlay, errors);
    } catch (const YAML::Exception& e) {
      errors.push_back({overlay_name, e.mark.line + 1, "(syntax)", e.msg});
    }
    if (!errors.empty()) return std::unexpected(std::move(errors));
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

const std::set<std::string>& overlay_camera_keys() {
  // Inventory keys, and the connection settings an admin changes in the page (the camera's
  // masks, zones and schedule stay in the config file).
  static const std::set<std::string> keys{"model",
                                          "owner",
                                          "installed",
                                          "funding",
                                          "lat",
                                          "lon",
                                          "name",
                                          "commune",
                                          "hamlet",
                                          "site",
                                          "brand",
                                          "host",
                                          "port",
                                          "username",
                                          "password",
                                          "channel",
                                          "main_url",
                                          "sub_url",
                                          "transport",
                                          "analysis_fps",
                                          "enabled",
                                          "retention_days",
                                          "event_retention_days"};
  return keys;
}

std::string inventory_overlay_path(const std::string& data_dir) {
  return data_dir + "/inventory.json";
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
  // The admin UI's edits live beside the database: where the config (read once without them,
  // ${VARS} expanded) says.
  auto plain = load_config_text(buffer.str(), path, env);
  std::string data_dir = ServerConfig{}.data_dir;
  if (plain) {
    data_dir = plain->server.data_dir;
  } else {
    // It may need the edits (a hamlet added in the page): try with them where it points.
    try {
      const auto root = YAML::Load(buffer.str());
      if (root.IsMap() && root["server"].IsMap() && root["server"]["data_dir"].IsScalar())
        data_dir = root["server"]["data_dir"].Scalar();
    } catch (const YAML::Exception&) {
      return plain;
    }
  }
  const auto overlay_path = inventory_overlay_path(data_dir);
  std::ifstream o(overlay_path);
  if (!o) return plain;
  std::stringstream overlay;
  overlay << o.rdbuf();
  return load_config_text(buffer.str(), path, env, overlay.str(), overlay_path, false);
}

const CommuneConfig* OrganisationConfig::commune(const std::string& code) const {
  for (const auto& c : communes) {
    if (c.code == code) return &c;
    for (const auto& f : c.former) {
      if (f.code == code) return &c;
    }
  }
  return nullptr;
}

}  // namespace matthan
