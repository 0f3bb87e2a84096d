#include "matthan/storage/status_repository.hpp"

#include <spdlog/spdlog.h>
#include <sqlite3.h>

namespace matthan::storage {
namespace {

// Small RAII statement; binds by position starting at 1.
class Stmt {
 public:
  Stmt(sqlite3* db, const char* sql) : db_(db) {
    if (sqlite3_prepare_v2(db, sql, -1, &stmt_, nullptr) != SQLITE_OK) {
      spdlog::error("database: cannot prepare statement: {}", sqlite3_errmsg(db));
    }
  }
  ~Stmt() { sqlite3_finalize(stmt_); }
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;
  Stmt& bind(int i, const std::string& v) {
    sqlite3_bind_text(stmt_, i, v.c_str(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
    return *this;
  }
  Stmt& bind(int i, std::int64_t v) {
    sqlite3_bind_int64(stmt_, i, v);
    return *this;
  }
  bool step_done() {
    const int rc = sqlite3_step(stmt_);
    if (rc != SQLITE_DONE && rc != SQLITE_ROW) {
      spdlog::error("database: statement failed: {}", sqlite3_errmsg(db_));
      return false;
    }
    return true;
  }
  bool next_row() { return sqlite3_step(stmt_) == SQLITE_ROW; }
  std::string text(int col) const {
    const auto* p = sqlite3_column_text(stmt_, col);
    return p ? reinterpret_cast<const char*>(p) : "";
  }
  std::int64_t int64(int col) const { return sqlite3_column_int64(stmt_, col); }

 private:
  sqlite3* db_;
  sqlite3_stmt* stmt_ = nullptr;
};

const char* kind_name(ClockEventKind kind) {
  switch (kind) {
    case ClockEventKind::ntp_synchronised:
      return "ntp_synchronised";
    case ClockEventKind::ntp_unsynchronised:
      return "ntp_unsynchronised";
    case ClockEventKind::jump:
      return "jump";
  }
  return "jump";
}

}  // namespace

void StatusRepository::record_state_change(const StateChange& change) {
  db_.write([node = node_id_, change](sqlite3* db) {
    Stmt(db,
         "INSERT INTO camera_state_change (node_id, camera_id, stream, state, start_us, error)"
         " VALUES (?, ?, ?, ?, ?, ?)")
        .bind(1, node)
        .bind(2, change.camera_id)
        .bind(3, change.stream)
        .bind(4, std::string(to_string(change.state)))
        .bind(5, change.at_us)
        .bind(6, change.error)
        .step_done();
  });
}

void StatusRepository::record_heartbeat(const std::string& run_id, std::int64_t start_us,
                                        std::int64_t now_us, bool clean_stop) {
  db_.write([node = node_id_, run_id, start_us, now_us, clean_stop](sqlite3* db) {
    Stmt(db,
         "INSERT INTO server_run (run_id, node_id, start_us, last_heartbeat_us, clean_stop)"
         " VALUES (?, ?, ?, ?, ?) ON CONFLICT (run_id) DO UPDATE SET"
         " last_heartbeat_us = excluded.last_heartbeat_us, clean_stop = excluded.clean_stop")
        .bind(1, run_id)
        .bind(2, node)
        .bind(3, start_us)
        .bind(4, now_us)
        .bind(5, std::int64_t{clean_stop ? 1 : 0})
        .step_done();
  });
}

void StatusRepository::record_clock_event(ClockEventKind kind, std::int64_t at_us,
                                          std::int64_t delta_us, const std::string& detail) {
  db_.write([node = node_id_, kind, at_us, delta_us, detail](sqlite3* db) {
    Stmt(db,
         "INSERT INTO clock_event (node_id, at_us, kind, delta_us, detail) VALUES (?, ?, ?, ?, ?)")
        .bind(1, node)
        .bind(2, at_us)
        .bind(3, std::string(kind_name(kind)))
        .bind(4, delta_us)
        .bind(5, detail)
        .step_done();
  });
}

std::vector<StoredStateChange> StatusRepository::state_changes(const std::string& camera_id,
                                                               const std::string& stream) const {
  return db_.read([&](sqlite3* db) {
    std::vector<StoredStateChange> out;
    Stmt stmt(db,
              "SELECT camera_id, stream, state, start_us, error FROM camera_state_change"
              " WHERE node_id = ? AND camera_id = ? AND stream = ? ORDER BY start_us, id");
    stmt.bind(1, node_id_).bind(2, camera_id).bind(3, stream);
    while (stmt.next_row()) {
      out.push_back({stmt.text(0), stmt.text(1), stmt.text(2), stmt.int64(3), stmt.text(4)});
    }
    return out;
  });
}

}  // namespace matthan::storage
