// matthan: the one binary. The only place that wires the modules together.
//   matthan run --config FILE          serve the cameras of FILE
//   matthan check-config FILE          report every config error with file, line and key
//   matthan probe URL [--json]         codec, resolution, fps, bitrate and GOP of a stream
#include <malloc.h>
#if MATTHAN_JEMALLOC
#include <jemalloc/jemalloc.h>
#endif
#include <spdlog/spdlog.h>
#include <sqlite3.h>

#include <unistd.h>

#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <condition_variable>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "accounts.hpp"
#include "evidence.hpp"
#include "live.hpp"
#include "matthan/alerts/alert_dispatcher.hpp"
#include "matthan/analytics/analysis_pool.hpp"
#include "matthan/analytics/engine.hpp"
#include "matthan/analytics/zmq_publisher.hpp"
#include "matthan/core/clock.hpp"
#include "matthan/core/config.hpp"
#include "matthan/core/ids.hpp"
#include "matthan/core/logging.hpp"
#include "matthan/core/runtime.hpp"
#include "matthan/core/time_format.hpp"
#include "matthan/core/url.hpp"
#include "matthan/evidence/audit.hpp"
#include "matthan/evidence/node_key.hpp"
#include "matthan/ingest/camera_ingest.hpp"
#include "matthan/ingest/clip_reader.hpp"
#include "matthan/ingest/probe.hpp"
#include "matthan/report/operation_report.hpp"
#include "matthan/storage/clip.hpp"
#include "matthan/storage/database.hpp"
#include "matthan/storage/event_repository.hpp"
#include "matthan/storage/reconcile.hpp"
#include "matthan/storage/recorder.hpp"
#include "matthan/storage/retention.hpp"
#include "matthan/storage/status_repository.hpp"
#include "matthan/web/assets.hpp"
#include "matthan/web/http_server.hpp"
#include "matthan/web/router.hpp"
#include "operation.hpp"
#include "service.hpp"
#include "tune.hpp"
#include "web_api.hpp"

namespace {

// Set by run() when SIGHUP stopped it: main() starts the binary again.
bool restart_requested = false;

using namespace matthan;
using nlohmann::json;

int usage() {
  std::fprintf(
      stderr,
      "usage:\n"
      "  matthan --version\n"
      "  matthan run --config FILE\n"
      "  matthan check-config FILE\n"
      "  matthan probe URL [--json] [--seconds N]\n"
      "  matthan tune --clip FILE [--config FILE --camera ID] [--fps N] [--set KEY=VALUE]... "
      "[--json]\n"
      "  matthan tune --config FILE --camera ID --from T --to T [--set KEY=VALUE]... [--json]\n"
      "      KEY: threshold_min min_area min_frames gap_s analysis_height tamper_min_s people\n"
      "  matthan export [--config FILE] --camera ID... --from T --to T --reason TEXT --out DIR\n"
      "      [--unit U] [--officer O] [--case ID] [--stream main|sub]\n"
      "  matthan verify-export DIR [--config FILE]\n"
      "  matthan hold [--config FILE] --camera ID... --from T --to T --reason TEXT [--expires T]\n"
      "  matthan hold [--config FILE] --list | --release ID\n"
      "  matthan backup [--config FILE] DIR\n"
      "  matthan restore [--config FILE] DIR\n"
      "  matthan user add NAME --role viewer|reviewer|admin | passwd NAME | token NAME | list\n"
      "  matthan audit verify [--config FILE]\n"
      "  matthan report [--config FILE] --commune CODE[,CODE] --from YYYY-MM-DD --to YYYY-MM-DD\n"
      "      --format pdf|html|csv|xlsx|json --out FILE [--prepared-by NAME] [--repair-below PCT]\n"
      "  matthan record EXPORT-DIR --out FILE [--format pdf|html]   (the extraction record)\n"
      "  (--config defaults to $MATTHAN_CONFIG, else /etc/matthan/matthan.yaml; T: ISO 8601,\n"
      "   'YYYY-MM-DD HH:MM:SS' in server.time_zone, or now-90s / now-5m / now-2h)\n");
  return 2;
}

// What /metrics says of the process: /proc/self and the allocator's own counts (glibc's
// mallinfo2, which locks each arena briefly: fine at a scrape's rate; or jemalloc's
// statistics when built with MATTHAN_JEMALLOC).
struct ProcessFigures {
  double rss_bytes = 0, open_fds = 0, threads = 0, heap_in_use = 0, heap_free = 0;
};

ProcessFigures process_figures() {
  ProcessFigures f;
  long pages = 0, resident = 0;
  if (std::FILE* statm = std::fopen("/proc/self/statm", "r")) {
    if (std::fscanf(statm, "%ld %ld", &pages, &resident) == 2)
      f.rss_bytes = static_cast<double>(resident) * static_cast<double>(::sysconf(_SC_PAGESIZE));
    std::fclose(statm);
  }
  std::error_code ec;
  for (std::filesystem::directory_iterator it("/proc/self/fd", ec), end; !ec && it != end;
       it.increment(ec))
    ++f.open_fds;
  f.open_fds = std::max(0.0, f.open_fds - 1);  // not the one listing them
  for (std::filesystem::directory_iterator it("/proc/self/task", ec), end; !ec && it != end;
       it.increment(ec))
    ++f.threads;
#if MATTHAN_JEMALLOC
  // Its statistics are a snapshot taken when the epoch is advanced.
  std::uint64_t epoch = 1;
  std::size_t len = sizeof epoch;
  mallctl("epoch", &epoch, &len, &epoch, len);
  std::size_t allocated = 0, held = 0;
  len = sizeof allocated;
  if (mallctl("stats.allocated", &allocated, &len, nullptr, 0) == 0 &&
      mallctl("stats.resident", &held, &len, nullptr, 0) == 0) {
    f.heap_in_use = static_cast<double>(allocated);
    // Pages it holds beyond what is allocated: its caches, dirty pages not yet returned.
    f.heap_free = static_cast<double>(held > allocated ? held - allocated : 0);
  }
#else
  const auto m = ::mallinfo2();
  f.heap_in_use = static_cast<double>(m.uordblks + m.hblkhd);
  f.heap_free = static_cast<double>(m.fordblks);
#endif
  return f;
}

std::optional<Config> load_or_report(const std::string& path) {
  auto config = load_config_file(path);
  if (!config) {
    for (const auto& e : config.error()) std::fprintf(stderr, "%s\n", e.to_string().c_str());
    std::fprintf(stderr, "%zu error(s) in %s\n", config.error().size(), path.c_str());
    return std::nullopt;
  }
  return *config;
}

int check_config(const std::string& path) {
  auto config = load_or_report(path);
  if (!config) return 1;
  std::printf("%s: ok (%zu camera(s), node %s, time zone %s)\n", path.c_str(),
              config->cameras.size(), config->node_id.c_str(), config->server.time_zone.c_str());
  if (const auto overlay = inventory_overlay_path(config->server.data_dir);
      std::filesystem::exists(overlay))
    std::printf("  organisation and inventory as edited in the admin UI: %s\n", overlay.c_str());
  // What will alarm when: the summary a technician checks after editing zones.
  for (const auto& c : config->cameras) {
    std::printf("  camera %s: armed %s, %zu mask(s), ", c.id.c_str(), c.armed.to_string().c_str(),
                c.masks.size());
    if (c.zones.empty())
      std::printf("detection everywhere\n");
    else
      std::printf("%zu zone(s)\n", c.zones.size());
    for (const auto& z : c.zones) {
      std::printf("    zone %s: %zu points, min_area %s, armed %s\n", z.name.c_str(),
                  z.polygon.size(),
                  z.min_area > 0 ? std::to_string(z.min_area).c_str() : "(analytics.min_area)",
                  z.has_schedule ? z.armed.to_string().c_str() : "(camera's)");
    }
  }
  for (const auto& a : config->alerts) {
    std::printf("  alert %s: %s%s\n", a.name.c_str(), std::string(to_string(a.kind)).c_str(),
                a.armed_only ? ", armed hours only" : ", at all hours");
  }
  return 0;
}

int probe(const std::vector<std::string>& args) {
  std::string url;
  bool as_json = false;
  int seconds = 4;
  for (std::size_t i = 0; i < args.size(); ++i) {
    if (args[i] == "--json") {
      as_json = true;
    } else if (args[i] == "--seconds" && i + 1 < args.size()) {
      seconds = std::max(1, std::atoi(args[++i].c_str()));
    } else if (url.empty()) {
      url = args[i];
    } else {
      return usage();
    }
  }
  if (url.empty()) return usage();
  init_logging("warn", "");
  auto result = ingest::probe_stream(url, std::chrono::seconds(seconds), std::chrono::seconds(8));
  if (!result) {
    std::fprintf(stderr, "probe: %s\n", result.error().c_str());
    return 1;
  }
  const auto& r = *result;
  if (as_json) {
    json j{{"url", r.url_masked},
           {"codec", r.codec},
           {"profile", r.profile},
           {"width", r.width},
           {"height", r.height},
           {"fps", r.fps},
           {"bitrate_bps", r.bitrate_bps},
           {"gop_frames", r.gop_frames},
           {"gop_seconds", r.gop_seconds},
           {"audio_codec", r.audio_codec},
           {"frames", r.frames}};
    std::printf("%s\n", j.dump(2).c_str());
  } else {
    std::printf(
        "url:      %s\ncodec:    %s %s\nsize:     %dx%d\nfps:      %.2f\nbitrate:  %.0f kbit/s\n"
        "gop:      %.1f frames (%.2f s)\naudio:    %s\n",
        r.url_masked.c_str(), r.codec.c_str(), r.profile.c_str(), r.width, r.height, r.fps,
        r.bitrate_bps / 1000.0, r.gop_frames, r.gop_seconds,
        r.audio_codec.empty() ? "none" : r.audio_codec.c_str());
  }
  return 0;
}

// Sends every event to all sinks (database, ZeroMQ).
class EventFanout final : public EventSink {
 public:
  void add(EventSink* sink) { sinks_.push_back(sink); }
  void on_event(EventPhase phase, const Event& event) override {
    for (auto* s : sinks_) s->on_event(phase, event);
  }

