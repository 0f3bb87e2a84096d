#include "evidence.hpp"

#include <spdlog/spdlog.h>
#include <sqlite3.h>
#include <sys/timex.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <future>
#include <map>
#include <nlohmann/json.hpp>

#include "matthan/core/clock.hpp"
#include "matthan/core/ids.hpp"
#include "matthan/core/logging.hpp"
#include "matthan/core/time_format.hpp"
#include "matthan/evidence/audit.hpp"
#include "matthan/evidence/backup.hpp"
#include "matthan/evidence/export.hpp"
#include "matthan/evidence/holds.hpp"
#include "matthan/report/operation_report.hpp"
#include "matthan/storage/clip.hpp"
#include "matthan/storage/sql.hpp"
#include "matthan/storage/transcode.hpp"

namespace matthan::app {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

// Who asked (set by the auth gate), for the audit log.
std::string actor_of(const web::HttpRequest& req) {
  return req.user.empty() ? "unknown" : req.user;
}

std::string query(const web::HttpRequest& req, const std::string& key, std::string fallback = {}) {
  const auto it = req.query.find(key);
  return it == req.query.end() ? fallback : it->second;
}

// A camera taken out (retired) still has footage until retention: evidence routes find it too.
const CameraConfig* find_camera(const Config& config, const std::string& id) {
  for (const auto* list : {&config.cameras, &config.retired}) {
    for (const auto& c : *list) {
      if (c.id == id) return &c;
    }
  }
  return nullptr;
}

// A scoped user acts only on the cameras of their communes and their own cameras.
template <typename Camera>  // CameraConfig or evidence::ExportCamera: an id and a commune
bool in_scope(const web::HttpRequest& req, const Camera& camera) {
  return !req.scoped() ||
         std::find(req.communes.begin(), req.communes.end(), camera.commune) !=
             req.communes.end() ||
         std::find(req.cameras.begin(), req.cameras.end(), camera.id) != req.cameras.end();
}

bool cameras_in_scope(const Config& config, const web::HttpRequest& req, const json& ids) {
  if (!req.scoped()) return true;
  for (const auto& id : ids) {
    const auto* c = id.is_string() ? find_camera(config, id.get<std::string>()) : nullptr;
    if (c == nullptr || !in_scope(req, *c)) return false;
  }
  return true;
}

std::string col(sqlite3_stmt* st, int c) {
  const auto* t = sqlite3_column_text(st, c);
  return t != nullptr ? reinterpret_cast<const char*>(t) : "";
}

// The codec most recently recorded on a camera stream in a range ("" when none).
std::string recorded_codec(storage::Database& db, const std::string& node, const std::string& cam,
                           const std::string& stream, std::int64_t from, std::int64_t to) {
  return db.read([&](sqlite3* conn) {
    sqlite3_stmt* st = nullptr;
    sqlite3_prepare_v2(conn,
                       "SELECT codec FROM segment WHERE node_id = ?1 AND camera_id = ?2 AND"
                       " stream = ?3 AND start_us < ?5 AND (end_us > ?4 OR state = 'open')"
                       " ORDER BY start_us DESC LIMIT 1",
                       -1, &st, nullptr);
    sqlite3_bind_text(st, 1, node.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 2, cam.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 3, stream.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 4, from);
    sqlite3_bind_int64(st, 5, to);
    std::string codec;
    if (sqlite3_step(st) == SQLITE_ROW) codec = col(st, 0);
    sqlite3_finalize(st);
    return codec;
  });
}

// Serves [first, last] of a file for a Range header (RFC 9110); 200 with the whole file
// without one.
web::HttpResponse file_response(const std::string& path, const web::HttpRequest& req,
                                const std::string& content_type) {
  std::error_code ec;
  const auto size = static_cast<std::int64_t>(fs::file_size(path, ec));
  if (ec) return web::json_error(500, "internal", "the clip file is gone");
  std::int64_t first = 0, last = size - 1;
  bool partial = false;
  if (auto it = req.headers.find("range"); it != req.headers.end()) {
    const std::string& r = it->second;
    if (!r.starts_with("bytes=") || r.find(',') != std::string::npos) {
      web::HttpResponse bad = web::json_error(416, "bad_range", "only one bytes= range is served");
      bad.headers.emplace_back("Content-Range", "bytes */" + std::to_string(size));
      return bad;
    }
    const std::string spec = r.substr(6);
    const auto dash = spec.find('-');
    // Digits only (from_chars: no sign, no junk after the number).
    auto number = [](std::string_view t, std::int64_t* v) {
      const auto res = std::from_chars(t.data(), t.data() + t.size(), *v);
      return !t.empty() && res.ec == std::errc() && res.ptr == t.data() + t.size() && *v >= 0;
    };
    std::int64_t a = 0, b = 0;
    if (dash == std::string::npos) {
      first = size;          // unsatisfiable below
    } else if (dash == 0) {  // the last N bytes
      if (number(std::string_view(spec).substr(1), &b) && b > 0) {
        first = std::max<std::int64_t>(0, size - b);
      } else {
        first = size;
      }
    } else if (number(std::string_view(spec).substr(0, dash), &a)) {
      first = a;
      if (dash + 1 < spec.size()) {
        if (number(std::string_view(spec).substr(dash + 1), &b)) {
          last = std::min<std::int64_t>(last, b);  // an end past the file is clamped (RFC 9110)
        } else {
          first = size;
        }
      }
    } else {
      first = size;
    }
    if (dash == std::string::npos || first >= size || first > last) {
      web::HttpResponse bad = web::json_error(416, "bad_range", "range not satisfiable");
      bad.headers.emplace_back("Content-Range", "bytes */" + std::to_string(size));
      return bad;
    }
    partial = true;
  }
  // Bodies are built in memory: a big file is served in Range pieces (players and download
  // tools ask again for the rest).
  constexpr std::int64_t kPiece = 64LL << 20;
  if (!partial && size > 4 * kPiece) {
    return web::json_error(
        413, "too_large",
        "this file is " + std::to_string(size >> 20) + " MiB: fetch it with HTTP Range requests");
  }
  if (partial) last = std::min(last, first + kPiece - 1);
  web::HttpResponse res{partial ? 206 : 200, content_type, {}, {}};
  res.body.resize(static_cast<std::size_t>(last - first + 1));
  std::ifstream in(path, std::ios::binary);
  in.seekg(first);
  in.read(res.body.data(), static_cast<std::streamsize>(res.body.size()));
  if (!in) return web::json_error(500, "internal", "the file could not be read");
  res.headers.emplace_back("Accept-Ranges", "bytes");
  if (partial) {
    res.headers.emplace_back(
        "Content-Range",
        "bytes " + std::to_string(first) + "-" + std::to_string(last) + "/" + std::to_string(size));
  }
  return res;
}

// One clip built at a time (a remux reads and writes the whole range); a built clip is cached
// so Range requests for it return the same bytes.
std::mutex clip_mutex;

// H.265 → H.264 for the browser: one at a time (a second request gets 429), at most 10 min of
// footage, its cost reported in /api/storage.
std::mutex transcode_mutex;        // held while a transcode runs
std::mutex transcode_stats_mutex;  // guards transcode_stats
json transcode_stats{{"runs", 0}, {"frames", 0}, {"cpu_s", 0.0}, {"busy_refusals", 0}};

web::HttpResponse clip_route(const web::HttpRequest& req, EvidenceContext& ctx,
                             const std::string& camera, std::int64_t from, std::int64_t to,
                             const std::string& what) {
  const auto& config = ctx.config;
  if (to <= from) return web::json_error(400, "bad_range", "'to' must be after 'from'");
  if (to - from > 3 * 3600 * 1'000'000LL)
    return web::json_error(400, "too_long", "a clip is at most 3 hours: export longer ranges");
  std::string stream = query(req, "stream", "auto");
  if (stream != "main" && stream != "sub" && stream != "auto")
    return web::json_error(400, "bad_stream", "stream must be main, sub or auto");
  if (stream == "auto") {
    // Chromium cannot play H.265: an H.265 camera plays from its H.264 sub stream if recorded.
    stream = "main";
    if (recorded_codec(ctx.db, config.node_id, camera, "main", from, to) == "h265" &&
        recorded_codec(ctx.db, config.node_id, camera, "sub", from, to) == "h264") {
      stream = "sub";
    }
  }
  const std::string dir = config.server.data_dir + "/cache/clips";
  const std::string path = dir + "/" + camera + "-" + stream + "-" + std::to_string(from) + "-" +
                           std::to_string(to) + ".mp4";
  // Still H.265 after the choice above: transcode for the browser unless told not to.
  const std::string transcode = query(req, "transcode", "auto");
  const bool want_h264 =
      transcode == "1" ||
      (transcode == "auto" && query(req, "stream", "auto") == "auto" &&
       recorded_codec(ctx.db, config.node_id, camera, stream, from, to) == "h265");
  {
    std::lock_guard lock(clip_mutex);
    std::error_code ec;
    if (!fs::exists(path, ec)) {
      fs::create_directories(dir, ec);
      // Cached clips live an hour.
      const auto now = fs::file_time_type::clock::now();
      for (const auto& e : fs::directory_iterator(dir, ec)) {
        if (now - e.last_write_time(ec) > std::chrono::hours(1)) fs::remove(e.path(), ec);
      }
      storage::ClipRequest r{config.node_id, camera, stream, from, to, false, true};
      auto made = storage::write_clip(ctx.db, r, path);
      if (!made) return web::json_error(404, "no_footage", made.error());
    }
  }
  std::string served = path;
  if (want_h264) {
    if (to - from > 600 * 1'000'000LL)
      return web::json_error(400, "too_long", "a transcoded clip is at most 10 minutes");
    served = path.substr(0, path.size() - 4) + "-h264.mp4";
    std::error_code ec;
    if (!fs::exists(served, ec)) {
      std::unique_lock busy(transcode_mutex, std::try_to_lock);
      if (!busy.owns_lock()) {
        std::lock_guard s(transcode_stats_mutex);
        transcode_stats["busy_refusals"] = transcode_stats["busy_refusals"].get<int>() + 1;
        return web::json_error(429, "busy", "another H.265 clip is being converted; try again");
      }
      auto t = storage::transcode_to_h264(path, served);
      if (!t) return web::json_error(500, "transcode_failed", t.error());
      spdlog::info("clip {}: H.265 converted for the browser: {} frames, {:.1f} s CPU", camera,
                   t->frames, t->cpu_s);
      std::lock_guard s(transcode_stats_mutex);
      transcode_stats["runs"] = transcode_stats["runs"].get<int>() + 1;
      transcode_stats["frames"] = transcode_stats["frames"].get<std::int64_t>() + t->frames;
      transcode_stats["cpu_s"] = transcode_stats["cpu_s"].get<double>() + t->cpu_s;
      transcode_stats["last_wall_s"] = t->wall_s;
    }
  }
  // One audit row per viewing, not per Range chunk.
  const auto range = req.headers.find("range");
  if (!req.head && (range == req.headers.end() || range->second.starts_with("bytes=0-"))) {
    evidence::append_audit(ctx.db, config.node_id, ctx.clock.now_us(), actor_of(req), "clip_view",
                           camera,
                           json{{"from", format_iso8601_us(from)},
                                {"to", format_iso8601_us(to)},
                                {"stream", stream},
                                {"what", what}}
                               .dump());
  }
  auto res = file_response(served, req, "video/mp4");
  res.headers.emplace_back("X-Matthan-Stream", stream);
  if (want_h264) res.headers.emplace_back("X-Matthan-Transcoded", "h265-to-h264");
  return res;
}

json export_row_json(sqlite3_stmt* st) {
  json j{{"id", col(st, 0)},
         {"cameras", json::parse(col(st, 1), nullptr, false)},
         {"from", format_iso8601_us(sqlite3_column_int64(st, 2))},
         {"to", format_iso8601_us(sqlite3_column_int64(st, 3))},
         {"reason", col(st, 4)},
         {"requesting_unit", col(st, 5)},
         {"officer", col(st, 6)},
         {"case_id", sqlite3_column_type(st, 7) == SQLITE_NULL ? json() : json(col(st, 7))},
         {"created_by", col(st, 8)},
         {"created", format_iso8601_us(sqlite3_column_int64(st, 9))},
         {"state", col(st, 10)},
         {"progress", sqlite3_column_double(st, 11)},
         {"error", col(st, 12)},
         {"manifest_sha256", col(st, 13)},
         {"bytes", sqlite3_column_int64(st, 14)}};
  return j;
}

json list_exports(storage::Database& db, const std::string& node, const std::string& id) {
  return db.read([&](sqlite3* conn) {
    json out = json::array();
    sqlite3_stmt* st = nullptr;
    sqlite3_prepare_v2(conn,
                       "SELECT id, cameras, start_us, end_us, reason, requesting_unit, officer,"
                       " case_id, created_by, created_us, state, progress, error, manifest_sha256,"
                       " bytes FROM export_job WHERE node_id = ?1 AND (?2 = '' OR id = ?2)"
                       " ORDER BY created_us DESC LIMIT 200",
                       -1, &st, nullptr);
    sqlite3_bind_text(st, 1, node.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 2, id.c_str(), -1, SQLITE_TRANSIENT);
    while (sqlite3_step(st) == SQLITE_ROW) out.push_back(export_row_json(st));
    sqlite3_finalize(st);
    return out;
  });
}

json hold_json(const evidence::Hold& h) {
  return json{{"id", h.id},
              {"cameras", h.cameras},
              {"from", format_iso8601_us(h.start_us)},
              {"to", format_iso8601_us(h.end_us)},
              {"reason", h.reason},
              {"created_by", h.created_by},
              {"created", format_iso8601_us(h.created_us)},
              {"expires", h.expires_us ? json(format_iso8601_us(*h.expires_us)) : json()},
              {"released", h.released_us ? json(format_iso8601_us(*h.released_us)) : json()},
              {"export_id", h.export_id.empty() ? json() : json(h.export_id)}};
}

// One thread per running export (they are rare and each is disk-bound). A finished one is
// reaped at the next export, so its stack is reused instead of kept until shutdown.
std::mutex jobs_mutex;  // guards jobs
std::vector<std::future<void>> jobs;

std::vector<evidence::ExportCamera> export_cameras(const Config& config,
                                                   const std::vector<std::string>& ids,
                                                   std::string* error) {
  std::vector<evidence::ExportCamera> out;
  for (const auto& id : ids) {
    const auto* c = find_camera(config, id);
    if (c == nullptr) {
      *error = "no camera '" + id + "' in the config";
      return {};
    }
    out.push_back({c->id, c->name, c->commune, c->hamlet, c->site});
  }
  return out;
}

web::HttpResponse post_export(const web::HttpRequest& req, EvidenceContext& ctx) {
  json body;
  try {
    body = json::parse(req.body);
  } catch (const std::exception&) {
    return web::json_error(400, "bad_json", "the body must be a JSON object");
  }
  if (!body.is_object() || !body.contains("cameras") || !body["cameras"].is_array())
    return web::json_error(400, "bad_request", "cameras (a list of camera ids) is required");
  evidence::ExportRequest r;
  std::string error;
  std::vector<std::string> ids;
  for (const auto& c : body["cameras"]) {
    if (!c.is_string()) return web::json_error(400, "bad_request", "cameras must be strings");
    ids.push_back(c.get<std::string>());
  }
  r.cameras = export_cameras(ctx.config, ids, &error);
  if (!error.empty()) return web::json_error(400, "bad_camera", error);
  for (const auto& c : r.cameras) {
    if (!in_scope(req, c))
      return web::json_error(403, "out_of_scope", "camera '" + c.id + "' is outside your scope");
  }
  const auto now = ctx.clock.now_us();
  const auto from = parse_time_arg(body.value("from", ""), now);
  const auto to = parse_time_arg(body.value("to", ""), now);
  if (!from || !to) return web::json_error(400, "bad_time", "from and to must be ISO 8601 times");
  r.from_us = *from;
  r.to_us = *to;
  r.reason = body.value("reason", "");
  if (r.reason.empty()) return web::json_error(400, "bad_request", "reason is required");
  r.requesting_unit = body.value("requesting_unit", "");
  r.officer = body.value("officer", "");
  r.case_id = body.value("case_id", "");
  r.created_by = actor_of(req);
  r.node_id = ctx.config.node_id;
  r.time_zone = ctx.config.server.time_zone;
  r.ntp_synchronised = ctx.ntp_synchronised();
  r.clock_ahead_us = ctx.clock_ahead_us ? ctx.clock_ahead_us() : 0;
  r.id = make_ulid(now);
  r.out_dir = ctx.config.server.data_dir + "/exports/" + r.id;
  evidence::register_export_job(ctx.db, r, now);
  std::lock_guard lock(jobs_mutex);
  std::erase_if(jobs, [](const std::future<void>& f) {
    return f.wait_for(std::chrono::seconds(0)) == std::future_status::ready;
  });
  jobs.push_back(std::async(std::launch::async, [r, now, &db = ctx.db, &key = ctx.key] {
    auto done = evidence::run_export(db, key, r, now);
    if (!done)
      spdlog::error("export {}: {}", r.id, done.error());
    else
      spdlog::info("export {} done: {} file(s), {} bytes", r.id, done->files.size(), done->bytes);
  }));
  return {202, "application/json", json{{"id", r.id}, {"state", "running"}}.dump(), {}};
}

}  // namespace

