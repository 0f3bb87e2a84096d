#include "matthan/evidence/export.hpp"

#include <sqlite3.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include "matthan/core/ids.hpp"
#include "matthan/core/time_format.hpp"
#include "matthan/evidence/audit.hpp"
#include "matthan/evidence/holds.hpp"
#include "matthan/storage/clip.hpp"

namespace matthan::evidence {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

void update_job(storage::Database& db, const std::string& id, const std::string& state,
                double progress, const std::string& error, const ExportResult* done,
                std::int64_t now_us) {
  db.write([=, manifest = done ? done->manifest_sha256 : std::string(),
            bytes = done ? done->bytes : 0](sqlite3* conn) {
    sqlite3_stmt* st = nullptr;
    sqlite3_prepare_v2(conn,
                       "UPDATE export_job SET state = ?2, progress = ?3, error = ?4,"
                       " manifest_sha256 = ?5, bytes = ?6,"
                       " finished_us = CASE WHEN ?2 = 'running' THEN NULL ELSE ?7 END"
                       " WHERE id = ?1",
                       -1, &st, nullptr);
    sqlite3_bind_text(st, 1, id.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 2, state.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_double(st, 3, progress);
    sqlite3_bind_text(st, 4, error.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 5, manifest.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 6, bytes);
    sqlite3_bind_int64(st, 7, now_us);
    sqlite3_step(st);
    sqlite3_finalize(st);
  });
}

json ranges_json(const std::vector<storage::TimeRange>& ranges) {
  json out = json::array();
  for (const auto& r : ranges) {
    out.push_back({{"from", format_iso8601_us(r.start_us)},
                   {"to", format_iso8601_us(r.end_us)},
                   {"seconds", static_cast<double>(r.end_us - r.start_us) / 1e6}});
  }
  return out;
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

bool write_file(const std::string& path, const std::string& data) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << data;
  out.flush();
  return static_cast<bool>(out);
}

}  // namespace

void register_export_job(storage::Database& db, ExportRequest& req, std::int64_t now_us) {
  if (req.id.empty()) req.id = make_ulid(now_us);
  std::vector<std::string> ids;
  for (const auto& c : req.cameras) ids.push_back(c.id);
  db.write([req, ids, now_us, out = fs::absolute(req.out_dir).string()](sqlite3* conn) {
    sqlite3_stmt* st = nullptr;
    sqlite3_prepare_v2(conn,
                       "INSERT INTO export_job (id, node_id, cameras, start_us, end_us, reason,"
                       " requesting_unit, officer, case_id, created_by, created_us, out_dir)"
                       " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, NULLIF(?9, ''), ?10, ?11, ?12)",
                       -1, &st, nullptr);
    const std::string cams = json(ids).dump();
    sqlite3_bind_text(st, 1, req.id.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 2, req.node_id.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 3, cams.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 4, req.from_us);
    sqlite3_bind_int64(st, 5, req.to_us);
    sqlite3_bind_text(st, 6, req.reason.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 7, req.requesting_unit.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 8, req.officer.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 9, req.case_id.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 10, req.created_by.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 11, now_us);
    sqlite3_bind_text(st, 12, out.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_step(st);
    sqlite3_finalize(st);
  });
  db.flush();
  req.job_registered = true;
}

std::expected<ExportResult, std::string> run_export(storage::Database& db, const NodeKey& key,
                                                    ExportRequest req, std::int64_t now_us,
                                                    const ExportProgress& progress) {
  // A registered job that cannot start is marked failed, not left running.
  auto refuse = [&](const std::string& why) -> std::expected<ExportResult, std::string> {
    if (req.job_registered) update_job(db, req.id, "failed", 0, why, nullptr, now_us);
    return std::unexpected(why);
  };
  if (req.cameras.empty()) return refuse("no camera to export");
  if (req.to_us <= req.from_us) return refuse("the range is empty (--to must be after --from)");
  if (req.reason.empty()) return refuse("an export needs a reason");
  std::error_code ec;
  if (fs::exists(req.out_dir, ec) && !fs::is_empty(req.out_dir, ec))
    return refuse(req.out_dir + " exists and is not empty");
  fs::create_directories(req.out_dir, ec);
  if (ec) return refuse("cannot create " + req.out_dir + ": " + ec.message());
  if (!req.job_registered) register_export_job(db, req, now_us);
  std::vector<std::string> ids;
  for (const auto& c : req.cameras) ids.push_back(c.id);
  // The hold first: retention must not delete what is being exported.
  Hold hold;
  hold.cameras = ids;
  hold.start_us = req.from_us;
  hold.end_us = req.to_us;
  hold.reason = "export " + req.id + ": " + req.reason;
  hold.created_by = req.created_by;
  hold.created_us = now_us;
  hold.export_id = req.id;
  ExportResult result;
  result.id = req.id;
  result.out_dir = req.out_dir;
  result.hold_id = create_hold(db, req.node_id, hold);
  db.flush();

  json cams = json::array();
  std::vector<std::pair<std::string, std::string>> sums;  // file, sha256
  const double n = static_cast<double>(req.cameras.size());
  for (std::size_t i = 0; i < req.cameras.size(); ++i) {
    const auto& cam = req.cameras[i];
    json c{{"id", cam.id},         {"name", cam.name}, {"commune", cam.commune},
           {"hamlet", cam.hamlet}, {"site", cam.site}, {"stream", req.stream}};
    storage::ClipRequest clip;
    clip.node_id = req.node_id;
    clip.camera_id = cam.id;
    clip.stream = req.stream;
    clip.from_us = req.from_us;
    clip.to_us = req.to_us;
    clip.server_time_track = true;
    const std::string file = cam.id + ".mp4";
    auto written = storage::write_clip(db, clip, req.out_dir + "/" + file, [&](double f) {
      if (progress) progress((static_cast<double>(i) + f) / n, cam.id);
    });
    if (!written) {
      c["file"] = nullptr;
      c["error"] = written.error();
      result.notes.push_back(cam.id + ": " + written.error());
    } else {
      auto sha = sha256_file_hex(req.out_dir + "/" + file);
      if (!sha) {
        update_job(db, req.id, "failed", static_cast<double>(i) / n, sha.error(), nullptr, now_us);
        return std::unexpected(sha.error());
      }
      c["file"] = file;
      c["sha256"] = *sha;
      c["bytes"] = written->bytes;
      c["codec"] = written->codec;
      c["frames"] = written->frames;
      c["first_frame"] = format_iso8601_us(written->start_us);  // keyframe pre-roll
      c["end"] = format_iso8601_us(written->end_us);
      c["covered"] = ranges_json(written->covered);
      c["gaps"] = ranges_json(written->gaps);
      c["segments"] = written->segments.size();
      c["source_damaged_frames"] = written->source_damaged_frames;
      c["notes"] = written->notes;
      sums.emplace_back(file, *sha);
      result.files.push_back(file);
      result.bytes += written->bytes;
    }
    cams.push_back(c);
    update_job(db, req.id, "running", static_cast<double>(i + 1) / n, "", nullptr, now_us);
  }
  if (result.files.empty()) {
    update_job(db, req.id, "failed", 1, "no footage in the range", nullptr, now_us);
    return std::unexpected("no camera has footage in the range: " +
                           (result.notes.empty() ? std::string() : result.notes.front()));
  }
  db.flush();
  const AuditHead head = audit_head(db);
  // System clock steps near the footage: its timestamps are server time, which never runs
  // backwards (a step back is absorbed slowly), so a reader must know of any step.
  json steps = json::array();
  db.read([&](sqlite3* conn) {
    sqlite3_stmt* st = nullptr;
    sqlite3_prepare_v2(conn,
                       "SELECT at_us, delta_us, detail FROM clock_event WHERE node_id = ?1 AND"
                       " kind = 'jump' AND at_us BETWEEN ?2 AND ?3 ORDER BY at_us",
                       -1, &st, nullptr);
    sqlite3_bind_text(st, 1, req.node_id.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 2, req.from_us - 86'400'000'000LL);
    sqlite3_bind_int64(st, 3, req.to_us + 86'400'000'000LL);
    while (sqlite3_step(st) == SQLITE_ROW) {
      const auto* detail = reinterpret_cast<const char*>(sqlite3_column_text(st, 2));
      steps.push_back({{"at", format_iso8601_us(sqlite3_column_int64(st, 0))},
                       {"delta_s", static_cast<double>(sqlite3_column_int64(st, 1)) / 1e6},
                       {"detail", detail != nullptr ? detail : ""}});
    }
    sqlite3_finalize(st);
    return 0;
  });
  json manifest{{"format", "matthan-export/1"},
                {"export_id", req.id},
                {"node_id", req.node_id},
                {"software", std::string("matthan ") + MATTHAN_VERSION},
                {"created", format_iso8601_us(now_us)},
                {"created_by", req.created_by},
                {"reason", req.reason},
                {"requesting_unit", req.requesting_unit},
                {"officer", req.officer},
                {"case_id", req.case_id.empty() ? json() : json(req.case_id)},
                {"requested",
                 {{"from", format_iso8601_us(req.from_us)}, {"to", format_iso8601_us(req.to_us)}}},
                {"server_time",
                 {{"time_zone", req.time_zone},
                  {"ntp_synchronised", req.ntp_synchronised},
                  {"clock_steps", steps},
                  {"ahead_of_system_clock_s", static_cast<double>(req.clock_ahead_us) / 1e6}}},
                {"hold_id", result.hold_id},
                {"cameras", cams},
                {"audit_chain_head", {{"seq", head.seq}, {"hash", head.hash}}},
                {"signing_key",
                 {{"algorithm", "Ed25519"},
                  {"public_key", key.public_base64()},
                  {"fingerprint", key.fingerprint()},
                  {"signature_file", "manifest.json.sig"}}}};
  const std::string manifest_text = manifest.dump(2) + "\n";
  const std::string dir = req.out_dir + "/";
  std::string sums_text;
  for (const auto& [file, sha] : sums) sums_text += sha + "  " + file + "\n";
  result.manifest_sha256 = sha256_hex(manifest_text);
  sums_text += result.manifest_sha256 + "  manifest.json\n";
  if (!write_file(dir + "manifest.json", manifest_text) ||
      !write_file(dir + "manifest.json.sig", key.sign_base64(manifest_text) + "\n") ||
      !write_file(dir + "SHA256SUMS", sums_text)) {
    update_job(db, req.id, "failed", 1, "cannot write the manifest", nullptr, now_us);
    return std::unexpected("cannot write the manifest in " + req.out_dir);
  }
  update_job(db, req.id, "done", 1, "", &result, now_us);
  json detail{{"cameras", ids},
              {"from", format_iso8601_us(req.from_us)},
              {"to", format_iso8601_us(req.to_us)},
              {"reason", req.reason},
              {"requesting_unit", req.requesting_unit},
              {"officer", req.officer},
              {"case_id", req.case_id},
              {"files", result.files},
              {"manifest_sha256", result.manifest_sha256}};
  append_audit(db, req.node_id, now_us, req.created_by, "export", req.id, detail.dump());
  db.flush();
  if (progress) progress(1.0, "");
  return result;
}

VerifyReport verify_export(const std::string& dir,
                           const std::optional<std::string>& expected_public_base64) {
  VerifyReport r;
  const std::string d = dir + "/";
  // 1. SHA256SUMS: every listed file is there and hashes to its line.
  std::map<std::string, std::string> listed;
  if (!fs::exists(d + "SHA256SUMS")) {
    r.problems.push_back("SHA256SUMS: missing");
  } else {
    std::istringstream in(read_file(d + "SHA256SUMS"));
    std::string line;
    while (std::getline(in, line)) {
      const auto sp = line.find("  ");
      if (sp != 64) {
        r.problems.push_back("SHA256SUMS: malformed line '" + line + "'");
        continue;
      }
      const std::string file = line.substr(66);
      if (file.find('/') != std::string::npos || file.starts_with(".")) {
        r.problems.push_back("SHA256SUMS: names a file outside the export: " + file);
        continue;
      }
      listed[file] = line.substr(0, 64);
      auto sha = sha256_file_hex(d + file);
      if (!sha) {
        r.problems.push_back(file + ": missing or unreadable");
      } else if (*sha != listed[file]) {
        r.problems.push_back(file + ": SHA-256 does not match SHA256SUMS (the file was changed)");
      } else {
        r.checked.push_back(file);
      }
    }
  }
  // 2. The manifest: its signature, and its own list of hashes.
  const std::string manifest_text = read_file(d + "manifest.json");
  json manifest;
  try {
    manifest = json::parse(manifest_text);
  } catch (const std::exception& e) {
    r.problems.push_back("manifest.json: missing or not JSON");
    return r;
  }
  if (!listed.contains("manifest.json"))
    r.problems.push_back("SHA256SUMS: does not list manifest.json");
  // A crafted manifest must give a FAIL line, not an exception: every field is type-checked.
  auto text = [](const json& j, const char* k) {
    return j.is_object() && j.contains(k) && j[k].is_string() ? j[k].get<std::string>()
                                                              : std::string();
  };
  r.export_id = text(manifest, "export_id");
  const json no_key = json::object();
  const json& signing = manifest.is_object() && manifest.contains("signing_key") &&
                                manifest["signing_key"].is_object()
                            ? manifest["signing_key"]
                            : no_key;
  const auto key = text(signing, "public_key");
  if (key.empty()) r.problems.push_back("manifest.json: no signing_key.public_key");
  r.fingerprint = fingerprint_of(key);
  const std::string sig = read_file(d + "manifest.json.sig");
  if (sig.empty()) {
    r.problems.push_back("manifest.json.sig: missing");
  } else if (!verify_signature(key, manifest_text, sig)) {
    r.problems.push_back("manifest.json.sig: the signature does not match manifest.json");
  }
  if (expected_public_base64 && *expected_public_base64 != key) {
    r.problems.push_back("manifest.json: signed by key " + r.fingerprint + ", not by this node's " +
                         fingerprint_of(*expected_public_base64));
  }
  const json cams =
      manifest.is_object() && manifest.contains("cameras") && manifest["cameras"].is_array()
          ? manifest["cameras"]
          : json::array();
  for (const auto& c : cams) {
    const std::string file = text(c, "file");
    if (file.empty()) continue;
    if (!listed.contains(file)) {
      r.problems.push_back(file + ": in manifest.json but not in SHA256SUMS");
    } else if (listed[file] != text(c, "sha256")) {
      r.problems.push_back(file + ": SHA256SUMS and manifest.json disagree");
    }
  }
  r.ok = r.problems.empty();
  return r;
}

}  // namespace matthan::evidence