 private:
  std::vector<EventSink*> sinks_;  // fixed before any camera starts
};

// Camera state changes: stored, published on the status topic, and turned into
// camera_offline events (start when a camera that was online stops being so, end when it
// returns). Thread-safe: called from the stream sessions' threads; mutex_ guards open_.
class StatusFanout final : public StatusStore {
 public:
  StatusFanout(StatusStore& store, StatusSink* status, EventSink* events, const Config& config)
      : store_(store), status_(status), events_(events) {
    for (const auto& c : config.cameras) info_[c.id] = {c.commune, c.hamlet};
  }
  void record_state_change(const StateChange& change) override {
    store_.record_state_change(change);
    if (change.stream != "camera") return;
    const auto info = info_.find(change.camera_id);  // find, not []: the map is shared read-only
    const std::string commune = info != info_.end() ? info->second.first : "";
    const std::string hamlet = info != info_.end() ? info->second.second : "";
    const std::string state(to_string(change.state));
    if (status_ != nullptr) {
      status_->on_status({change.camera_id, commune, hamlet, state, change.error, change.at_us});
    }
    if (push_ != nullptr) push_->camera_state(change.camera_id, state, change.error, change.at_us);
    std::lock_guard lock(mutex_);
    auto& open = open_[change.camera_id];
    const bool down = change.state != StreamState::online &&
                      change.state != StreamState::connecting &&
                      change.state != StreamState::disabled;
    if (down && !open && was_online_[change.camera_id]) {
      Event e;
      e.id = make_ulid(change.at_us);
      e.camera_id = change.camera_id;
      e.commune = commune;
      e.hamlet = hamlet;
      e.type = "camera_offline";
      e.label = state;
      e.start_us = change.at_us;
      open = e;
      events_->on_event(EventPhase::start, e);
    } else if (change.state == StreamState::online && open) {
      open->end_us = change.at_us;
      events_->on_event(EventPhase::end, *open);
      open.reset();
    }
    if (change.state == StreamState::online) was_online_[change.camera_id] = true;
  }
  void record_heartbeat(const std::string& run_id, std::int64_t start_us, std::int64_t now_us,
                        bool clean_stop) override {
    store_.record_heartbeat(run_id, start_us, now_us, clean_stop);
  }
  void record_clock_event(ClockEventKind kind, std::int64_t at_us, std::int64_t delta_us,
                          const std::string& detail) override {
    store_.record_clock_event(kind, at_us, delta_us, detail);
  }
  // Set before any camera starts.
  void set_push(app::PushHub* push) { push_ = push; }
  // Monitoring ends with the server: open outages end at the stop time.
  void close_all(std::int64_t now_us) {
    std::lock_guard lock(mutex_);
    for (auto& [id, open] : open_) {
      if (!open) continue;
      open->end_us = now_us;
      events_->on_event(EventPhase::end, *open);
      open.reset();
    }
  }