bool ntp_synchronised() {
  timex tx{};
  const int state = ntp_adjtime(&tx);
  return state != TIME_ERROR && (tx.status & STA_UNSYNC) == 0;
}

void join_export_jobs() {
  std::lock_guard lock(jobs_mutex);
  jobs.clear();  // a future from std::async waits for its thread
}

std::optional<std::int64_t> parse_time_arg(const std::string& text, std::int64_t now_us) {
  if (text.empty()) return std::nullopt;
  if (text.starts_with("now")) {
    if (text == "now") return now_us;
    if (text.size() < 6 || text[3] != '-') return std::nullopt;
    char* end = nullptr;
    const double n = std::strtod(text.c_str() + 4, &end);
    const std::string unit(end);
    const double scale = unit == "s"   ? 1
                         : unit == "m" ? 60
                         : unit == "h" ? 3600
                         : unit == "d" ? 86400
                                       : 0;
    if (scale == 0 || n < 0) return std::nullopt;
    return now_us - static_cast<std::int64_t>(n * scale * 1e6);
  }
  if (auto t = parse_iso8601_us(text)) return t;
  // Local time of the server's zone, without an offset.
  std::tm tm{};
  const char* rest = strptime(text.c_str(), "%Y-%m-%d %H:%M:%S", &tm);
  if (rest == nullptr) rest = strptime(text.c_str(), "%Y-%m-%dT%H:%M:%S", &tm);
  if (rest == nullptr || *rest != '\0') return std::nullopt;
  tm.tm_isdst = -1;
  return static_cast<std::int64_t>(std::mktime(&tm)) * 1'000'000;
}

