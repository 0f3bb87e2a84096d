#include "matthan/storage/event_repository.hpp"

#include <spdlog/spdlog.h>
#include <sqlite3.h>
#include <nlohmann/json.hpp>

namespace matthan::storage {

void EventRepository::on_event(EventPhase, const Event& e) {
  db_.write([node = node_id_, e](sqlite3* db) {
    sqlite3_stmt* st = nullptr;
    const char* sql =
        "INSERT INTO event (id, node_id, camera_id, type, label, zones, start_us, end_us, "
        "peak_score,"
        " box_x, box_y, box_w, box_h, snapshot_path, pre_capture_s, post_capture_s, armed)"
        " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)"
        " ON CONFLICT (id) DO UPDATE SET label = excluded.label, zones = excluded.zones,"
        " end_us = excluded.end_us, peak_score = excluded.peak_score, box_x = excluded.box_x,"
        " box_y = excluded.box_y, box_w = excluded.box_w, box_h = excluded.box_h,"
        " snapshot_path = excluded.snapshot_path";
    if (sqlite3_prepare_v2(db, sql, -1, &st, nullptr) != SQLITE_OK) {
      spdlog::error("database: cannot store event {}: {}", e.id, sqlite3_errmsg(db));
      return;
    }
    const std::string zones = nlohmann::json(e.zones).dump();
    sqlite3_bind_text(st, 1, e.id.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 2, node.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 3, e.camera_id.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 4, e.type.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 5, e.label.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 6, zones.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 7, e.start_us);
    if (e.end_us) {
      sqlite3_bind_int64(st, 8, *e.end_us);
    } else {
      sqlite3_bind_null(st, 8);
    }
    sqlite3_bind_double(st, 9, e.peak_score);
    sqlite3_bind_double(st, 10, e.peak_box.x);
    sqlite3_bind_double(st, 11, e.peak_box.y);
    sqlite3_bind_double(st, 12, e.peak_box.w);
    sqlite3_bind_double(st, 13, e.peak_box.h);
    sqlite3_bind_text(st, 14, e.snapshot_path.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_int(st, 15, e.pre_capture_s);
    sqlite3_bind_int(st, 16, e.post_capture_s);
    sqlite3_bind_int(st, 17, e.armed ? 1 : 0);
    if (sqlite3_step(st) != SQLITE_DONE) {
      spdlog::error("database: cannot store event {}: {}", e.id, sqlite3_errmsg(db));
    }
    sqlite3_finalize(st);
  });
}

std::vector<Event> EventRepository::list(const std::string& camera_id, std::int64_t from_us,
                                         std::int64_t to_us, int limit) const {
  return db_.read([&](sqlite3* db) {
    std::vector<Event> out;
    sqlite3_stmt* st = nullptr;
    const char* sql =
        "SELECT id, camera_id, type, label, zones, start_us, end_us, peak_score, box_x, box_y,"
        " box_w, box_h, snapshot_path, pre_capture_s, post_capture_s, armed FROM event"
        " WHERE node_id = ?1 AND (?2 = '' OR camera_id = ?2) AND start_us < ?4"
        " AND (end_us IS NULL OR end_us > ?3) ORDER BY start_us DESC LIMIT ?5";
    if (sqlite3_prepare_v2(db, sql, -1, &st, nullptr) != SQLITE_OK) return out;
    sqlite3_bind_text(st, 1, node_id_.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 2, camera_id.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 3, from_us);
    sqlite3_bind_int64(st, 4, to_us);
    sqlite3_bind_int(st, 5, limit);
    auto text = [&](int c) {
      const auto* p = sqlite3_column_text(st, c);
      return std::string(p ? reinterpret_cast<const char*>(p) : "");
    };
    while (sqlite3_step(st) == SQLITE_ROW) {
      Event e;
      e.id = text(0);
      e.camera_id = text(1);
      e.type = text(2);
      e.label = text(3);
      e.zones = nlohmann::json::parse(text(4), nullptr, false).get<std::vector<std::string>>();
      e.start_us = sqlite3_column_int64(st, 5);
      if (sqlite3_column_type(st, 6) != SQLITE_NULL) e.end_us = sqlite3_column_int64(st, 6);
      e.peak_score = sqlite3_column_double(st, 7);
      e.peak_box = {sqlite3_column_double(st, 8), sqlite3_column_double(st, 9),
                    sqlite3_column_double(st, 10), sqlite3_column_double(st, 11)};
      e.snapshot_path = text(12);
      e.pre_capture_s = sqlite3_column_int(st, 13);
      e.post_capture_s = sqlite3_column_int(st, 14);
      e.armed = sqlite3_column_int(st, 15) != 0;
      out.push_back(std::move(e));
    }
    sqlite3_finalize(st);
    return out;
  });
}

}  // namespace matthan::storage