 private:
  StatusStore& store_;
  StatusSink* status_;
  EventSink* events_;
  app::PushHub* push_ = nullptr;
  std::map<std::string, std::pair<std::string, std::string>> info_;  // read-only after ctor
  std::mutex mutex_;
  std::map<std::string, std::optional<Event>> open_;
  std::map<std::string, bool> was_online_;
};

// `matthan tune`: replays a clip through the analytics with candidate settings and lists the
// events it would have raised, so a technician can tune a camera without waiting for the night.
int tune(const std::vector<std::string>& args) {
  std::string config_path, camera_id, from_text, to_text;
  bool as_json = false;
  app::TuneRequest t;
  t.fps = 5;
  for (std::size_t i = 0; i < args.size(); ++i) {
    auto value = [&]() -> std::string { return i + 1 < args.size() ? args[++i] : ""; };
    if (args[i] == "--clip") {
      t.clip = value();
    } else if (args[i] == "--config") {
      config_path = value();
    } else if (args[i] == "--camera") {
      camera_id = value();
    } else if (args[i] == "--fps") {
      t.fps = std::atof(value().c_str());
    } else if (args[i] == "--set") {
      const auto kv = value();
      const auto eq = kv.find('=');
      if (eq == std::string::npos) return usage();
      t.sets.emplace_back(kv.substr(0, eq), kv.substr(eq + 1));
    } else if (args[i] == "--json") {
      as_json = true;
    } else if (args[i] == "--from") {
      from_text = value();
    } else if (args[i] == "--to") {
      to_text = value();
    } else {
      return usage();
    }
  }
  const bool stored = !from_text.empty() || !to_text.empty();
  if (stored && (from_text.empty() || to_text.empty() || config_path.empty() || camera_id.empty() ||
                 !t.clip.empty())) {
    std::fprintf(stderr,
                 "tune: --from and --to replay stored recordings: they need --config and "
                 "--camera, and no --clip\n");
    return 2;
  }
  if ((t.clip.empty() && !stored) || t.fps <= 0) return usage();
  init_logging("warn", "");
  t.camera.id = camera_id.empty() ? "clip" : camera_id;
  if (!config_path.empty()) {
    auto config = load_or_report(config_path);
    if (!config) return 1;
    t.analytics = config->analytics;
    bool found = camera_id.empty();
    for (const auto& c : config->cameras) {
      if (c.id == camera_id) {
        t.camera = c;
        found = true;
        t.fps = c.analysis_fps;
      }
    }
    if (!found) {
      std::fprintf(stderr, "tune: no camera '%s' in %s\n", camera_id.c_str(), config_path.c_str());
      return 1;
    }
    if (stored) {
      // Stored recordings: the range is remuxed into a temporary clip (the sub stream, what the
      // analytics sees, when it was recorded).
      ::setenv("TZ", (":" + config->server.time_zone).c_str(), 1);
      ::tzset();
      const std::int64_t now = SystemClock().now_us();
      const auto from = app::parse_time_arg(from_text, now);
      const auto to = app::parse_time_arg(to_text, now);
      if (!from || !to || *to <= *from) {
        std::fprintf(stderr, "tune: --from/--to must be times with --from before --to\n");
        return 2;
      }
      auto db = storage::Database::open(config->server.data_dir + "/matthan.db");
      if (!db) {
        std::fprintf(stderr, "tune: %s\n", db.error().c_str());
        return 1;
      }
      t.clip = config->server.data_dir + "/cache/tune-" + std::to_string(::getpid()) + ".mp4";
      std::filesystem::create_directories(config->server.data_dir + "/cache");
      storage::ClipRequest r{config->node_id, camera_id, "sub", *from, *to, false, false};
      auto clip = storage::write_clip(**db, r, t.clip);
      if (!clip) {
        r.stream = "main";
        clip = storage::write_clip(**db, r, t.clip);
      }
      if (!clip) {
        std::fprintf(stderr, "tune: %s\n", clip.error().c_str());
        return 1;
      }
      std::fprintf(stderr, "tune: %s stream from %s (%zu segment(s), %lld frames)\n",
                   r.stream.c_str(), format_iso8601_us(clip->start_us).c_str(),
                   clip->segments.size(), static_cast<long long>(clip->frames));
    }
  }
  auto result = app::run_tune(t);
  if (stored) std::filesystem::remove(t.clip);
  if (!result) {
    std::fprintf(stderr, "tune: %s\n", result.error().c_str());
    return 1;
  }
  if (as_json) {
    std::printf("%s\n", app::tune_json(t, *result).dump(2).c_str());
    return 0;
  }
  const auto& info = result->info;
  std::printf("%s: %.1f s, %d frames decoded, %d analysed at %.1f fps (%d of them sooner)\n",
              t.clip.c_str(), info.duration_s, info.frames_decoded, info.frames_analysed, t.fps,
              info.frames_sooner);
  std::printf("%-8s %-15s %-10s %8s %8s %8s\n", "start_s", "type", "label", "end_s", "length",
              "peak");
  for (const auto& e : result->events) {
    const double start = e.start_us / 1e6;
    const double end = e.end_us ? *e.end_us / 1e6 : info.duration_s;
    std::printf("%-8.2f %-15s %-10s %8.2f %8.2f %8.4f\n", start, e.type.c_str(),
                e.label.empty() ? "-" : e.label.c_str(), end, end - start, e.peak_score);
  }
  std::printf("%zu event(s)\n", result->events.size());
  return 0;
}

// GET /api/cameras/{id}/tune?clip=NAME&KEY=VALUE...: `matthan tune` over HTTP, for a clip a
// technician put in <data_dir>/clips/. One replay at a time (it takes seconds of a core).
web::HttpResponse tune_api(const web::HttpRequest& req, const Config& config) {
  static std::mutex busy;
  const std::string prefix = "/api/cameras/";
  const auto id = req.path.substr(prefix.size(), req.path.size() - prefix.size() - 5);
  const CameraConfig* cam = nullptr;
  for (const auto& c : config.cameras) {
    if (c.id == id) cam = &c;
  }
  if (cam == nullptr) return web::json_error(404, "not_found", "no camera '" + id + "'");
  const auto clip = req.query.contains("clip") ? req.query.at("clip") : std::string();
  if (clip.empty() || clip.find('/') != std::string::npos || clip.starts_with(".")) {
    return web::json_error(400, "bad_clip",
                           "clip must name a file in " + config.server.data_dir + "/clips");
  }
  app::TuneRequest t;
  t.clip = config.server.data_dir + "/clips/" + clip;
  t.camera = *cam;
  t.analytics = config.analytics;
  t.fps = cam->analysis_fps;
  for (const auto& [k, v] : req.query) {
    if (k != "clip") t.sets.emplace_back(k, v);
  }
  std::unique_lock lock(busy, std::try_to_lock);
  if (!lock.owns_lock()) {
    return web::json_error(429, "busy", "another replay is running; try again in a few seconds");
  }
  auto result = app::run_tune(t);
  if (!result) return web::json_error(400, "tune_failed", result.error());
  auto j = app::tune_json(t, *result);
  j["clip"] = clip;  // not the server's path
  return {200, "application/json", j.dump()};
}

bool is_loopback(const std::string& address) {
  return address == "127.0.0.1" || address == "::1" || address == "localhost" ||
         address.starts_with("127.");
}

using app::ntp_synchronised;

json stream_json(const ingest::StreamStats& s) {
  return json{
      {"kind", std::string(to_string(s.kind))},
      {"state", std::string(to_string(s.state))},
      {"last_error", s.last_error},
      {"since", format_iso8601_us(s.since_us)},
      {"url", s.url_masked},
      {"codec", s.codec},
      {"width", s.width},
      {"height", s.height},
      {"fps_in", s.fps_in},
      {"fps_decoded", s.fps_decoded},
      {"bitrate_bps", s.bitrate_bps},
      {"packets_in", s.packets_in},
      {"frames_decoded", s.frames_decoded},
      {"frames_to_analysis", s.frames_to_analysis},
      {"decode_errors", s.decode_errors},
      {"reconnects", s.reconnects},
      {"timestamp_jumps", s.timestamp_jumps},
      {"rtp_lost", s.rtp_lost},
      {"reader", s.reader},
      {"last_packet", s.last_packet_us ? json(format_iso8601_us(s.last_packet_us)) : json()},
      {"stall_timeout_ms", s.stall_timeout_ms},
      {"next_retry", s.next_retry_us ? json(format_iso8601_us(s.next_retry_us)) : json()},
      {"link",
       {{"quality", s.link_degraded ? "degraded" : "good"},
        {"issues", s.link_degraded ? json(s.link_issues) : json()},
        {"nominal_fps", s.nominal_fps},
        {"degraded_s", static_cast<double>(s.degraded_ms) / 1000.0},
        {"degraded_spells", s.degraded_spells}}}};
}

int run(const std::string& config_path) {
  auto loaded = load_or_report(config_path);
  if (!loaded) return 1;
  const Config config = *loaded;
  std::error_code ec;
  std::filesystem::create_directories(config.server.data_dir, ec);
  if (ec) {
    std::fprintf(stderr, "cannot create data_dir %s: %s\n", config.server.data_dir.c_str(),
                 ec.message().c_str());
    return 1;
  }
  const std::string log_file = config.server.log_file.empty()
                                   ? config.server.data_dir + "/matthan.log"
                                   : config.server.log_file;
  init_logging(config.server.log_level, log_file);
  // Armed hours are local time: the process runs in the configured zone, not the machine's.
  ::setenv("TZ", (":" + config.server.time_zone).c_str(), 1);
  ::tzset();
  const bool tls = !config.server.tls_cert.empty();
  if (!is_loopback(config.server.listen_address) && !tls) {
    // Passwords and footage must not cross a network in clear text unless someone asked for it.
    if (!config.server.insecure_listen) {
      spdlog::error(
          "server.listen {} is not a loopback address: configure server.tls_cert and "
          "server.tls_key (HTTPS), or set server.insecure_listen: true to serve without TLS",
          config.server.listen_address);
      return 1;
    }
    spdlog::warn(
        "server.insecure_listen: serving {} WITHOUT TLS: passwords and footage cross the network "
        "in clear text",
        config.server.listen_address);
  }

  auto db = storage::Database::open(config.server.data_dir + "/matthan.db");
  if (!db) {
    spdlog::error("{}", db.error());
    return 1;
  }
  // Before anything records, and before server time reads where recordings end: finish what
  // a crash left open, index files without a row.
  if (config.recording.enabled) {
    const std::string root = config.recording.dir.empty() ? config.server.data_dir + "/recordings"
                                                          : config.recording.dir;
    const auto report = storage::reconcile_segments(**db, config.node_id, root);
    for (const auto& m : report.messages) spdlog::warn("recordings: {}", m);
    if (report.recovered + report.unreadable + report.orphans > 0) {
      spdlog::warn("recordings: {} segment(s) recovered, {} unreadable, {} orphan(s) indexed",
                   report.recovered, report.unreadable, report.orphans);
    }
  }
  // Server time never runs backwards, not even across a restart: it starts no earlier than the
  // end of what is already recorded (core/clock.hpp).
  SystemClock system_clock;
  const std::int64_t recorded_end = (*db)->read([&](sqlite3* conn) {
    sqlite3_stmt* st = nullptr;
    sqlite3_prepare_v2(conn, "SELECT MAX(end_us) FROM segment WHERE node_id = ?1", -1, &st,
                       nullptr);
    sqlite3_bind_text(st, 1, config.node_id.c_str(), -1, SQLITE_TRANSIENT);
    const std::int64_t end = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
    sqlite3_finalize(st);
    return end;
  });
  ServerClock clock(system_clock, recorded_end);
  // The node's signing key: made on the first start, never replaced (exports depend on it).
  auto node_key = evidence::load_or_create_node_key(config.server.data_dir);
  if (!node_key) {
    spdlog::error("{}", node_key.error());
    return 1;
  }
  spdlog::info("node signing key {}", node_key->fingerprint());
  // The audit chain's head is signed at start and hourly (heartbeat below).
  evidence::sign_audit_head(**db, config.node_id, *node_key, clock.now_us());
  std::int64_t head_signed_us = clock.now_us();
  storage::StatusRepository status_repo(**db, config.node_id);
  storage::EventRepository event_repo(**db, config.node_id);
  std::unique_ptr<analytics::ZmqPublisher> zmq;
  if (!config.analytics.zmq_endpoint.empty()) {
    auto bound_zmq = analytics::ZmqPublisher::bind(config.analytics.zmq_endpoint, config.node_id);
    if (!bound_zmq) {
      spdlog::error("{}", bound_zmq.error());
      return 1;
    }
    zmq = std::move(*bound_zmq);
    spdlog::info("publishing events on {}", zmq->endpoint());
  }
  EventFanout events;
  events.add(&event_repo);
  if (zmq) events.add(zmq.get());
  std::unique_ptr<alerts::AlertDispatcher> alert_dispatcher;
  if (!config.alerts.empty()) {
    std::map<std::string, std::string> names;
    for (const auto& c : config.cameras) names[c.id] = c.name;
    alert_dispatcher = std::make_unique<alerts::AlertDispatcher>(config.alerts, config.node_id,
                                                                 config.server.public_url, names);
    events.add(alert_dispatcher.get());
    // Escalation: asks the database whether someone acknowledged the alert; records and audits
    // that it went on to the next contact.
    alert_dispatcher->set_escalation_hooks(
        [&db, node = config.node_id](const std::string& event_id) {
          return (*db)->read([&](sqlite3* conn) {
            sqlite3_stmt* st = nullptr;
            // Acknowledged, or already reviewed (confirmed, false alarm): someone answered.
            sqlite3_prepare_v2(conn,
                               "SELECT 1 FROM alert_ack WHERE node_id = ?1 AND event_id = ?2"
                               " UNION ALL SELECT 1 FROM event WHERE node_id = ?1 AND id = ?2"
                               " AND review_state <> 'new'",
                               -1, &st, nullptr);
            sqlite3_bind_text(st, 1, node.c_str(), -1, SQLITE_TRANSIENT);
            sqlite3_bind_text(st, 2, event_id.c_str(), -1, SQLITE_TRANSIENT);
            const bool acked = sqlite3_step(st) == SQLITE_ROW;
            sqlite3_finalize(st);
            return acked;
          });
        },
        [&db, &clock, node = config.node_id](const Event& e, const std::string& from,
                                             const std::string& to, int waited_s) {
          const auto now = clock.now_us();
          (*db)->write([=](sqlite3* conn) {
            sqlite3_stmt* st = nullptr;
            sqlite3_prepare_v2(conn,
                               "INSERT INTO alert_escalation (event_id, node_id, from_channel,"
                               " to_channel, after_s, at_us) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                               -1, &st, nullptr);
            sqlite3_bind_text(st, 1, e.id.c_str(), -1, SQLITE_TRANSIENT);
            sqlite3_bind_text(st, 2, node.c_str(), -1, SQLITE_TRANSIENT);
            sqlite3_bind_text(st, 3, from.c_str(), -1, SQLITE_TRANSIENT);
            sqlite3_bind_text(st, 4, to.c_str(), -1, SQLITE_TRANSIENT);
            sqlite3_bind_int(st, 5, waited_s);
            sqlite3_bind_int64(st, 6, now);
            sqlite3_step(st);
            sqlite3_finalize(st);
          });
          evidence::append_audit(**db, node, now, "system", "alert_escalated", e.id,
                                 json{{"from", from}, {"to", to}, {"after_s", waited_s}}.dump());
        });
    // Escalations that were waiting when the server last stopped: events of the last day that
    // nobody answered and that did not go on yet.
    {
      const auto now = clock.now_us();
      const auto settled = (*db)->read([&](sqlite3* conn) {
        std::set<std::string> ids;
        sqlite3_stmt* st = nullptr;
        sqlite3_prepare_v2(conn,
                           "SELECT event_id FROM alert_ack WHERE node_id = ?1 UNION SELECT"
                           " event_id FROM alert_escalation WHERE node_id = ?1 UNION SELECT id"
                           " FROM event WHERE node_id = ?1 AND review_state <> 'new' AND"
                           " start_us > ?2",
                           -1, &st, nullptr);
        sqlite3_bind_text(st, 1, config.node_id.c_str(), -1, SQLITE_TRANSIENT);
        sqlite3_bind_int64(st, 2, now - 86'400'000'000LL);
        while (sqlite3_step(st) == SQLITE_ROW)
          ids.insert(reinterpret_cast<const char*>(sqlite3_column_text(st, 0)));
        sqlite3_finalize(st);
        return ids;
      });
      int resumed = 0;
      for (const auto& e : event_repo.list("", now - 86'400'000'000LL, now, 2000)) {
        if (settled.contains(e.id) || e.start_us < now - 86'400'000'000LL) continue;
        alert_dispatcher->resume_escalation(e, e.start_us, now);
        ++resumed;
      }
      if (resumed > 0)
        spdlog::info("alerts: {} unanswered alert(s) of the last day still escalate", resumed);
    }
    for (const auto& a : config.alerts) {
      spdlog::info("alert channel {} ({}){}", a.name, to_string(a.kind),
                   a.armed_only ? ", armed hours only" : "");
    }
  }
  app::PushHub push(app::camera_places(config));
  events.add(&push);
  StatusFanout status(status_repo, zmq.get(), &events, config);
  status.set_push(&push);
  const std::string run_id = make_ulid(clock.now_us());
  const std::int64_t start_us = clock.now_us();
  status.record_heartbeat(run_id, start_us, start_us, false);
  bool synced = ntp_synchronised();
  status.record_clock_event(
      synced ? ClockEventKind::ntp_synchronised : ClockEventKind::ntp_unsynchronised, start_us, 0,
      "at start");
  if (!synced) spdlog::warn("the system clock is not NTP-synchronised: recorded times may drift");

  const unsigned cores = std::max(1u, std::thread::hardware_concurrency());
  std::vector<analytics::CameraInfo> infos;
  for (const auto& cam : config.cameras)
    infos.push_back({cam.id, cam.commune, cam.hamlet, cam.masks, cam.zones, cam.armed});
  const auto [motion, tracker, tamper] = app::engine_settings(config.analytics);
  analytics::Engine engine(
      infos, motion, tracker, tamper, &events, config.server.data_dir + "/snapshots",
      config.analytics.people ? analytics::Engine::People::hog : analytics::Engine::People::off);
  // Three frames a camera may wait (300 ms at 10 fps): with two, 44 cameras on one core at half
  // its capacity dropped a frame each to bursts (bench/compare --sustain, 2026-11-30). A frame
  // that waits longer is dropped, oldest first, and counted.
  analytics::AnalysisPool analysis(
      cores, 3, clock, [&engine](const LumaFrame& frame) { engine.analyze(frame); },
      [&engine](const std::string& id) { return engine.wants_sooner(id); });
  std::vector<std::unique_ptr<ingest::CameraIngest>> cameras;
  for (const auto& cam : config.cameras) {
    cameras.push_back(std::make_unique<ingest::CameraIngest>(cam, clock, &status, &analysis));
  }
  // Recording: every enabled camera's main stream, stream-copied, off the io threads (on the
  // fan-out subscriber's thread).
  std::vector<std::unique_ptr<storage::Recorder>> recorders;
  if (config.recording.enabled) {
    storage::RecorderSettings rs;
    rs.writer.root = config.recording.dir.empty() ? config.server.data_dir + "/recordings"
                                                  : config.recording.dir;
    rs.writer.segment_s = config.recording.segment_s;
    rs.writer.fragment_s = config.recording.fragment_s;
    rs.writer.sync = config.recording.sync;
    for (auto& c : cameras) {
      for (const auto kind : {StreamKind::main, StreamKind::sub}) {
        if (kind == StreamKind::sub && !config.recording.sub_stream) continue;
        auto* session = c->session(kind);
        if (session == nullptr) continue;
        recorders.push_back(
            std::make_unique<storage::Recorder>(**db, config.node_id, c->id(), kind, rs));
        recorders.back()->attach(session->packets());
      }
    }
  }

  Runtime runtime(std::min(cores, 4u));
  auto& io = runtime.io();
  std::map<std::string, const storage::Recorder*> recorder_of;
  for (std::size_t i = 0; i < recorders.size(); ++i) {
    if (recorders[i]->stream() == StreamKind::main)
      recorder_of[recorders[i]->camera_id()] = recorders[i].get();
  }
  // What the recorder of a camera is doing: for the API and the status page.
  auto recording_json = [&](ingest::CameraIngest& c) -> json {
    const auto it = recorder_of.find(c.id());
    if (it == recorder_of.end()) return json{{"enabled", false}};
    const auto r = it->second->stats();
    json j{
        {"enabled", true},
        {"segments", r.segments},
        {"packets", r.packets},
        {"skipped_before_keyframe", r.skipped},
        {"errors", r.errors},
        {"last_error", r.last_error},
        {"failing", r.failing},
        {"lost_frames", r.lost},
        {"paused", r.paused},
        {"not_recorded_packets", r.not_recorded},
        {"current_segment",
         r.current_path.empty() ? json() : json(std::filesystem::path(r.current_path).filename())}};
    if (auto* session = c.session(StreamKind::main)) {
      for (const auto& sub : session->packets().stats()) {
        if (sub.name != "recorder") continue;
        j["queued_bytes"] = sub.queued_bytes;
        j["queue_over_limit"] = sub.over_limit;  // the disk is slower than the camera
      }
    }
    return j;
  };
  auto cameras_json = [&] {
    json list = json::array();
    for (const auto& c : cameras) {
      const auto s = c->status();
      const auto a = analysis.stats(s.id);
      const auto f = engine.figures(s.id);
      json streams = json::array();
      for (const auto& st : s.streams) streams.push_back(stream_json(st));
      list.push_back({{"id", s.id},
                      {"name", s.name},
                      {"commune", s.commune},
                      {"hamlet", s.hamlet},
                      {"site", s.site},
                      {"brand", s.brand},
                      {"enabled", s.enabled},
                      {"state", std::string(to_string(s.state))},
                      {"last_error", s.last_error},
                      {"since", format_iso8601_us(s.since_us)},
                      {"analysis_fps_configured", s.analysis_fps_configured},
                      {"fps_analysed", a.fps_analysed},
                      {"frames_analysed", a.frames_analysed},
                      {"frames_dropped", a.frames_dropped},
                      {"analyse_ms_avg", a.analyse_ms_avg},
                      {"mean_luma", a.mean_luma},
                      {"noise", f.noise},
                      {"sharpness", f.sharpness},
                      {"sharpness_baseline", f.sharpness_baseline},
                      {"view_match", f.view_match},
                      {"tamper", f.tamper},
                      {"motion_event_active", f.event_active},
                      {"recording", recording_json(*c)},
                      {"streams", streams}});
    }
    return list;
  };
  // System clock steps seen by this run (the UI flags them; clock_event keeps them all).
  auto clock_json = [&] {
    const auto st = clock.steps();
    return json{{"steps", st.count},
                {"last_step", st.count == 0
                                  ? json()
                                  : json{{"at", format_iso8601_us(st.last_at_us)},
                                         {"delta_s", static_cast<double>(st.last_delta_us) / 1e6}}},
                {"ahead_of_system_clock_s", static_cast<double>(st.ahead_us) / 1e6}};
  };
  // Retention: its own thread (it deletes files and waits on the database), one pass every
  // retention_interval_s; mutex guards the last report and the alarm state.
  std::mutex storage_mutex;
  json storage_state{{"enabled", config.recording.enabled}};
  std::optional<Event> storage_alarm;
  auto storage_json = [&] {
    std::lock_guard lock(storage_mutex);
    return storage_state;
  };
  app::EvidenceContext evidence_ctx{
      config, **db, *node_key, ntp_synchronised, storage_json, clock, [&] {
        return clock.steps().ahead_us;
      }};
  web::Auth auth(**db);
  // Live view: one muxer per camera stream, fed by its fan-out, shared by its viewers.
  std::map<std::pair<std::string, StreamKind>, std::unique_ptr<app::LiveStream>> live;
  for (auto& c : cameras) {
    for (const auto kind : {StreamKind::main, StreamKind::sub}) {
      if (auto* session = c->session(kind)) {
        auto ls = std::make_unique<app::LiveStream>(c->id(), kind);
        ls->attach(session->packets());
        live[{c->id(), kind}] = std::move(ls);
      }
    }
  }
  app::EventApiContext event_ctx{config, **db, app::camera_places(config)};
  const auto& places = event_ctx.places;
  // Every route the server answers, with the least role it needs (docs/ref/api.md,
  // docs/ref/openapi.json; tests check both against GET /api/routes).
  web::Router router;
  using web::Role;
  using web::RouteKind;
  app::add_account_routes(router, auth, **db, config.node_id);
  app::add_event_routes(router, event_ctx);
  app::OperationContext operation_ctx(config, config_path, **db);
  app::add_operation_routes(router, operation_ctx);
  // A restart in place applies cameras edited in the admin page: SIGHUP to ourselves, after the
  // answer has gone out; main() re-executes the binary once everything has stopped cleanly.
  app::add_camera_admin_routes(router, operation_ctx, config, [] {
    static std::atomic<bool> asked{false};  // a second request while stopping changes nothing
    if (asked.exchange(true)) return;
    std::thread([] {
      std::this_thread::sleep_for(std::chrono::milliseconds(300));
      ::kill(::getpid(), SIGHUP);
    }).detach();
  });
  router.add({"GET", "/healthz", std::nullopt, RouteKind::json, "server health"},
             [&](const web::HttpRequest&) -> web::HttpResponse {
               int online = 0;
               for (const auto& c : cameras)
                 online += c->status().state == StreamState::online ? 1 : 0;
               const auto people = engine.people_stats();
               json j{{"status", "ok"},
                      {"node_id", config.node_id},
                      {"run_id", run_id},
                      {"started", format_iso8601_us(start_us)},
                      {"uptime_s", (clock.now_us() - start_us) / 1'000'000},
                      {"cameras_total", cameras.size()},
                      {"cameras_online", online},
                      {"ntp_synchronised", ntp_synchronised()},
                      {"clock", clock_json()},
                      {"db_write_failures", (*db)->write_failures()},
                      {"storage_alarm", storage_json().value("alarm", json())},
                      {"people_classifier",
                       {{"runs", people.runs},
                        {"people", people.people},
                        {"dropped", people.dropped},
                        {"backlog", people.backlog},
                        {"ms_avg", people.ms_avg}}}};
               json channels = json::array();
               if (alert_dispatcher) {
                 for (const auto& a : alert_dispatcher->stats()) {
                   channels.push_back(
                       {{"name", a.name},
                        {"kind", a.kind},
                        {"sent", a.sent},
                        {"failed_attempts", a.failed_attempts},
                        {"dropped", a.dropped},
                        {"queued", a.queued},
                        {"last_error", a.last_error},
                        {"last_success",
                         a.last_success_us ? json(format_iso8601_us(a.last_success_us)) : json()}});
                 }
               }
               j["alert_channels"] = channels;
               return {200, "application/json", j.dump()};
             });
  router.add(
      {"GET", "/metrics", Role::viewer, RouteKind::text,
       "Prometheus metrics (scrapers use an API token)"},
      [&](const web::HttpRequest& req) -> web::HttpResponse {
        // Prometheus text format (0.0.4): per camera and stream, recorder, storage, database.
        std::string out;
        auto esc = [](const std::string& v) {
          std::string o;
          for (const char ch : v) {
            if (ch == '\\' || ch == '"') o += '\\';
            if (ch == '\n') {
              o += "\\n";
              continue;
            }
            o += ch;
          }
          return o;
        };
        std::map<std::string, std::vector<std::string>> series;             // family → lines
        std::map<std::string, std::pair<std::string, std::string>> family;  // → type, help
        auto put = [&](const std::string& name, const char* type, const char* help,
                       const std::string& labels, double value) {
          family[name] = {type, help};
          char num[64];
          std::snprintf(num, sizeof num, "%.6g", value);
          series[name].push_back(name + (labels.empty() ? "" : "{" + labels + "}") + " " + num);
        };
        for (const auto& c : cameras) {
          if (!app::in_scope(req, places, c->id())) continue;  // a scoped user's communes only
          const auto st = c->status();
          const std::string cam =
              "camera=\"" + esc(st.id) + "\",commune=\"" + esc(st.commune) + "\"";
          put("matthan_camera_up", "gauge", "1 when the camera is online", cam,
              st.state == StreamState::online ? 1 : 0);
          const auto a = analysis.stats(st.id);
          put("matthan_analysis_fps", "gauge", "frames analysed per second", cam, a.fps_analysed);
          put("matthan_analysis_dropped_total", "counter", "frames the analysis could not take",
              cam, static_cast<double>(a.frames_dropped));
          put("matthan_analysis_queue_frames", "gauge", "decoded frames waiting for analysis", cam,
              static_cast<double>(a.queued));
          for (const auto& ss : st.streams) {
            const std::string sl = cam + ",stream=\"" + std::string(to_string(ss.kind)) + "\"";
            // Each consumer of the stream's packets (recorder, live view) has its own queue.
            if (auto* session = c->session(ss.kind)) {
              for (const auto& q : session->packets().stats()) {
                const std::string ql = sl + ",queue=\"" + esc(q.name) + "\"";
                put("matthan_queue_packets", "gauge", "packets waiting for a consumer", ql,
                    static_cast<double>(q.queued));
                put("matthan_queue_bytes", "gauge", "bytes waiting for a consumer", ql,
                    static_cast<double>(q.queued_bytes));
                put("matthan_queue_dropped_total", "counter",
                    "packets a full queue dropped (live view only; recording never drops)", ql,
                    static_cast<double>(q.dropped));
              }
            }
            put("matthan_stream_fps", "gauge", "frames received per second", sl, ss.fps_in);
            put("matthan_stream_bitrate_bps", "gauge", "received bitrate", sl, ss.bitrate_bps);
            put("matthan_stream_reconnects_total", "counter", "reconnections", sl,
                static_cast<double>(ss.reconnects));
            put("matthan_stream_decode_errors_total", "counter", "frames that failed to decode", sl,
                static_cast<double>(ss.decode_errors));
            put("matthan_stream_link_degraded", "gauge",
                "1 while frames arrive late, short or broken (a bad link)", sl,
                ss.link_degraded ? 1 : 0);
          }
          if (const auto it = recorder_of.find(st.id); it != recorder_of.end()) {
            const auto r = it->second->stats();
            put("matthan_recorder_packets_total", "counter", "packets recorded", cam,
                static_cast<double>(r.packets));
            put("matthan_recorder_segments_total", "counter", "segments closed", cam,
                static_cast<double>(r.segments));
            put("matthan_recorder_errors_total", "counter", "write errors", cam,
                static_cast<double>(r.errors));
            put("matthan_recorder_paused", "gauge", "1 while a storage alarm pauses recording", cam,
                r.paused ? 1 : 0);
            put("matthan_recorder_lost_frames_total", "counter",
                "frames a failed write kept off the disk", cam, static_cast<double>(r.lost));
          }
        }
        const json storage = storage_json();
        for (const char* k : {"used_bytes", "free_bytes", "held_bytes"}) {
          if (storage.contains(k))
            put(std::string("matthan_storage_") + k, "gauge",
                "recordings volume (last retention pass)", "", storage[k].get<double>());
        }
        for (const auto& f : storage.value("forecast", json::array())) {
          const std::string id = f.value("camera", "");
          if (id.empty() || !app::in_scope(req, places, id)) continue;
          put("matthan_storage_camera_bytes", "gauge",
              "a camera's recordings (last retention pass)", "camera=\"" + esc(id) + "\"",
              f.value("bytes", 0.0));
        }
        put("matthan_db_write_failures_total", "counter", "database writes that failed", "",
            static_cast<double>((*db)->write_failures()));
        for (const auto& [key, ls] : live) {
          if (!app::in_scope(req, places, key.first)) continue;
          const auto l = ls->stats();
          const std::string lab = "camera=\"" + esc(key.first) + "\",stream=\"" +
                                  std::string(to_string(key.second)) + "\"";
          put("matthan_live_viewers", "gauge", "live viewers", lab, l.viewers);
          put("matthan_live_sent_total", "counter", "live fragments or pictures sent", lab,
              static_cast<double>(l.sent));
          put("matthan_live_skipped_total", "counter",
              "live fragments a lagging viewer skipped (to the next keyframe)", lab,
              static_cast<double>(l.skipped));
          put("matthan_live_sent_bytes_total", "counter", "live bytes sent", lab,
              static_cast<double>(l.bytes_sent));
        }
        const auto people = engine.people_stats();
        put("matthan_people_backlog", "gauge", "HOG jobs queued", "",
            static_cast<double>(people.backlog));
        put("matthan_uptime_seconds", "gauge", "since this run started", "",
            static_cast<double>(clock.now_us() - start_us) / 1e6);
        // The process and its heap: a soak tells a leak (bytes in use grow) from fragmentation
        // (free bytes the allocator holds grow) by these beside the resident size.
        const auto proc = process_figures();
        put("process_resident_memory_bytes", "gauge", "resident memory", "", proc.rss_bytes);
        put("process_open_fds", "gauge", "open file descriptors", "", proc.open_fds);
        put("matthan_process_threads", "gauge", "threads", "", proc.threads);
        put("matthan_heap_in_use_bytes", "gauge", "bytes allocated and not freed (malloc)", "",
            proc.heap_in_use);
        put("matthan_heap_free_bytes", "gauge",
            "freed bytes the allocator keeps in its arenas (fragmentation)", "", proc.heap_free);
        for (const auto& [name, lines] : series) {
          out += "# HELP " + name + " " + family[name].second + "\n# TYPE " + name + " " +
                 family[name].first + "\n";
          for (const auto& l : lines) out += l + "\n";
        }
        return {200, "text/plain; version=0.0.4; charset=utf-8", out};
      });
  router.add({"GET", "/api/routes", Role::admin, RouteKind::json, "this route table"},
             [&router](const web::HttpRequest&) {
               json list = json::array();
               for (const auto& r : router.routes()) {
                 list.push_back({{"method", r.method},
                                 {"path", r.pattern},
                                 {"role", r.role ? json(std::string(web::to_string(*r.role)))
                                                 : json("public")},
                                 {"kind", std::string(web::to_string(r.kind))},
                                 {"summary", r.summary}});
               }
               return web::HttpResponse{200, "application/json", json{{"routes", list}}.dump()};
             });
  router.add({"GET", "/api/cameras", Role::viewer, RouteKind::json,
              "cameras in the caller's scope and their status"},
             [&](const web::HttpRequest& req) {
               json list = json::array();
               for (auto& item : cameras_json()) {
                 if (app::in_scope(req, places, item["id"])) list.push_back(std::move(item));
               }
               json j{{"node_id", config.node_id}, {"cameras", list}};
               return web::HttpResponse{200, "application/json", j.dump()};
             });
  router.add({"GET", "/api/cameras/{id}", Role::viewer, RouteKind::json, "one camera's status"},
             [&](const web::HttpRequest& req) {
               const auto& id = req.params.at("id");
               for (auto& item : cameras_json()) {
                 if (item["id"] == id)
                   return web::HttpResponse{200, "application/json", item.dump()};
               }
               return web::json_error(404, "not_found", "no camera '" + id + "'");
             });
  router.add({"GET", "/api/cameras/{id}/uptime", Role::viewer, RouteKind::json,
              "online share of the monitored time over 24 h and 7 days"},
             [&](const web::HttpRequest& req) {
               const auto now = clock.now_us();
               const auto& id = req.params.at("id");
               // The report's definitions: time the server was down is not monitored.
               auto share = [&](std::int64_t window_us) {
                 const auto a = (*db)->read([&](sqlite3* conn) {
                   return report::camera_availability(conn, config, id, now - window_us, now, now);
                 });
                 if (!a) return json{{"error", a.error()}};
                 return json{{"uptime", a->uptime ? json(*a->uptime) : json()},
                             {"online_s", a->online_us / 1'000'000},
                             {"monitored_s", a->monitored_us / 1'000'000},
                             {"not_monitored_s", a->not_monitored_us / 1'000'000}};
               };
               return web::HttpResponse{200, "application/json",
                                        json{{"camera", id},
                                             {"h24", share(86'400'000'000LL)},
                                             {"d7", share(7 * 86'400'000'000LL)}}
                                            .dump()};
             });
  router.add({"GET", "/api/cameras/{id}/tune", Role::reviewer, RouteKind::json,
              "replay a stored clip with candidate analytics settings"},
             [&](const web::HttpRequest& req) { return tune_api(req, config); });
  // The evidence routes (app/evidence.cpp) parse their own paths; the table names them.
  auto evidence = [&](const web::HttpRequest& req) {
    auto handled = app::evidence_route(req, evidence_ctx);
    return handled ? *handled : web::json_error(404, "not_found", "no such route: " + req.path);
  };
  for (const auto& [method, pattern, role, kind, summary] : std::vector<web::Route>{
           {"GET", "/api/node/key", Role::reviewer, RouteKind::json, "the node's public key"},
           {"GET", "/api/storage", Role::reviewer, RouteKind::json, "storage, retention forecast"},
           {"GET", "/api/audit", Role::admin, RouteKind::json, "the audit log and its chain"},
           {"GET", "/api/holds", Role::reviewer, RouteKind::json, "evidence holds"},
           {"POST", "/api/holds", Role::reviewer, RouteKind::json, "hold a range (audited)"},
           {"POST", "/api/holds/{id}/release", Role::admin, RouteKind::json, "release a hold"},
           {"GET", "/api/exports", Role::reviewer, RouteKind::json, "export jobs"},
           {"POST", "/api/exports", Role::reviewer, RouteKind::json, "start an export"},
           {"GET", "/api/exports/{id}", Role::reviewer, RouteKind::json, "an export's progress"},
           {"GET", "/api/exports/{id}/files/{name}", Role::reviewer, RouteKind::file,
            "a file of a finished export (audited)"},
           {"GET", "/api/exports/{id}/record", Role::reviewer, RouteKind::file,
            "the printable extraction record, biên bản (html or pdf; audited)"},
           {"GET", "/api/events/{id}/clip.mp4", Role::reviewer, RouteKind::file,
            "the event's clip with pre/post capture (audited)"},
           {"GET", "/api/cameras/{id}/clip.mp4", Role::reviewer, RouteKind::file,
            "a range clip (audited)"},
           {"GET", "/api/cameras/{id}/recordings", Role::reviewer, RouteKind::json,
            "segments and gaps over a range"},
           {"GET", "/api/cameras/{id}/rollups", Role::reviewer, RouteKind::json,
            "daily recording figures"}}) {
    router.add({method, pattern, role, kind, summary}, evidence);
  }
  router.add_websocket(
      {"GET", "/api/ws", Role::viewer, RouteKind::websocket,
       "pushes new events and camera state changes"},
      [&](const web::HttpRequest& req) -> std::variant<web::HttpResponse, web::WsAccept> {
        return push.accept(req);
      });
  router.add_websocket(
      {"GET", "/api/cameras/{id}/live", Role::viewer, RouteKind::websocket,
       "live view: fragmented MP4 for Media Source Extensions (audited)"},
      [&](const web::HttpRequest& req) -> std::variant<web::HttpResponse, web::WsAccept> {
        const auto& id = req.params.at("id");
        const auto stream_name = req.query.contains("stream") ? req.query.at("stream") : "sub";
        if (stream_name != "main" && stream_name != "sub")
          return web::json_error(400, "bad_stream", "stream is main or sub");
        auto it = live.find({id, stream_name == "main" ? StreamKind::main : StreamKind::sub});
        if (it == live.end() && stream_name == "sub") it = live.find({id, StreamKind::main});
        if (it == live.end()) return web::json_error(404, "not_found", "no camera '" + id + "'");
        // A per-client cap: what may wait in its socket before it is skipped ahead.
        std::size_t cap = 512 * 1024;
        if (req.query.contains("cap_kb")) {
          const auto& v = req.query.at("cap_kb");
          if (v.empty() || v.size() > 6 || !std::all_of(v.begin(), v.end(), ::isdigit))
            return web::json_error(400, "bad_cap", "cap_kb is a number of kilobytes");
          cap = std::clamp<std::size_t>(std::stoul(v), 16, 8192) * 1024;
        }
        // A data budget (kilobits per second), e.g. for a phone on a 4G plan.
        double budget = 0;
        if (req.query.contains("max_kbps")) {
          const auto& v = req.query.at("max_kbps");
          if (v.empty() || v.size() > 6 || !std::all_of(v.begin(), v.end(), ::isdigit))
            return web::json_error(400, "bad_max_kbps", "max_kbps is a number of kilobits/s");
          budget =
              static_cast<double>(std::clamp<unsigned long>(std::stoul(v), 32, 100000)) * 1000 / 8;
        }
        const auto format = req.query.contains("format") ? req.query.at("format") : "mp4";
        if (format != "mp4" && format != "jpeg")
          return web::json_error(400, "bad_format", "format is mp4 or jpeg");
        evidence::append_audit(**db, config.node_id, clock.now_us(), req.user, "live_view", id,
                               json{{"stream", std::string(to_string(it->second->kind()))},
                                    {"format", format},
                                    {"source", req.remote}}
                                   .dump());
        auto* ls = it->second.get();
        auto viewer = std::make_shared<std::uint64_t>(0);
        web::WsAccept a;
        a.on_open = [ls, viewer, cap, budget,
                     jpeg = format == "jpeg"](const std::shared_ptr<web::WsChannel>& ch) {
          *viewer = ls->add_viewer(ch, cap, jpeg, budget);
        };
        a.on_close = [ls, viewer] { ls->remove_viewer(*viewer); };
        return a;
      });
  auto page = [](const web::HttpRequest& req) -> web::HttpResponse {
    const auto file = web::asset(req.path);
    if (!file) return web::json_error(404, "not_found", "no such page: " + req.path);
    const auto& p = req.path;
    const char* type = p == "/" || p.ends_with(".html") ? "text/html; charset=utf-8"
                       : p.ends_with(".js")             ? "text/javascript; charset=utf-8"
                       : p.ends_with(".css")            ? "text/css; charset=utf-8"
                       : p.ends_with(".json")           ? "application/json"
                       : p.ends_with(".svg")            ? "image/svg+xml"
                                                        : "application/octet-stream";
    return {200, type, std::string(*file)};
  };
  router.add({"GET", "/", std::nullopt, RouteKind::page, "the browser UI"}, page);
  router.add({"GET", "/{file}", std::nullopt, RouteKind::page, "the browser UI's files"}, page);

  // Open WebSockets and the request that opened each (its cookie or token), re-checked every
  // heartbeat. ws_mutex guards ws_open.
  struct WsWatch {
    std::weak_ptr<web::WsChannel> channel;
    web::HttpRequest request;
  };
  std::mutex ws_mutex;
  std::map<std::uint64_t, WsWatch> ws_open;
  std::uint64_t ws_next = 1;
  // A scope written with a commune's former code (before the 2025 mergers) means the commune.
  auto current_codes = [&](std::vector<std::string>& communes) {
    if (communes.empty()) return;
    const auto org = operation_ctx.config();
    for (auto& c : communes) {
      if (const auto* commune = org->organisation.commune(c)) c = commune->code;
    }
  };
  // One gate for HTTP and WebSocket: the route, then its role and CSRF, then object scope.
  auto route_of = [&](web::HttpRequest& req) -> std::variant<std::size_t, web::HttpResponse> {
    auto m = router.match(req.method, req.path);
    if (auto* answer = std::get_if<web::HttpResponse>(&m)) return *answer;
    auto& match = std::get<web::RouteMatch>(m);
    const auto& route = router.routes()[match.index];
    req.params = std::move(match.params);
    if (auto answer = app::check_access(req, route, auth, clock.now_us())) return *answer;
    current_codes(req.communes);
    if (route.pattern.starts_with("/api/cameras/{id}")) {
      const auto& id = req.params.at("id");
      if (!places.contains(id)) return web::json_error(404, "not_found", "no camera '" + id + "'");
      if (!app::in_scope(req, places, id))
        return web::json_error(403, "out_of_scope", "camera '" + id + "' is outside your communes");
    }
    if (route.pattern.starts_with("/api/events/{id}")) {
      const auto& id = req.params.at("id");
      auto camera = app::event_camera(event_ctx, id);
      if (!camera) {
        // The page hears of an event (push, alert) as its row is queued for the writer: a
        // guard quick enough to answer must not get 404.
        (*db)->flush();
        camera = app::event_camera(event_ctx, id);
      }
      if (!camera) return web::json_error(404, "not_found", "no event '" + id + "'");
      if (!app::in_scope(req, places, *camera))
        return web::json_error(403, "out_of_scope", "event '" + id + "' is outside your communes");
    }
    return match.index;
  };
  web::HttpServer http(
      io,
      [&](const web::HttpRequest& incoming) -> web::HttpResponse {
        web::HttpRequest req = incoming;
        auto r = route_of(req);
        if (auto* answer = std::get_if<web::HttpResponse>(&r)) return *answer;
        const auto index = std::get<std::size_t>(r);
        if (router.routes()[index].kind == RouteKind::websocket)
          return web::json_error(426, "upgrade_required", req.path + " is a WebSocket");
        if (req.method == "HEAD") {  // the server sends the head only
          req.method = "GET";
          req.head = true;
        }
        return router.handler(index)(req);
      },
      [&](const web::HttpRequest& incoming) -> std::variant<web::HttpResponse, web::WsAccept> {
        web::HttpRequest req = incoming;
        // Browsers send cookies with cross-origin WebSocket handshakes: only our own pages.
        if (const auto o = req.headers.find("origin"); o != req.headers.end()) {
          const auto h = req.headers.find("host");
          const auto at = o->second.find("://");
          const auto origin_host = at == std::string::npos ? o->second : o->second.substr(at + 3);
          if (h == req.headers.end() || origin_host != h->second)
            return web::json_error(403, "bad_origin",
                                   "a WebSocket from another site: " + o->second);
        }
        auto r = route_of(req);
        if (auto* answer = std::get_if<web::HttpResponse>(&r)) return *answer;
        const auto index = std::get<std::size_t>(r);
        if (router.routes()[index].kind != RouteKind::websocket)
          return web::json_error(400, "not_websocket", req.path + " is not a WebSocket");
        auto answer = router.ws_handler(index)(req);
        auto* accept = std::get_if<web::WsAccept>(&answer);
        if (accept == nullptr) return answer;
        // Watched: closed when its session or token stops being valid (logout, expiry,
        // a new password).
        auto id = std::make_shared<std::uint64_t>(0);
        accept->on_open = [&, id, req, open = std::move(accept->on_open)](
                              const std::shared_ptr<web::WsChannel>& ch) {
          {
            std::lock_guard lock(ws_mutex);
            *id = ws_next++;
            ws_open[*id] = {ch, req};
          }
          if (open) open(ch);
        };
        accept->on_close = [&, id, close = std::move(accept->on_close)] {
          {
            std::lock_guard lock(ws_mutex);
            ws_open.erase(*id);
          }
          if (close) close();
        };
        return answer;
      },
      // Logins (Argon2id, ~0.1 s and 64 MiB each) and clip cuts wait here, not on io threads.
      4);
  auto bound = http.start(config.server.listen_address, config.server.listen_port,
                          config.server.tls_cert, config.server.tls_key);
  if (!bound) {
    spdlog::error("{}", bound.error());
    return 1;
  }

  for (auto& c : cameras) c->start();
  runtime.start();
  spdlog::info("matthan {} serving {} camera(s) on {}://{}:{}/ (node {}, run {}, data {})",
               MATTHAN_VERSION, cameras.size(), tls ? "https" : "http",
               config.server.listen_address, *bound, config.node_id, run_id,
               config.server.data_dir);
  if (zmq) std::printf("EVENTS %s\n", zmq->endpoint().c_str());
  std::printf("LISTENING %s://%s:%d/\n", tls ? "https" : "http",
              config.server.listen_address.c_str(), *bound);
  std::fflush(stdout);
  // Under systemd: ready now; the watchdog pings come from the io threads.
  app::ServiceNotifier service(io);
  service.ready(std::to_string(cameras.size()) + " camera(s) on " + (tls ? "https" : "http") +
                "://" + config.server.listen_address + ":" + std::to_string(*bound) + "/");

  // Heartbeat: marks this run as monitored time and watches the clock for steps.
  boost::asio::steady_timer heartbeat(io);
  std::function<void()> beat = [&] {
    heartbeat.expires_after(std::chrono::seconds(config.server.heartbeat_s));
    heartbeat.async_wait([&](const boost::system::error_code& e) {
      if (e) return;
      const std::int64_t wall = clock.now_us();
      // Every step since the last beat, each stored (export manifests list them).
      const std::int64_t ahead = clock.steps().ahead_us;
      for (const auto& [at, delta] : clock.take_steps()) {
        const std::string detail =
            delta >= 0 ? std::string("system clock set forward; server time followed")
            : ahead > 0
                ? fmt::format(
                      "system clock set back; server time runs 5 % slow until it catches"
                      " up ({:.1f} s ahead now)",
                      static_cast<double>(ahead) / 1e6)
                : std::string("system clock set back too far to absorb; server time followed");
        spdlog::warn("the system clock stepped by {:+.3f} s: {}", static_cast<double>(delta) / 1e6,
                     detail);
        status.record_clock_event(ClockEventKind::jump, at, delta, detail);
      }
      const bool now_synced = ntp_synchronised();
      if (now_synced != synced) {
        synced = now_synced;
        status.record_clock_event(
            synced ? ClockEventKind::ntp_synchronised : ClockEventKind::ntp_unsynchronised, wall, 0,
            "");
      }
      if (wall - head_signed_us >= 3'600'000'000LL) {
        evidence::sign_audit_head(**db, config.node_id, *node_key, wall);
        head_signed_us = wall;
      }
      status.record_heartbeat(run_id, start_us, wall, false);
      {
        // A WebSocket lives only as long as the session or token that opened it, and the role
        // and scope it was opened with (an admin's change closes it; the page reconnects).
        std::vector<std::pair<std::weak_ptr<web::WsChannel>, web::HttpRequest>> open;
        {
          std::lock_guard lock(ws_mutex);
          for (const auto& [id, w] : ws_open) open.emplace_back(w.channel, w.request);
        }
        for (const auto& [channel, request] : open) {
          if (auto who = auth.authenticate(request, wall)) {
            current_codes(who->communes);
            if (std::string(web::to_string(who->role)) == request.role &&
                who->communes == request.communes && who->cameras == request.cameras)
              continue;
          }
          if (auto ch = channel.lock()) ch->close();
        }
      }
      beat();
    });
  };
  boost::asio::post(io, beat);

  std::mutex retention_mutex;  // guards retention_stop
  std::condition_variable retention_cv;
  bool retention_stop = false;
  std::thread retention;
  if (config.recording.enabled) {
    storage::RetentionPolicy policy;
    policy.node_id = config.node_id;
    policy.root = config.recording.dir.empty() ? config.server.data_dir + "/recordings"
                                               : config.recording.dir;
    policy.days = config.recording.retention_days;
    policy.event_days = config.recording.event_retention_days;
    for (const auto* list : {&config.cameras, &config.retired}) {  // retired footage too
      for (const auto& c : *list) {
        policy.per_camera[c.id] = {c.retention_days.value_or(policy.days),
                                   c.event_retention_days.value_or(policy.event_days)};
      }
    }
    policy.max_bytes = static_cast<std::int64_t>(config.recording.max_mb * 1024 * 1024);
    policy.min_free_bytes = static_cast<std::int64_t>(config.recording.min_free_mb * 1024 * 1024);
    retention = std::thread([&, policy] {
      const auto interval = std::chrono::milliseconds(
          static_cast<std::int64_t>(config.recording.retention_interval_s * 1000));
      // Write failures (a full or read-only volume, an I/O error) are looked for more often
      // than retention runs: the alarm should not wait a minute.
      const auto tick = std::min(interval, std::chrono::milliseconds(2000));
      auto next_retention = std::chrono::steady_clock::now();
      storage::RetentionReport r;
      std::unique_lock lock(retention_mutex);
      while (!retention_stop) {
        lock.unlock();
        const auto now = clock.now_us();
        const bool due = std::chrono::steady_clock::now() >= next_retention;
        if (due) {
          next_retention = std::chrono::steady_clock::now() + interval;
          r = storage::run_retention(**db, policy, now);
          if (r.deleted > 0) {
            spdlog::info("retention: deleted {} segment(s), {} MiB; {} MiB free", r.deleted,
                         r.deleted_bytes >> 20, r.free_bytes >> 20);
          }
        }
        // Only held footage left over the budget: stop recording rather than delete evidence.
        // A recorder whose writes fail: the same alarm, with the system's reason.
        std::string why = r.over_budget ? r.alarm : "";
        std::string label = r.over_budget ? "volume_full" : "";
        if (!r.over_budget) {
          // The cameras share one volume: a camera that went offline while its writes failed
          // keeps saying "failing", but frames of any camera flushed to the disk well after
          // that failure (10 s: not one lucky fragment on a nearly full disk) show that the
          // volume is writable again.
          std::int64_t newest_durable = 0;
          for (const auto& rec : recorders) {
            newest_durable = std::max(newest_durable, rec->stats().durable_steady_us);
          }
          for (const auto& rec : recorders) {
            const auto st = rec->stats();
            if (!st.failing || newest_durable - st.failure_steady_us > 10'000'000) continue;
            why = "camera " + rec->camera_id() + ": " + st.last_error;
            label = st.last_error.find("ead-only") != std::string::npos  // strerror(EROFS)
                        ? "volume_read_only"
                        : st.last_error.find("is full") != std::string::npos ||
                                  st.last_error.find("No space") != std::string::npos
                              ? "volume_full"
                              : "write_failed";
            break;
          }
        }
        if (storage_alarm && storage_alarm->label != label) {
          spdlog::warn("storage alarm cleared: {}", label.empty() ? "recording resumes" : why);
          storage_alarm->end_us = now;
          events.on_event(EventPhase::end, *storage_alarm);
          storage_alarm.reset();
        }
        if (!label.empty() && !storage_alarm) {
          spdlog::error("storage alarm: {}{}", why,
                        r.over_budget ? "; recording stops on this volume" : "");
          Event e;
          e.id = make_ulid(now);
          e.camera_id = "-";  // the node, not a camera
          e.type = "storage_alarm";
          e.label = label;
          e.start_us = now;
          storage_alarm = e;
          events.on_event(EventPhase::start, e);
        }
        for (auto& rec : recorders) rec->set_paused(r.over_budget);
        if (!due) {
          {
            std::lock_guard state_lock(storage_mutex);
            storage_state["alarm"] = why.empty() ? json() : json(why);
            storage_state["alarm_kind"] = label.empty() ? json() : json(label);
          }  // not held while waiting: /healthz and /api/storage read it
          lock.lock();
          retention_cv.wait_for(lock, tick, [&] { return retention_stop; });
          continue;
        }
        json forecast = json::array();
        for (const auto& f : r.forecast) {
          forecast.push_back({{"camera", f.camera_id},
                              {"bytes", f.bytes},
                              {"bytes_per_day", f.bytes_per_day},
                              {"days_kept", f.days_kept},
                              {"oldest", format_iso8601_us(f.oldest_us)}});
        }
        {
          std::lock_guard state_lock(storage_mutex);
          storage_state = json{{"enabled", true},
                               {"volume", policy.root},
                               {"checked", format_iso8601_us(now)},
                               {"used_bytes", r.used_bytes},
                               {"free_bytes", r.free_bytes},
                               {"held_bytes", r.held_bytes},
                               {"max_bytes", policy.max_bytes},
                               {"min_free_bytes", policy.min_free_bytes},
                               {"deleted_last_pass", r.deleted},
                               {"recording_paused", r.over_budget},
                               {"alarm", why.empty() ? json() : json(why)},
                               {"alarm_kind", label.empty() ? json() : json(label)},
                               {"forecast", forecast}};
        }
        lock.lock();
        retention_cv.wait_for(lock, tick, [&] { return retention_stop; });
      }
    });
  }

  // Stop cleanly on SIGINT/SIGTERM: the main thread waits here.
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGHUP);
  int sig = 0;
  sigwait(&set, &sig);
  restart_requested = sig == SIGHUP;
  spdlog::info("signal {}: {}", sig, restart_requested ? "restarting in place" : "stopping");
  if (restart_requested)
    service.restarting();
  else
    service.stopping();
  http.stop();
  {
    std::lock_guard lock(retention_mutex);
    retention_stop = true;
  }
  retention_cv.notify_all();
  if (retention.joinable()) retention.join();
  app::join_export_jobs();
  for (auto& c : cameras) c->request_stop();
  for (auto& c : cameras) c->stop();
  // The fan-outs have drained into the recorders and joined their threads: end the segments.
  for (auto& r : recorders) r->close();
  analysis.stop();
  engine.close_all(clock.now_us());
  status.close_all(clock.now_us());
  heartbeat.cancel();
  push.close();  // its sockets belong to the io_context that stops next
  runtime.stop();
  status.record_heartbeat(run_id, start_us, clock.now_us(), true);
  (*db)->flush();
  spdlog::info("stopped");
  return 0;
}

}  // namespace

// glibc's malloc adds an arena whenever threads contend for one, up to 8 per core (16 here);
// libav's aligned blocks fragment each, and the memory they hold crept up by about 5 MB an hour
// over a 16-camera soak. With 4 it stayed flat at the same CPU (docs/design/hardening.md,
// "Allocator"). An arena_max in GLIBC_TUNABLES is left to win.
static void limit_malloc_arenas() {
#if defined(__GLIBC__) && !MATTHAN_JEMALLOC
  const char* tunables = std::getenv("GLIBC_TUNABLES");
  if (tunables == nullptr || std::strstr(tunables, "arena_max") == nullptr) mallopt(M_ARENA_MAX, 4);
#endif
}

int main(int argc, char** argv) {
  limit_malloc_arenas();
  // Block the stop signals in every thread; main waits for them with sigwait().
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGHUP);  // restart in place (the admin page's "apply")
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  std::signal(SIGPIPE, SIG_IGN);

  std::vector<std::string> args(argv + 1, argv + argc);
  if (args.empty()) return usage();
  const std::string cmd = args[0];
  args.erase(args.begin());
  if (cmd == "--version" || cmd == "version") {
    std::printf("matthan %s\n", MATTHAN_VERSION);
    return 0;
  }
  if (cmd == "check-config" && args.size() == 1) return check_config(args[0]);
  if (cmd == "probe") return probe(args);
  if (cmd == "tune") return tune(args);
  if (cmd == "export") return app::export_cli(args);
  if (cmd == "verify-export") return app::verify_export_cli(args);
  if (cmd == "hold") return app::hold_cli(args);
  if (cmd == "backup") return app::backup_cli(args);
  if (cmd == "restore") return app::restore_cli(args);
  if (cmd == "user") return app::user_cli(args);
  if (cmd == "audit") return app::audit_cli(args);
  if (cmd == "report") return app::report_cli(args);
  if (cmd == "record") return app::record_cli(args);
  if (cmd == "run") {
    if (args.size() == 2 && args[0] == "--config") {
      const int rc = run(args[1]);
      if (rc != 0 || !restart_requested) return rc;
      // Everything has stopped and closed its files: the same binary, the same arguments, the
      // same pid (systemd and the test harness keep watching it).
      spdlog::shutdown();
      // A SIGHUP that came while stopping would survive the exec (pending and blocked) and
      // restart the new image at once: take it now.
      sigset_t hup;
      sigemptyset(&hup);
      sigaddset(&hup, SIGHUP);
      const timespec none{0, 0};
      while (sigtimedwait(&hup, nullptr, &none) == SIGHUP) {
      }
      // By its real path, so that the process keeps its name (ps, pgrep, the journal).
      char self[4096] = {};
      const auto n = ::readlink("/proc/self/exe", self, sizeof self - 1);
      const char* path = n > 0 ? self : "/proc/self/exe";
      ::execv(path, argv);
      std::fprintf(stderr, "restart: cannot execute %s: %s\n", path, std::strerror(errno));
      return 1;
    }
    return usage();
  }
  return usage();
}