// The extraction record (biên bản) of a finished export, from its manifest: HTML or PDF.
web::HttpResponse record_route(const web::HttpRequest& req, EvidenceContext& ctx,
                               const std::string& id, const json& row) {
  if (row["state"] != "done")
    return web::json_error(409, "not_done", "export " + id + " has not finished");
  const auto format = query(req, "format", "html");
  if (format != "html" && format != "pdf")
    return web::json_error(400, "bad_format", "format must be html or pdf");
  // The export's own directory: the API's under data_dir, the CLI's where it was asked for.
  std::string dir = ctx.db.read([&](sqlite3* conn) {
    storage::Statement st(conn, "SELECT out_dir FROM export_job WHERE node_id = ?1 AND id = ?2");
    st.bind(1, ctx.config.node_id).bind(2, id);
    return st.step() ? st.text(0) : std::string();
  });
  if (dir.empty()) dir = ctx.config.server.data_dir + "/exports/" + id;
  std::ifstream in(dir + "/manifest.json", std::ios::binary);
  if (!in) return web::json_error(404, "not_found", "export " + id + " has no manifest");
  const std::string manifest((std::istreambuf_iterator<char>(in)), {});
  // The commune the footage is from: the first camera's, by its name in the organisation.
  std::string place;
  if (row["cameras"].is_array() && !row["cameras"].empty()) {
    if (const auto* cam = find_camera(ctx.config, row["cameras"][0].get<std::string>())) {
      const auto* commune = ctx.config.organisation.commune(cam->commune);
      place = commune != nullptr ? commune->name : cam->commune;
    }
  }
  const std::string sha = row.value("manifest_sha256", std::string());
  if (!req.head)
    evidence::append_audit(ctx.db, ctx.config.node_id, ctx.clock.now_us(), actor_of(req),
                           "export_record", id, json{{"format", format}}.dump());
  if (format == "html") {
    auto html = report::render_record_html(manifest, sha, place);
    if (!html) return web::json_error(500, "bad_manifest", html.error());
    return {200, "text/html; charset=utf-8", std::move(*html)};
  }
  char tmpl[] = "/tmp/matthan-record-XXXXXX";
  const int fd = mkstemp(tmpl);
  if (fd < 0) return web::json_error(500, "internal", "cannot make a temporary file");
  ::close(fd);
  auto written = report::write_record_pdf(manifest, sha, place, tmpl);
  std::string bytes;
  if (written) {
    std::ifstream pdf(tmpl, std::ios::binary);
    bytes.assign(std::istreambuf_iterator<char>(pdf), {});
  }
  std::remove(tmpl);
  if (!written) return web::json_error(500, "record_failed", written.error());
  return {200,
          "application/pdf",
          std::move(bytes),
          {{"Content-Disposition", "attachment; filename=\"bien-ban-" + id + ".pdf\""}}};
}

