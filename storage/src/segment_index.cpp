#include "matthan/storage/segment_index.hpp"

#include <spdlog/spdlog.h>
#include <sqlite3.h>

#include <ctime>

namespace matthan::storage {

namespace {

// RAII for a prepared statement: every early return finalises.
struct Stmt {
  Stmt(sqlite3* conn, const char* sql) { sqlite3_prepare_v2(conn, sql, -1, &st, nullptr); }
  ~Stmt() { sqlite3_finalize(st); }
  void text(int i, const std::string& v) {
    sqlite3_bind_text(st, i, v.c_str(), -1, SQLITE_TRANSIENT);
  }
  void i64(int i, std::int64_t v) { sqlite3_bind_int64(st, i, v); }
  sqlite3_stmt* st = nullptr;
};

void add_rollup(sqlite3* conn, const std::string& node, const std::string& camera,
                const std::string& stream, const std::string& day, std::int64_t recorded_us,
                std::int64_t gap_us, std::int64_t gaps, std::int64_t bytes, std::int64_t segments) {
  Stmt st(conn,
          "INSERT INTO rollup_day (node_id, camera_id, stream, day, recorded_us, gap_us, gaps,"
          " bytes, segments) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"
          " ON CONFLICT (node_id, camera_id, stream, day) DO UPDATE SET"
          " recorded_us = recorded_us + ?5, gap_us = gap_us + ?6, gaps = gaps + ?7,"
          " bytes = bytes + ?8, segments = segments + ?9");
  st.text(1, node);
  st.text(2, camera);
  st.text(3, stream);
  st.text(4, day);
  st.i64(5, recorded_us);
  st.i64(6, gap_us);
  st.i64(7, gaps);
  st.i64(8, bytes);
  st.i64(9, segments);
  if (sqlite3_step(st.st) != SQLITE_DONE) {
    spdlog::error("database: cannot update the daily rollup: {}", sqlite3_errmsg(conn));
  }
}

}  // namespace

void for_each_local_day(std::int64_t start_us, std::int64_t end_us,
                        const std::function<void(const std::string&, std::int64_t)>& fn) {
  std::int64_t at = start_us;
  while (at < end_us) {
    const std::time_t t = static_cast<std::time_t>(at / 1'000'000);
    std::tm tm{};
    localtime_r(&t, &tm);
    char day[16];
    std::strftime(day, sizeof day, "%Y-%m-%d", &tm);
    std::tm next = tm;
    next.tm_mday += 1;
    next.tm_hour = next.tm_min = next.tm_sec = 0;
    next.tm_isdst = -1;
    const std::int64_t midnight = static_cast<std::int64_t>(std::mktime(&next)) * 1'000'000;
    const std::int64_t until = std::min(end_us, std::max(midnight, at + 1));
    fn(day, until - at);
    at = until;
  }
}

bool insert_segment_row(sqlite3* conn, const SegmentRow& row, const char* gap_reason) {
  std::int64_t previous_end = -1;
  {
    Stmt st(conn,
            "SELECT end_us FROM segment WHERE node_id = ?1 AND camera_id = ?2 AND stream = ?3"
            " AND start_us <= ?4 ORDER BY start_us DESC LIMIT 1");
    st.text(1, row.node_id);
    st.text(2, row.camera_id);
    st.text(3, row.stream);
    st.i64(4, row.start_us);
    if (sqlite3_step(st.st) == SQLITE_ROW) previous_end = sqlite3_column_int64(st.st, 0);
  }
  Stmt st(conn,
          "INSERT INTO segment (node_id, camera_id, stream, path, codec, start_us, end_us)"
          " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)");
  st.text(1, row.node_id);
  st.text(2, row.camera_id);
  st.text(3, row.stream);
  st.text(4, row.path);
  st.text(5, row.codec);
  st.i64(6, row.start_us);
  if (sqlite3_step(st.st) != SQLITE_DONE) {
    spdlog::error("database: cannot index segment {}: {}", row.path, sqlite3_errmsg(conn));
    return false;
  }
  if (previous_end >= 0 && row.start_us - previous_end > kMinGapUs) {
    Stmt gap(conn,
             "INSERT INTO gap (node_id, camera_id, stream, start_us, end_us, reason)"
             " VALUES (?1, ?2, ?3, ?4, ?5, ?6)");
    gap.text(1, row.node_id);
    gap.text(2, row.camera_id);
    gap.text(3, row.stream);
    gap.i64(4, previous_end);
    gap.i64(5, row.start_us);
    gap.text(6, gap_reason);
    sqlite3_step(gap.st);
    bool first = true;
    for_each_local_day(previous_end, row.start_us, [&](const std::string& day, std::int64_t us) {
      add_rollup(conn, row.node_id, row.camera_id, row.stream, day, 0, us, first ? 1 : 0, 0, 0);
      first = false;
    });
  }
  return true;
}

bool finish_segment_row(sqlite3* conn, const std::string& path, std::int64_t end_us,
                        std::int64_t bytes, std::int64_t frames, std::int64_t keyframes,
                        const char* state, std::int64_t start_us_in) {
  SegmentRow before;  // the row as indexed so far: a moved start moves the gap before it too
  std::int64_t old_start = -1;
  if (start_us_in >= 0) {
    Stmt q(conn, "SELECT node_id, camera_id, stream, start_us FROM segment WHERE path = ?1");
    q.text(1, path);
    if (sqlite3_step(q.st) == SQLITE_ROW) {
      before.node_id = reinterpret_cast<const char*>(sqlite3_column_text(q.st, 0));
      before.camera_id = reinterpret_cast<const char*>(sqlite3_column_text(q.st, 1));
      before.stream = reinterpret_cast<const char*>(sqlite3_column_text(q.st, 2));
      old_start = sqlite3_column_int64(q.st, 3);
    }
  }
  if (old_start >= 0 && old_start != start_us_in) {
    before.path = path;
    before.start_us = start_us_in;
    move_segment_start(conn, before, old_start);
  }
  Stmt st(conn,
          "UPDATE segment SET end_us = ?2, bytes = ?3, frames = ?4, keyframes = ?5,"
          " state = ?6, start_us = CASE WHEN ?7 >= 0 THEN ?7 ELSE start_us END"
          " WHERE path = ?1 RETURNING node_id, camera_id, stream, start_us");
  st.i64(7, start_us_in);
  st.text(1, path);
  st.i64(2, end_us);
  st.i64(3, bytes);
  st.i64(4, frames);
  st.i64(5, keyframes);
  sqlite3_bind_text(st.st, 6, state, -1, SQLITE_TRANSIENT);
  const int rc = sqlite3_step(st.st);
  if (rc != SQLITE_ROW) {
    spdlog::error("database: cannot finish segment {}: {}", path,
                  rc == SQLITE_DONE ? "no such row" : sqlite3_errmsg(conn));
    return false;
  }
  auto text = [&](int c) {
    return std::string(reinterpret_cast<const char*>(sqlite3_column_text(st.st, c)));
  };
  const std::string node = text(0), camera = text(1), stream = text(2);
  const std::int64_t start_us = sqlite3_column_int64(st.st, 3);
  sqlite3_step(st.st);  // finish the RETURNING statement before the next one
  const std::int64_t length = std::max<std::int64_t>(1, end_us - start_us);
  bool first = true;
  std::int64_t done_us = 0;  // bytes shared by time; the parts add up to the total exactly
  for_each_local_day(start_us, end_us, [&](const std::string& day, std::int64_t us) {
    const std::int64_t b = bytes * (done_us + us) / length - bytes * done_us / length;
    done_us += us;
    add_rollup(conn, node, camera, stream, day, us, 0, 0, b, first ? 1 : 0);
    first = false;
  });
  return true;
}

void set_damaged_frames(sqlite3* conn, const std::string& path, std::int64_t frames) {
  Stmt st(conn, "UPDATE segment SET damaged_frames = ?2 WHERE path = ?1");
  st.text(1, path);
  st.i64(2, frames);
  sqlite3_step(st.st);
}

void move_segment_start(sqlite3* conn, const SegmentRow& row, std::int64_t old_start_us) {
  {
    Stmt st(conn, "UPDATE segment SET start_us = ?2, end_us = MAX(end_us, ?2) WHERE path = ?1");
    st.text(1, row.path);
    st.i64(2, row.start_us);
    sqlite3_step(st.st);
  }
  std::int64_t shortened = 0;  // what the gap before the segment lost
  {
    Stmt st(conn,
            "UPDATE gap SET end_us = MAX(start_us, ?5) WHERE node_id = ?1 AND camera_id = ?2 AND"
            " stream = ?3 AND end_us = ?4 RETURNING ?4 - end_us");
    st.text(1, row.node_id);
    st.text(2, row.camera_id);
    st.text(3, row.stream);
    st.i64(4, old_start_us);
    st.i64(5, row.start_us);
    if (sqlite3_step(st.st) == SQLITE_ROW) shortened = sqlite3_column_int64(st.st, 0);
    sqlite3_step(st.st);
  }
  if (shortened <= 0) return;
  // The day's rollup follows (the day the gap ended; a gap end moving across midnight is
  // booked on the later day).
  for_each_local_day(old_start_us - 1, old_start_us, [&](const std::string& day, std::int64_t) {
    Stmt st(conn,
            "UPDATE rollup_day SET gap_us = MAX(0, gap_us - ?5) WHERE node_id = ?1 AND"
            " camera_id = ?2 AND stream = ?3 AND day = ?4");
    st.text(1, row.node_id);
    st.text(2, row.camera_id);
    st.text(3, row.stream);
    st.text(4, day);
    st.i64(5, shortened);
    sqlite3_step(st.st);
  });
}

}  // namespace matthan::storage
