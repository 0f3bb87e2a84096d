// Configuration: YAML in, validated structs out. Every error names the file, line and key.
#pragma once

#include <chrono>
#include <cstdint>
#include <expected>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "matthan/core/types.hpp"
#include "matthan/core/zones.hpp"

namespace matthan {

struct ConfigError {
  std::string file;
  int line = 0;     // 1-based; 0 when the error is not tied to a line
  std::string key;  // dotted path, e.g. "cameras[2].brand"
  std::string message;
  std::string to_string() const;
};

enum class Brand { generic, hikvision, dahua, kbvision, imou, ezviz, uniview, xmeye };

struct CameraConfig {
  std::string id;  // stable key of the camera everywhere (rows, topics, URLs)
  std::string name;
  std::string commune;
  std::string hamlet;
  std::string site;
  Brand brand = Brand::generic;
  std::string host;
  int port = 554;
  std::string username;
  std::string password;  // secret: never logged, never in API answers
  int channel = 1;
  std::string main_url;  // resolved (preset or explicit), credentials included
  std::string sub_url;   // may be empty: then the main stream is analysed
  Transport transport = Transport::tcp;
  bool builtin_rtsp = true;  // rtsp_client: builtin (default) or libavformat
  double analysis_fps = 5.0;
  bool enabled = true;
  std::chrono::milliseconds connect_timeout{5000};
  std::chrono::milliseconds min_stall_timeout{3000};
  // Polygons (relative 0..1 coordinates) where motion is ignored: sky, swaying trees, the OSD
  // clock a camera burns into its picture.
  std::vector<Polygon> masks;
  // Detection zones: when any is set, motion alarms only inside them (docs/ref/config.md).
  std::vector<Zone> zones;
  Schedule armed;  // when events of this camera are alerted; empty: always
  // Inventory, for the operation report (docs/ref/config.md "organisation").
  std::string model;  // the camera's make and model as written on it, e.g. "DS-2CD1023G0E-I"
  std::string owner = "model";  // model (the commune's camera model), household, business, agency
  std::string installed;        // YYYY-MM-DD local; before it the camera is not counted
  std::string removed;  // YYYY-MM-DD local: taken out that day (not run; reports count it before)
  std::string funding;  // e.g. "ngân sách xã", "xã hội hóa"
  std::optional<double> lat, lon;
  std::optional<double> retention_days;        // overrides recording.retention_days
  std::optional<double> event_retention_days;  // overrides recording.event_retention_days
};

struct ServerConfig {
  std::string listen_address = "127.0.0.1";
  int listen_port = 8080;
  std::string data_dir = "./var";
  std::string time_zone = "Asia/Ho_Chi_Minh";
  std::string log_file;  // empty: log to stderr only
  std::string log_level = "info";
  int heartbeat_s = 10;
  std::string public_url;  // how people reach this server (links in alerts); empty: no links
  std::string tls_cert;    // PEM certificate chain; with tls_key: HTTPS and WSS only
  std::string tls_key;     // PEM private key
  // Serving beyond loopback without TLS must be asked for (and is logged at every start).
  bool insecure_listen = false;
};

// Motion detection and event settings shared by all cameras (docs/ref/config.md).
struct AnalyticsConfig {
  std::string zmq_endpoint = "tcp://127.0.0.1:5556";  // empty: no ZeroMQ publishing
  int analysis_height = 180;
  double threshold_min = 14;
  double min_area = 0.0015;
  int min_frames = 2;  // frames with a persisting object (one also there the frame before)
  double gap_s = 3.0;
  int pre_capture_s = 5;
  int post_capture_s = 5;
  double tamper_min_s = 5;  // a covered or defocused lens held this long is a tamper event
  bool people = true;       // label motion events "person" with OpenCV's HOG detector
};

// Recording of the main streams (docs/design/recording.md).
struct RecordingConfig {
  bool enabled = true;
  std::string dir;          // empty: <data_dir>/recordings
  double segment_s = 60;    // a new segment at the first keyframe after this long
  double fragment_s = 1;    // fragment length: at most this is lost to a power cut
  bool sync = true;         // fdatasync every fragment
  bool sub_stream = false;  // also record each camera's sub stream (browser playback of H.265)
  // Retention (docs/design/recording.md): continuous footage is kept this many days, footage
  // overlapping an event (with its pre/post capture) event_retention_days; held footage always.
  double retention_days = 30;
  double event_retention_days = 90;
  double max_mb = 0;          // the recordings volume's byte budget; 0: none
  double min_free_mb = 1024;  // keep at least this free on the volume
  double retention_interval_s = 60;
};

// An outbound alert channel (docs/ref/alerts.md). Secrets (tokens) are never logged.
struct AlertChannelConfig {
  enum class Kind { webhook, telegram, zalo };
  std::string name;
  Kind kind = Kind::webhook;
  std::string url;           // webhook: the target; telegram/zalo: API base (official default)
  std::string bot_token;     // telegram (secret)
  std::string chat_id;       // telegram
  std::string access_token;  // zalo (secret)
  std::string user_id;       // zalo recipient
  std::vector<std::string> cameras;  // empty: all
  std::vector<std::string> zones;    // empty: all
  std::vector<std::string> types;    // event types or labels; empty: all
  bool armed_only = true;            // only events that started in armed hours
  bool snapshot = true;              // attach the event's snapshot where the API allows
  int timeout_ms = 5000;
  int max_attempts = 6;
  // Someone must answer: an alert nobody acknowledged after escalate_after_s goes to the
  // channel escalate_to (e.g. the commune police officer on duty). 0: no escalation.
  int escalate_after_s = 0;
  std::string escalate_to;
  bool escalation_only = false;  // this channel gets escalations only, not first alerts
};
std::string_view to_string(AlertChannelConfig::Kind kind);

// A commune's earlier name and code (communes were merged in 2025): valid until the day before
// `until`, when the current name took over.
struct FormerName {
  std::string code, name;
  std::string until;  // YYYY-MM-DD local: the first day of the next name
};
struct HamletConfig {
  std::string code, name;
};
struct CommuneConfig {
  std::string code, name;
  std::string model;  // the camera model's name in reports, e.g. "Camera an ninh xã Minh Phú"
  std::vector<FormerName> former;  // oldest first
  std::vector<HamletConfig> hamlets;
};
// Province → commune → hamlet; cameras name their commune's current code and hamlet's code.
struct OrganisationConfig {
  std::string province_code, province_name;
  std::vector<CommuneConfig> communes;
  // The commune a code names now (a current or a former code), or nullptr.
  const CommuneConfig* commune(const std::string& code) const;
};

struct Config {
  std::string node_id = "node-1";
  OrganisationConfig organisation;
  ServerConfig server;
  AnalyticsConfig analytics;
  RecordingConfig recording;
  std::vector<AlertChannelConfig> alerts;
  std::vector<CameraConfig> cameras;
  std::vector<CameraConfig> retired;  // cameras with `removed`: not run, kept for reports
};

// getenv is injectable so tests need not touch the process environment.
using EnvLookup = std::optional<std::string> (*)(const std::string& name);
std::optional<std::string> process_env(const std::string& name);

// Reads the config file and, when it exists, the admin UI's edits of the organisation and the
// cameras' inventory (inventory_overlay_path of its data_dir) over it.
std::expected<Config, std::vector<ConfigError>> load_config_file(const std::string& path,
                                                                 EnvLookup env = process_env);
// overlay_text: the edits (JSON or YAML: {"organisation": {...}, "cameras": {ID: {KEY: VALUE}}}):
// inventory keys (model, owner, installed, funding, lat, lon) and connection keys (name, commune,
// hamlet, site, brand, host, port, username, password, channel, main_url, sub_url, transport,
// analysis_fps, enabled, retention_days, event_retention_days); a null value removes a key;
// {added: true, ...} is a camera added in the page, {removed: true, removed_on: DATE} one taken
// out that day (kept as `removed: DATE`; without a date it is dropped); no ${VAR}.
// strict_overlay: a camera id the config lacks (or an added one it has) is an error, else ignored.
std::expected<Config, std::vector<ConfigError>> load_config_text(
    const std::string& text, const std::string& file_name, EnvLookup env = process_env,
    const std::string& overlay_text = "", const std::string& overlay_name = "",
    bool strict_overlay = true);
std::string inventory_overlay_path(const std::string& data_dir);
// The camera keys an overlay (the admin page) may set.
const std::set<std::string>& overlay_camera_keys();

}  // namespace matthan