std::optional<web::HttpResponse> evidence_route(const web::HttpRequest& req, EvidenceContext& ctx) {
  const auto& config = ctx.config;
  const auto& node = config.node_id;
  const std::string& p = req.path;
  const auto now = ctx.clock.now_us();
  if (p == "/api/node/key" && req.method == "GET") {
    return web::HttpResponse{200,
                             "application/json",
                             json{{"node_id", node},
                                  {"algorithm", "Ed25519"},
                                  {"public_key", ctx.key.public_base64()},
                                  {"fingerprint", ctx.key.fingerprint()}}
                                 .dump(),
                             {}};
  }
  if (p == "/api/storage" && req.method == "GET") {
    json j = ctx.storage_json();
    // A scoped user sees the volume's figures and only their cameras' forecasts.
    if (req.scoped() && j.contains("forecast") && j["forecast"].is_array()) {
      json mine = json::array();
      for (auto& f : j["forecast"]) {
        const auto* c = find_camera(config, f.value("camera", ""));
        if (c != nullptr && in_scope(req, *c)) mine.push_back(std::move(f));
      }
      j["forecast"] = std::move(mine);
    }
    {
      std::lock_guard lock(transcode_stats_mutex);
      j["transcoder"] = transcode_stats;
    }
    return web::HttpResponse{200, "application/json", j.dump(), {}};
  }
  if (p == "/api/audit" && req.method == "GET") {
    const int limit = std::clamp(std::atoi(query(req, "limit", "100").c_str()), 1, 1000);
    json rows = json::array();
    for (const auto& a : evidence::list_audit(ctx.db, limit)) {
      rows.push_back({{"seq", a.seq},
                      {"at", format_iso8601_us(a.at_us)},
                      {"actor", a.actor},
                      {"action", a.action},
                      {"target", a.target},
                      {"detail", json::parse(a.detail, nullptr, false)},
                      {"hash", a.hash}});
    }
    const auto chain = evidence::verify_audit_chain(ctx.db);
    return web::HttpResponse{200,
                             "application/json",
                             json{{"entries", rows},
                                  {"chain_ok", chain.has_value()},
                                  {"chain_error", chain ? json() : json(chain.error())}}
                                 .dump(),
                             {}};
  }
  if (p == "/api/holds") {
    if (req.method == "GET") {
      json list = json::array();
      for (const auto& h : evidence::list_holds(ctx.db, node, query(req, "all") != "1", now)) {
        if (cameras_in_scope(config, req, json(h.cameras))) list.push_back(hold_json(h));
      }
      return web::HttpResponse{200, "application/json", json{{"holds", list}}.dump(), {}};
    }
    if (req.method == "POST") {
      json body = json::parse(req.body, nullptr, false);
      if (!body.is_object() || !body.contains("cameras") || !body["cameras"].is_array())
        return web::json_error(400, "bad_request", "cameras (a list of camera ids) is required");
      evidence::Hold h;
      if (body["cameras"].empty())
        return web::json_error(400, "bad_request", "a hold needs at least one camera");
      for (const auto& c : body["cameras"]) {
        if (!c.is_string() || find_camera(config, c.get<std::string>()) == nullptr)
          return web::json_error(400, "bad_camera", "unknown camera " + c.dump());
        if (!in_scope(req, *find_camera(config, c.get<std::string>())))
          return web::json_error(403, "out_of_scope",
                                 "camera " + c.dump() + " is outside your communes");
        h.cameras.push_back(c.get<std::string>());
      }
      const auto from = parse_time_arg(body.value("from", ""), now);
      const auto to = parse_time_arg(body.value("to", ""), now);
      if (!from || !to || *to <= *from)
        return web::json_error(400, "bad_time", "from and to must be ISO 8601 times, from < to");
      h.start_us = *from;
      h.end_us = *to;
      h.reason = body.value("reason", "");
      if (h.reason.empty()) return web::json_error(400, "bad_request", "reason is required");
      if (body.contains("expires")) {
        const auto e = parse_time_arg(body.value("expires", ""), now);
        if (!e) return web::json_error(400, "bad_time", "expires must be an ISO 8601 time");
        h.expires_us = *e;
      }
      h.created_by = actor_of(req);
      h.created_us = now;
      const auto id = evidence::create_hold(ctx.db, node, h);
      ctx.db.flush();
      return web::HttpResponse{201, "application/json", json{{"id", id}}.dump(), {}};
    }
  }
  if (p.starts_with("/api/holds/") && p.ends_with("/release") && req.method == "POST") {
    const auto id = p.substr(11, p.size() - 11 - 8);
    if (!evidence::release_hold(ctx.db, node, id, actor_of(req), now))
      return web::json_error(404, "not_found", "no active hold '" + id + "'");
    return web::HttpResponse{
        200, "application/json", json{{"id", id}, {"released", true}}.dump(), {}};
  }
  if (p == "/api/exports") {
    if (req.method == "GET") {
      json rows = json::array();
      for (auto& row : list_exports(ctx.db, node, "")) {
        if (cameras_in_scope(config, req, row["cameras"])) rows.push_back(std::move(row));
      }
      return web::HttpResponse{200, "application/json", json{{"exports", rows}}.dump(), {}};
    }
    if (req.method == "POST") return post_export(req, ctx);
  }
  if (p.starts_with("/api/exports/") && req.method == "GET") {
    const auto rest = p.substr(13);
    const auto slash = rest.find('/');
    const auto id = rest.substr(0, slash);
    if (id.empty()) return web::json_error(404, "not_found", "no export ''");
    auto rows = list_exports(ctx.db, node, id);
    if (rows.empty()) return web::json_error(404, "not_found", "no export '" + id + "'");
    if (!cameras_in_scope(config, req, rows[0]["cameras"]))
      return web::json_error(403, "out_of_scope", "export '" + id + "' is outside your communes");
    if (slash == std::string::npos)
      return web::HttpResponse{200, "application/json", rows[0].dump(), {}};
    const auto name = rest.substr(slash + 1);
    // /api/exports/{id}/record: the printable extraction record of a finished export.
    if (name == "record") return record_route(req, ctx, id, rows[0]);
    // /api/exports/{id}/files/{name}: a file of a finished export.
    if (!name.starts_with("files/") || name.find('/', 6) != std::string::npos ||
        name.substr(6).starts_with("."))
      return web::json_error(404, "not_found", "no such route: " + p);
    const std::string file = config.server.data_dir + "/exports/" + id + "/" + name.substr(6);
    if (rows[0]["state"] != "done" || !fs::exists(file))
      return web::json_error(404, "not_found", "no file '" + name.substr(6) + "' in export " + id);
    if (!req.head)
      evidence::append_audit(ctx.db, node, now, actor_of(req), "export_download", id,
                             json{{"file", name.substr(6)}}.dump());
    return file_response(file, req,
                         file.ends_with(".mp4") ? "video/mp4" : "application/octet-stream");
  }
  if (req.method != "GET") return std::nullopt;
  // /api/events/{id}/clip.mp4: the event's range with its pre/post capture.
  if (p.starts_with("/api/events/") && p.ends_with("/clip.mp4")) {
    const auto id = p.substr(12, p.size() - 12 - 9);
    struct Ev {
      std::string camera;
      std::int64_t from = 0, to = 0;
    };
    const auto ev = ctx.db.read([&](sqlite3* conn) -> std::optional<Ev> {
      sqlite3_stmt* st = nullptr;
      sqlite3_prepare_v2(
          conn,
          "SELECT camera_id, start_us - pre_capture_s * 1000000, COALESCE(end_us,"
          " ?3) + post_capture_s * 1000000 FROM event WHERE node_id = ?1 AND id = ?2",
          -1, &st, nullptr);
      sqlite3_bind_text(st, 1, node.c_str(), -1, SQLITE_TRANSIENT);
      sqlite3_bind_text(st, 2, id.c_str(), -1, SQLITE_TRANSIENT);
      sqlite3_bind_int64(st, 3, now);
      std::optional<Ev> out;
      if (sqlite3_step(st) == SQLITE_ROW)
        out = Ev{col(st, 0), sqlite3_column_int64(st, 1), sqlite3_column_int64(st, 2)};
      sqlite3_finalize(st);
      return out;
    });
    if (!ev) return web::json_error(404, "not_found", "no event '" + id + "'");
    return clip_route(req, ctx, ev->camera, ev->from, std::min(ev->to, now), "event " + id);
  }
  if (!p.starts_with("/api/cameras/")) return std::nullopt;
  const auto rest = p.substr(13);
  const auto slash = rest.find('/');
  if (slash == std::string::npos) return std::nullopt;
  const auto camera = rest.substr(0, slash);
  const auto what = rest.substr(slash + 1);
  if (what != "clip.mp4" && what != "recordings" && what != "rollups") return std::nullopt;
  if (find_camera(config, camera) == nullptr)
    return web::json_error(404, "not_found", "no camera '" + camera + "'");
  if (what == "rollups") {
    const auto from_day = query(req, "from", "0000-00-00");
    const auto to_day = query(req, "to", "9999-99-99");
    json days = ctx.db.read([&](sqlite3* conn) {
      json out = json::array();
      sqlite3_stmt* st = nullptr;
      sqlite3_prepare_v2(conn,
                         "SELECT day, stream, recorded_us, gap_us, gaps, bytes, segments,"
                         " deleted_bytes FROM rollup_day WHERE node_id = ?1 AND camera_id = ?2"
                         " AND day >= ?3 AND day <= ?4 ORDER BY day, stream",
                         -1, &st, nullptr);
      sqlite3_bind_text(st, 1, node.c_str(), -1, SQLITE_TRANSIENT);
      sqlite3_bind_text(st, 2, camera.c_str(), -1, SQLITE_TRANSIENT);
      sqlite3_bind_text(st, 3, from_day.c_str(), -1, SQLITE_TRANSIENT);
      sqlite3_bind_text(st, 4, to_day.c_str(), -1, SQLITE_TRANSIENT);
      while (sqlite3_step(st) == SQLITE_ROW) {
        out.push_back({{"day", col(st, 0)},
                       {"stream", col(st, 1)},
                       {"recorded_s", sqlite3_column_int64(st, 2) / 1e6},
                       {"gap_s", sqlite3_column_int64(st, 3) / 1e6},
                       {"gaps", sqlite3_column_int64(st, 4)},
                       {"bytes", sqlite3_column_int64(st, 5)},
                       {"segments", sqlite3_column_int64(st, 6)},
                       {"deleted_bytes", sqlite3_column_int64(st, 7)}});
      }
      sqlite3_finalize(st);
      return out;
    });
    return web::HttpResponse{
        200, "application/json", json{{"camera", camera}, {"days", days}}.dump(), {}};
  }
  const auto from = parse_time_arg(query(req, "from"), now);
  const auto to = parse_time_arg(query(req, "to"), now);
  if (!from || !to)
    return web::json_error(400, "bad_time",
                           "from and to are required: ISO 8601 with an offset, or now-90s");
  if (what == "clip.mp4") return clip_route(req, ctx, camera, *from, *to, "range");
  // recordings: segments and gaps over the range.
  json body = ctx.db.read([&](sqlite3* conn) {
    json segs = json::array(), gaps = json::array();
    sqlite3_stmt* st = nullptr;
    sqlite3_prepare_v2(
        conn,
        "SELECT stream, start_us, end_us, bytes, frames, codec, state, damaged_frames"
        " FROM segment"
        " WHERE node_id = ?1 AND camera_id = ?2 AND start_us < ?4 AND (end_us > ?3"
        " OR state = 'open') ORDER BY stream, start_us",
        -1, &st, nullptr);
    sqlite3_bind_text(st, 1, node.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 2, camera.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 3, *from);
    sqlite3_bind_int64(st, 4, *to);
    while (sqlite3_step(st) == SQLITE_ROW) {
      segs.push_back({{"stream", col(st, 0)},
                      {"from", format_iso8601_us(sqlite3_column_int64(st, 1))},
                      {"to", format_iso8601_us(sqlite3_column_int64(st, 2))},
                      {"bytes", sqlite3_column_int64(st, 3)},
                      {"frames", sqlite3_column_int64(st, 4)},
                      {"codec", col(st, 5)},
                      {"state", col(st, 6)},
                      {"damaged_frames", sqlite3_column_int64(st, 7)}});
    }
    sqlite3_finalize(st);
    sqlite3_prepare_v2(
        conn,
        "SELECT stream, start_us, end_us, reason FROM gap WHERE node_id = ?1 AND"
        " camera_id = ?2 AND start_us < ?4 AND end_us > ?3 ORDER BY stream, start_us",
        -1, &st, nullptr);
    sqlite3_bind_text(st, 1, node.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 2, camera.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 3, *from);
    sqlite3_bind_int64(st, 4, *to);
    while (sqlite3_step(st) == SQLITE_ROW) {
      gaps.push_back({{"stream", col(st, 0)},
                      {"from", format_iso8601_us(sqlite3_column_int64(st, 1))},
                      {"to", format_iso8601_us(sqlite3_column_int64(st, 2))},
                      {"reason", col(st, 3)}});
    }
    sqlite3_finalize(st);
    // The events on the timeline (the newest 2000 of the range; the event API pages the rest).
    json events = json::array();
    storage::Statement ev(conn,
                          "SELECT id, type, label, start_us, end_us, review_state FROM event WHERE"
                          " node_id = ?1 AND camera_id = ?2 AND start_us < ?4 AND"
                          " COALESCE(end_us, start_us) >= ?3 ORDER BY start_us DESC LIMIT 2000");
    ev.bind(1, node).bind(2, camera).bind(3, *from).bind(4, *to);
    while (ev.step()) {
      events.push_back({{"id", ev.text(0)},
                        {"type", ev.text(1)},
                        {"label", ev.text(2)},
                        {"from", format_iso8601_us(ev.int64(3))},
                        {"to", ev.is_null(4) ? json() : json(format_iso8601_us(ev.int64(4)))},
                        {"review", ev.text(5)}});
    }
    std::reverse(events.begin(), events.end());  // oldest first, like segments and gaps
    return json{{"camera", camera}, {"segments", segs}, {"gaps", gaps}, {"events", events}};
  });
  body["clip"] = "/api/cameras/" + camera + "/clip.mp4?from=" + format_iso8601_us(*from) +
                 "&to=" + format_iso8601_us(*to);
  return web::HttpResponse{200, "application/json", body.dump(), {}};
}

