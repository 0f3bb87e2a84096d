#include "matthan/storage/retention.hpp"

#include <spdlog/spdlog.h>
#include <sqlite3.h>
#include <sys/statvfs.h>

#include <filesystem>
#include <memory>
#include <set>

#include "matthan/storage/segment_index.hpp"

namespace matthan::storage {

namespace {

constexpr double kDayUs = 86'400e6;

// An active hold covers the segment: never delete.
constexpr const char* kHeld =
    "EXISTS (SELECT 1 FROM hold h JOIN hold_camera hc ON hc.hold_id = h.id"
    " WHERE hc.camera_id = s.camera_id AND h.node_id = s.node_id AND h.released_us IS NULL"
    " AND (h.expires_us IS NULL OR h.expires_us > ?2) AND h.start_us < s.end_us"
    " AND h.end_us > s.start_us)";
// An event (with its capture margins) overlaps the segment.
constexpr const char* kEvent =
    "EXISTS (SELECT 1 FROM event e WHERE e.node_id = s.node_id AND e.camera_id = s.camera_id"
    " AND e.type != 'camera_offline' AND e.start_us - e.pre_capture_s * 1000000 < s.end_us"
    " AND COALESCE(e.end_us, ?2) + e.post_capture_s * 1000000 > s.start_us)";

struct Victim {
  std::int64_t id = 0, bytes = 0, start_us = 0;
  std::string path, camera, stream;
};

std::vector<Victim> query_victims(Database& db, const std::string& sql, const std::string& node,
                                  std::int64_t now_us, const std::vector<std::int64_t>& extra,
                                  const std::string& camera) {
  return db.read([&](sqlite3* conn) {
    std::vector<Victim> out;
    sqlite3_stmt* st = nullptr;
    if (sqlite3_prepare_v2(conn, sql.c_str(), -1, &st, nullptr) != SQLITE_OK) {
      spdlog::error("retention: {}", sqlite3_errmsg(conn));
      return out;
    }
    sqlite3_bind_text(st, 1, node.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 2, now_us);
    int i = 3;
    for (auto v : extra) sqlite3_bind_int64(st, i++, v);
    if (!camera.empty()) sqlite3_bind_text(st, i, camera.c_str(), -1, SQLITE_TRANSIENT);
    while (sqlite3_step(st) == SQLITE_ROW) {
      out.push_back({sqlite3_column_int64(st, 0), sqlite3_column_int64(st, 1),
                     sqlite3_column_int64(st, 2),
                     reinterpret_cast<const char*>(sqlite3_column_text(st, 3)),
                     reinterpret_cast<const char*>(sqlite3_column_text(st, 4)),
                     reinterpret_cast<const char*>(sqlite3_column_text(st, 5))});
    }
    sqlite3_finalize(st);
    return out;
  });
}

// The rows go first, each only if it is still deletable at that moment (not open, not under a
// hold made since the victims were chosen: an export's hold, say); then the files of the rows
// that went. A crash in between leaves a file without a row, which start-up reconciliation
// indexes again: footage is kept, never lost to a race. Returns how many went.
int remove_segments(Database& db, const std::string& node, const std::vector<Victim>& victims,
                    std::int64_t now_us, RetentionReport& report) {
  auto deleted = std::make_shared<std::vector<Victim>>();
  db.write([victims, node, now_us, deleted](sqlite3* conn) {
    const std::string sql = std::string("DELETE FROM segment AS s WHERE s.id = ?1 AND") +
                            " s.state != 'open' AND NOT " + kHeld;
    for (const auto& v : victims) {
      sqlite3_stmt* st = nullptr;
      sqlite3_prepare_v2(conn, sql.c_str(), -1, &st, nullptr);
      sqlite3_bind_int64(st, 1, v.id);
      sqlite3_bind_int64(st, 2, now_us);
      const bool gone = sqlite3_step(st) == SQLITE_DONE && sqlite3_changes(conn) == 1;
      sqlite3_finalize(st);
      if (!gone) continue;
      deleted->push_back(v);
      // The day's rollup keeps its recorded figures and notes what retention removed.
      for_each_local_day(v.start_us, v.start_us + 1, [&](const std::string& day, std::int64_t) {
        sqlite3_prepare_v2(conn,
                           "UPDATE rollup_day SET deleted_bytes = deleted_bytes + ?5 WHERE"
                           " node_id = ?4 AND camera_id = ?1 AND stream = ?2 AND day = ?3",
                           -1, &st, nullptr);
        sqlite3_bind_text(st, 1, v.camera.c_str(), -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(st, 2, v.stream.c_str(), -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(st, 3, day.c_str(), -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(st, 4, node.c_str(), -1, SQLITE_TRANSIENT);
        sqlite3_bind_int64(st, 5, v.bytes);
        sqlite3_step(st);
        sqlite3_finalize(st);
      });
    }
  });
  db.flush();
  for (const auto& v : *deleted) {
    std::error_code ec;
    std::filesystem::remove(v.path, ec);
    if (ec) spdlog::error("retention: cannot delete {}: {}", v.path, ec.message());
    ++report.deleted;
    report.deleted_bytes += v.bytes;
  }
  return static_cast<int>(deleted->size());
}

std::int64_t scalar(Database& db, const std::string& sql, const std::string& node,
                    std::int64_t now_us) {
  return db.read([&](sqlite3* conn) {
    sqlite3_stmt* st = nullptr;
    std::int64_t v = 0;
    if (sqlite3_prepare_v2(conn, sql.c_str(), -1, &st, nullptr) == SQLITE_OK) {
      sqlite3_bind_text(st, 1, node.c_str(), -1, SQLITE_TRANSIENT);
      sqlite3_bind_int64(st, 2, now_us);
      if (sqlite3_step(st) == SQLITE_ROW) v = sqlite3_column_int64(st, 0);
    }
    sqlite3_finalize(st);
    return v;
  });
}

}  // namespace

std::int64_t statvfs_free_bytes(const std::string& path) {
  struct statvfs s {};
  // The recordings folder may not exist yet: its nearest existing parent is the same volume.
  std::filesystem::path at = path;
  while (::statvfs(at.c_str(), &s) != 0) {
    if (!at.has_parent_path() || at.parent_path() == at) return -1;
    at = at.parent_path();
  }
  return static_cast<std::int64_t>(s.f_bavail) * static_cast<std::int64_t>(s.f_frsize);
}

RetentionReport run_retention(Database& db, const RetentionPolicy& p, std::int64_t now_us,
                              const FreeSpace& free_space) {
  RetentionReport report;
  const std::string& node = p.node_id;
  std::set<std::string> cameras;
  db.read([&](sqlite3* conn) {
    sqlite3_stmt* st = nullptr;
    sqlite3_prepare_v2(conn, "SELECT DISTINCT camera_id FROM segment WHERE node_id = ?1", -1, &st,
                       nullptr);
    sqlite3_bind_text(st, 1, node.c_str(), -1, SQLITE_TRANSIENT);
    while (sqlite3_step(st) == SQLITE_ROW)
      cameras.insert(reinterpret_cast<const char*>(sqlite3_column_text(st, 0)));
    sqlite3_finalize(st);
    return 0;
  });
  const std::string select =
      "SELECT s.id, s.bytes, s.start_us, s.path, s.camera_id, s.stream FROM segment s"
      " WHERE s.node_id = ?1 AND s.state != 'open' AND NOT " +
      std::string(kHeld);
  // 1. Age: per camera, what is older than its retention (event footage: its own, longer).
  for (const auto& cam : cameras) {
    const auto it = p.per_camera.find(cam);
    const double days = it != p.per_camera.end() ? it->second.first : p.days;
    const double event_days = it != p.per_camera.end() ? it->second.second : p.event_days;
    const auto cutoff = now_us - static_cast<std::int64_t>(days * kDayUs);
    const auto event_cutoff = now_us - static_cast<std::int64_t>(event_days * kDayUs);
    const auto victims = query_victims(db,
                                       select + " AND s.end_us <= ?3 AND (s.end_us <= ?4 OR NOT " +
                                           kEvent + ") AND s.camera_id = ?5 ORDER BY s.start_us",
                                       node, now_us, {cutoff, event_cutoff}, cam);
    remove_segments(db, node, victims, now_us, report);
  }
  db.flush();
  // 2. Pressure: oldest unheld footage first, any camera, until under budget. The recorders
  // keep writing meanwhile, so the budget is checked again on a fresh count, and only a pass
  // that found nothing more to delete raises the alarm (which stops recording until the next
  // pass): a count that grew while deleting is not a full volume.
  const std::string used_sql = "SELECT COALESCE(SUM(bytes), 0) FROM segment WHERE node_id = ?1";
  auto over = [&] {
    return (p.max_bytes > 0 && report.used_bytes > p.max_bytes) ||
           (report.free_bytes >= 0 && report.free_bytes < p.min_free_bytes);
  };
  bool stuck = false;  // over the budget with nothing left that may go
  for (int round = 0; round < 4 && !stuck; ++round) {
    report.used_bytes = scalar(db, used_sql, node, now_us);
    report.free_bytes = free_space(p.root);
    if (!over()) break;
    while (over()) {
      const auto victims =
          query_victims(db, select + " ORDER BY s.start_us LIMIT 16", node, now_us, {}, "");
      // One at a time until under budget; a batch that frees nothing (all held meanwhile)
      // ends the pass rather than spin.
      int freed = 0;
      for (const auto& v : victims) {
        if (remove_segments(db, node, {v}, now_us, report) == 0) continue;
        ++freed;
        report.used_bytes -= v.bytes;
        report.free_bytes = free_space(p.root);
        if (!over()) break;
      }
      if (freed == 0) {
        stuck = true;
        break;
      }
    }
  }
  db.flush();
  report.used_bytes = scalar(db, used_sql, node, now_us);
  report.free_bytes = free_space(p.root);
  report.held_bytes =
      scalar(db,
             "SELECT COALESCE(SUM(s.bytes), 0) FROM segment s WHERE s.node_id = ?1 AND " +
                 std::string(kHeld),
             node, now_us);
  if (stuck && over()) {
    report.over_budget = true;
    report.alarm = "recordings volume " + p.root +
                   " is full: " + std::to_string(report.used_bytes >> 20) + " MiB recorded (" +
                   std::to_string(report.held_bytes >> 20) + " MiB under evidence holds), " +
                   std::to_string(std::max<std::int64_t>(0, report.free_bytes) >> 20) +
                   " MiB free; nothing more may be deleted";
  }
  // 3. Forecast: days kept per camera at the last day's bitrate.
  const std::int64_t capacity = std::max<std::int64_t>(
      0, p.max_bytes > 0
             ? std::min(p.max_bytes, report.used_bytes + report.free_bytes - p.min_free_bytes)
             : report.used_bytes + report.free_bytes - p.min_free_bytes);
  double total_per_day = 0;
  db.read([&](sqlite3* conn) {
    sqlite3_stmt* st = nullptr;
    sqlite3_prepare_v2(
        conn,
        "SELECT camera_id, SUM(bytes), MIN(start_us), SUM(CASE WHEN end_us > ?2 - 86400000000"
        " THEN bytes ELSE 0 END), SUM(CASE WHEN end_us > ?2 - 86400000000 THEN end_us -"
        " MAX(start_us, ?2 - 86400000000) ELSE 0 END) FROM segment WHERE node_id = ?1 AND"
        " state != 'open' GROUP BY camera_id ORDER BY camera_id",
        -1, &st, nullptr);
    sqlite3_bind_text(st, 1, node.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 2, now_us);
    while (sqlite3_step(st) == SQLITE_ROW) {
      CameraForecast f;
      f.camera_id = reinterpret_cast<const char*>(sqlite3_column_text(st, 0));
      f.bytes = sqlite3_column_int64(st, 1);
      f.oldest_us = sqlite3_column_int64(st, 2);
      const double recent_bytes = static_cast<double>(sqlite3_column_int64(st, 3));
      const double recent_us = static_cast<double>(sqlite3_column_int64(st, 4));
      // Bytes per day of continuous recording at the recent bitrate.
      f.bytes_per_day = recent_us > 0 ? recent_bytes / recent_us * kDayUs : 0;
      total_per_day += f.bytes_per_day;
      report.forecast.push_back(f);
    }
    sqlite3_finalize(st);
    return 0;
  });
  for (auto& f : report.forecast) {
    const auto it = p.per_camera.find(f.camera_id);
    const double days = it != p.per_camera.end() ? it->second.first : p.days;
    const double by_volume =
        total_per_day > 0 ? static_cast<double>(capacity) / total_per_day : days;
    f.days_kept = std::min(days, by_volume);
  }
  return report;
}

}  // namespace matthan::storage
