#include "matthan/evidence/holds.hpp"

#include <sqlite3.h>

#include <nlohmann/json.hpp>

#include "matthan/core/ids.hpp"
#include "matthan/core/time_format.hpp"
#include "matthan/evidence/audit.hpp"

namespace matthan::evidence {

std::string create_hold(storage::Database& db, const std::string& node_id, Hold hold) {
  if (hold.id.empty()) hold.id = make_ulid(hold.created_us);
  db.write([node_id, hold](sqlite3* conn) {
    sqlite3_stmt* st = nullptr;
    sqlite3_prepare_v2(conn,
                       "INSERT INTO hold (id, node_id, cameras, start_us, end_us, reason,"
                       " created_by, created_us, expires_us, export_id)"
                       " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                       -1, &st, nullptr);
    const std::string cams = nlohmann::json(hold.cameras).dump();
    sqlite3_bind_text(st, 1, hold.id.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 2, node_id.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 3, cams.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 4, hold.start_us);
    sqlite3_bind_int64(st, 5, hold.end_us);
    sqlite3_bind_text(st, 6, hold.reason.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 7, hold.created_by.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 8, hold.created_us);
    if (hold.expires_us) sqlite3_bind_int64(st, 9, *hold.expires_us);
    if (!hold.export_id.empty())
      sqlite3_bind_text(st, 10, hold.export_id.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_step(st);
    sqlite3_finalize(st);
    for (const auto& cam : hold.cameras) {
      sqlite3_prepare_v2(conn,
                         "INSERT OR IGNORE INTO hold_camera (hold_id, camera_id) VALUES (?1, ?2)",
                         -1, &st, nullptr);
      sqlite3_bind_text(st, 1, hold.id.c_str(), -1, SQLITE_TRANSIENT);
      sqlite3_bind_text(st, 2, cam.c_str(), -1, SQLITE_TRANSIENT);
      sqlite3_step(st);
      sqlite3_finalize(st);
    }
    nlohmann::json detail{{"cameras", hold.cameras},
                          {"from", format_iso8601_us(hold.start_us)},
                          {"to", format_iso8601_us(hold.end_us)},
                          {"reason", hold.reason}};
    if (hold.expires_us) detail["expires"] = format_iso8601_us(*hold.expires_us);
    if (!hold.export_id.empty()) detail["export_id"] = hold.export_id;
    append_audit_row(conn, node_id, hold.created_us, hold.created_by, "hold", hold.id,
                     detail.dump());
  });
  return hold.id;
}

bool release_hold(storage::Database& db, const std::string& node_id, const std::string& id,
                  const std::string& actor, std::int64_t now_us) {
  bool active = false;
  for (const auto& h : list_holds(db, node_id, true, now_us)) active = active || h.id == id;
  if (!active) return false;
  db.write([=](sqlite3* conn) {
    sqlite3_stmt* st = nullptr;
    sqlite3_prepare_v2(conn, "UPDATE hold SET released_us = ?2 WHERE id = ?1", -1, &st, nullptr);
    sqlite3_bind_text(st, 1, id.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 2, now_us);
    sqlite3_step(st);
    sqlite3_finalize(st);
    append_audit_row(conn, node_id, now_us, actor, "hold_release", id, "{}");
  });
  db.flush();
  return true;
}

std::vector<Hold> list_holds(storage::Database& db, const std::string& node_id, bool active_only,
                             std::int64_t now_us) {
  return db.read([&](sqlite3* conn) {
    std::vector<Hold> out;
    sqlite3_stmt* st = nullptr;
    sqlite3_prepare_v2(
        conn,
        "SELECT id, cameras, start_us, end_us, reason, created_by, created_us, expires_us,"
        " released_us, COALESCE(export_id, '') FROM hold WHERE node_id = ?1 AND (?2 = 0 OR"
        " (released_us IS NULL AND (expires_us IS NULL OR expires_us > ?3))) ORDER BY start_us",
        -1, &st, nullptr);
    sqlite3_bind_text(st, 1, node_id.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_int(st, 2, active_only ? 1 : 0);
    sqlite3_bind_int64(st, 3, now_us);
    auto text = [&](int c) {
      return std::string(reinterpret_cast<const char*>(sqlite3_column_text(st, c)));
    };
    while (sqlite3_step(st) == SQLITE_ROW) {
      Hold h;
      h.id = text(0);
      // Non-throwing: an exception here would leave the statement unfinalised.
      const auto cams = nlohmann::json::parse(text(1), nullptr, false);
      if (cams.is_array()) {
        for (const auto& c : cams) {
          if (c.is_string()) h.cameras.push_back(c.get<std::string>());
        }
      }
      h.start_us = sqlite3_column_int64(st, 2);
      h.end_us = sqlite3_column_int64(st, 3);
      h.reason = text(4);
      h.created_by = text(5);
      h.created_us = sqlite3_column_int64(st, 6);
      if (sqlite3_column_type(st, 7) != SQLITE_NULL) h.expires_us = sqlite3_column_int64(st, 7);
      if (sqlite3_column_type(st, 8) != SQLITE_NULL) h.released_us = sqlite3_column_int64(st, 8);
      h.export_id = text(9);
      out.push_back(std::move(h));
    }
    sqlite3_finalize(st);
    return out;
  });
}

}  // namespace matthan::evidence