// ---- CLI ----

std::string default_config_path() {
  if (const char* env = std::getenv("MATTHAN_CONFIG")) return env;
  return "/etc/matthan/matthan.yaml";
}

// Loads the config (time zone applied, as `run` does) and opens the database.
bool open_node(CliBase& b) {
  init_logging("warn", "");
  auto config = load_config_file(b.config_path);
  if (!config) {
    for (const auto& e : config.error()) std::fprintf(stderr, "%s\n", e.to_string().c_str());
    return false;
  }
  b.config = *config;
  ::setenv("TZ", (":" + b.config->server.time_zone).c_str(), 1);
  ::tzset();
  auto db = storage::Database::open(b.config->server.data_dir + "/matthan.db");
  if (!db) {
    std::fprintf(stderr, "%s\n", db.error().c_str());
    return false;
  }
  b.db = std::move(*db);
  return true;
}

std::string cli_actor() {
  for (const char* v : {"SUDO_USER", "USER", "LOGNAME"}) {
    if (const char* u = std::getenv(v); u != nullptr && *u != '\0') return std::string("cli:") + u;
  }
  return "cli";
}

void progress_bar(double f, const std::string& what) {
  const int width = 30;
  const int filled = static_cast<int>(f * width + 0.5);
  std::fprintf(stderr, "\rexport %3d%% [%s%s] %-24s", static_cast<int>(f * 100 + 0.5),
               std::string(static_cast<std::size_t>(filled), '#').c_str(),
               std::string(static_cast<std::size_t>(width - filled), '.').c_str(), what.c_str());
  std::fflush(stderr);
}

int export_cli(const std::vector<std::string>& args) {
  CliBase b{default_config_path(), {}, {}};
  std::vector<std::string> ids;
  std::string from, to, out, stream = "main";
  evidence::ExportRequest r;
  for (std::size_t i = 0; i < args.size(); ++i) {
    auto value = [&]() -> std::string { return i + 1 < args.size() ? args[++i] : ""; };
    const auto& a = args[i];
    if (a == "--config")
      b.config_path = value();
    else if (a == "--camera") {
      std::string v = value();
      for (std::size_t s = 0; s <= v.size();) {
        const auto c = v.find(',', s);
        const auto id = v.substr(s, c == std::string::npos ? std::string::npos : c - s);
        if (!id.empty()) ids.push_back(id);
        if (c == std::string::npos) break;
        s = c + 1;
      }
    } else if (a == "--from")
      from = value();
    else if (a == "--to")
      to = value();
    else if (a == "--out")
      out = value();
    else if (a == "--reason")
      r.reason = value();
    else if (a == "--unit")
      r.requesting_unit = value();
    else if (a == "--officer")
      r.officer = value();
    else if (a == "--case")
      r.case_id = value();
    else if (a == "--stream")
      stream = value();
    else {
      std::fprintf(stderr, "export: unknown argument %s\n", a.c_str());
      return 2;
    }
  }
  if (ids.empty() || from.empty() || to.empty() || out.empty() || r.reason.empty()) {
    std::fprintf(stderr,
                 "usage: matthan export [--config FILE] --camera ID... --from T --to T --reason "
                 "TEXT --out DIR [--unit U] [--officer O] [--case ID] [--stream main|sub]\n");
    return 2;
  }
  if (!open_node(b)) return 1;
  const auto now = SystemClock().now_us();
  const auto f = parse_time_arg(from, now);
  const auto t = parse_time_arg(to, now);
  if (!f || !t) {
    std::fprintf(stderr,
                 "export: --from/--to: use 2026-11-29T22:00:00+07:00, '2026-11-29 "
                 "22:00:00' (server time) or now-10m\n");
    return 2;
  }
  std::string error;
  r.cameras = export_cameras(*b.config, ids, &error);
  if (!error.empty()) {
    std::fprintf(stderr, "export: %s\n", error.c_str());
    return 1;
  }
  auto key = evidence::load_or_create_node_key(b.config->server.data_dir);
  if (!key) {
    std::fprintf(stderr, "export: %s\n", key.error().c_str());
    return 1;
  }
  r.node_id = b.config->node_id;
  r.from_us = *f;
  r.to_us = *t;
  r.out_dir = out;
  r.stream = stream;
  r.created_by = cli_actor();
  r.time_zone = b.config->server.time_zone;
  r.ntp_synchronised = ntp_synchronised();
  auto done = evidence::run_export(*b.db, *key, r, now, progress_bar);
  std::fprintf(stderr, "\n");
  if (!done) {
    std::fprintf(stderr, "export failed: %s\n", done.error().c_str());
    return 1;
  }
  for (const auto& n : done->notes) std::fprintf(stderr, "note: %s\n", n.c_str());
  std::printf(
      "export %s: %zu file(s), %.1f MB in %s\nmanifest sha256 %s, signed by %s\n"
      "hold %s keeps the range\n",
      done->id.c_str(), done->files.size(), static_cast<double>(done->bytes) / 1e6,
      done->out_dir.c_str(), done->manifest_sha256.c_str(), key->fingerprint().c_str(),
      done->hold_id.c_str());
  return 0;
}

int verify_export_cli(const std::vector<std::string>& args) {
  std::string dir, config_path;
  for (std::size_t i = 0; i < args.size(); ++i) {
    if (args[i] == "--config" && i + 1 < args.size())
      config_path = args[++i];
    else if (dir.empty())
      dir = args[i];
    else
      return 2;
  }
  if (dir.empty()) {
    std::fprintf(stderr, "usage: matthan verify-export DIR [--config FILE]\n");
    return 2;
  }
  std::optional<std::string> expected;
  if (!config_path.empty()) {
    auto config = load_config_file(config_path);
    if (!config) {
      std::fprintf(stderr, "verify-export: %s has errors\n", config_path.c_str());
      return 2;
    }
    auto key = evidence::load_node_key(config->server.data_dir);
    if (!key) {
      std::fprintf(stderr, "verify-export: %s\n", key.error().c_str());
      return 2;
    }
    expected = key->public_base64();
  }
  const auto r = evidence::verify_export(dir, expected);
  for (const auto& f : r.checked) std::printf("ok    %s\n", f.c_str());
  for (const auto& p : r.problems) std::printf("FAIL  %s\n", p.c_str());
  if (r.ok) {
    std::printf("OK: export %s, %zu file(s) match, signature valid (key %s)%s\n",
                r.export_id.c_str(), r.checked.size(), r.fingerprint.c_str(),
                expected ? ", this node's key" : "");
    return 0;
  }
  std::printf("FAIL: export %s: %zu problem(s)\n", r.export_id.c_str(), r.problems.size());
  return 1;
}

int hold_cli(const std::vector<std::string>& args) {
  CliBase b{default_config_path(), {}, {}};
  evidence::Hold h;
  std::string from, to, expires, release;
  bool list = false;
  for (std::size_t i = 0; i < args.size(); ++i) {
    auto value = [&]() -> std::string { return i + 1 < args.size() ? args[++i] : ""; };
    const auto& a = args[i];
    if (a == "--config")
      b.config_path = value();
    else if (a == "--camera")
      h.cameras.push_back(value());
    else if (a == "--from")
      from = value();
    else if (a == "--to")
      to = value();
    else if (a == "--reason")
      h.reason = value();
    else if (a == "--expires")
      expires = value();
    else if (a == "--release")
      release = value();
    else if (a == "--list")
      list = true;
    else {
      std::fprintf(stderr, "hold: unknown argument %s\n", a.c_str());
      return 2;
    }
  }
  if (!list && release.empty() &&
      (h.cameras.empty() || from.empty() || to.empty() || h.reason.empty())) {
    std::fprintf(stderr,
                 "usage: matthan hold [--config FILE] --camera ID... --from T --to T --reason TEXT "
                 "[--expires T]\n       matthan hold --list | --release ID\n");
    return 2;
  }
  if (!open_node(b)) return 1;
  const auto now = SystemClock().now_us();
  if (list) {
    for (const auto& x : evidence::list_holds(*b.db, b.config->node_id, true, now))
      std::printf("%s\n", hold_json(x).dump().c_str());
    return 0;
  }
  if (!release.empty()) {
    if (!evidence::release_hold(*b.db, b.config->node_id, release, cli_actor(), now)) {
      std::fprintf(stderr, "hold: no active hold %s\n", release.c_str());
      return 1;
    }
    std::printf("released %s\n", release.c_str());
    return 0;
  }
  for (const auto& c : h.cameras) {
    if (find_camera(*b.config, c) == nullptr) {
      std::fprintf(stderr, "hold: no camera '%s' in the config\n", c.c_str());
      return 1;
    }
  }
  const auto f = parse_time_arg(from, now);
  const auto t = parse_time_arg(to, now);
  if (!f || !t || *t <= *f) {
    std::fprintf(stderr, "hold: --from/--to must be times with --from before --to\n");
    return 2;
  }
  h.start_us = *f;
  h.end_us = *t;
  if (!expires.empty()) {
    const auto e = parse_time_arg(expires, now);
    if (!e) return 2;
    h.expires_us = *e;
  }
  h.created_by = cli_actor();
  h.created_us = now;
  const auto id = evidence::create_hold(*b.db, b.config->node_id, h);
  b.db->flush();
  std::printf("%s\n", id.c_str());
  return 0;
}

int backup_cli(const std::vector<std::string>& args) {
  CliBase b{default_config_path(), {}, {}};
  std::string dir;
  for (std::size_t i = 0; i < args.size(); ++i) {
    if (args[i] == "--config" && i + 1 < args.size())
      b.config_path = args[++i];
    else if (dir.empty())
      dir = args[i];
    else
      return 2;
  }
  if (dir.empty()) {
    std::fprintf(stderr, "usage: matthan backup [--config FILE] DIR\n");
    return 2;
  }
  if (!open_node(b)) return 1;
  evidence::append_audit(*b.db, b.config->node_id, SystemClock().now_us(), cli_actor(), "backup",
                         dir);
  b.db->flush();
  auto done = evidence::backup_node({b.config->server.data_dir, b.config_path}, dir);
  if (!done) {
    std::fprintf(stderr, "backup failed: %s\n", done.error().c_str());
    return 1;
  }
  for (const auto& f : *done) std::printf("%s/%s\n", dir.c_str(), f.c_str());
  std::printf("backup OK: %zu file(s) in %s\n", done->size(), dir.c_str());
  return 0;
}

int audit_cli(const std::vector<std::string>& args) {
  CliBase b{default_config_path(), {}, {}};
  bool verify = false;
  for (std::size_t i = 0; i < args.size(); ++i) {
    if (args[i] == "--config" && i + 1 < args.size())
      b.config_path = args[++i];
    else if (args[i] == "verify")
      verify = true;
    else
      return 2;
  }
  if (!verify) {
    std::fprintf(stderr, "usage: matthan audit verify [--config FILE]\n");
    return 2;
  }
  if (!open_node(b)) return 1;
  auto key = evidence::load_node_key(b.config->server.data_dir);
  if (!key) {
    std::fprintf(stderr, "audit: %s\n", key.error().c_str());
    return 1;
  }
  const auto check = evidence::check_audit(*b.db, key->public_base64());
  if (!check.error.empty()) {
    std::printf("FAIL: %s\n", check.error.c_str());
    return 1;
  }
  std::printf(
      "OK: %lld audit rows, the hash chain is intact, %lld signed head(s) verified (key %s)\n",
      static_cast<long long>(check.rows), static_cast<long long>(check.signed_heads),
      key->fingerprint().c_str());
  return 0;
}

int restore_cli(const std::vector<std::string>& args) {
  std::string config_path = default_config_path(), dir;
  for (std::size_t i = 0; i < args.size(); ++i) {
    if (args[i] == "--config" && i + 1 < args.size())
      config_path = args[++i];
    else if (dir.empty())
      dir = args[i];
    else
      return 2;
  }
  if (dir.empty()) {
    std::fprintf(stderr, "usage: matthan restore [--config FILE] DIR\n");
    return 2;
  }
  init_logging("warn", "");
  // The data dir comes from the config in place, else from the backup's own.
  auto config = load_config_file(fs::exists(config_path) ? config_path : dir + "/matthan.yaml");
  if (!config) {
    std::fprintf(stderr, "restore: the config has errors\n");
    return 1;
  }
  auto done = evidence::restore_node(dir, {config->server.data_dir, config_path});
  if (!done) {
    std::fprintf(stderr, "restore failed: %s\n", done.error().c_str());
    return 1;
  }
  auto db = storage::Database::open(config->server.data_dir + "/matthan.db");
  if (!db) {
    std::fprintf(stderr, "restore: the restored database does not open: %s\n", db.error().c_str());
    return 1;
  }
  evidence::append_audit(**db, config->node_id, SystemClock().now_us(), cli_actor(), "restore",
                         dir);
  (*db)->flush();
  for (const auto& f : *done) std::printf("%s\n", f.c_str());
  std::printf("restore OK into %s\n", config->server.data_dir.c_str());
  return 0;
}

}  // namespace matthan::app
