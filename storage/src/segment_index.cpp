#include "matthan/storage/segment_index.hpp"

#include <spdlog/spdlog.h>
#include <sqlite3.h>

namespace matthan::storage {

bool finish_segment_row(sqlite3* conn, const std::string& path, std::int64_t end_us,
                        std::int64_t bytes, std::int64_t frames, std::int64_t keyframes,
                        const char* state) {
  sqlite3_stmt* st = nullptr;
  sqlite3_prepare_v2(conn,
                     "UPDATE segment SET end_us = ?2, bytes = ?3, frames = ?4, keyframes = ?5,"
                     " state = ?6 WHERE path = ?1",
                     -1, &st, nullptr);
  sqlite3_bind_text(st, 1, path.c_str(), -1, SQLITE_TRANSIENT);
  sqlite3_bind_int64(st, 2, end_us);
  sqlite3_bind_int64(st, 3, bytes);
  sqlite3_bind_int64(st, 4, frames);
  sqlite3_bind_int64(st, 5, keyframes);
  sqlite3_bind_text(st, 6, state, -1, SQLITE_TRANSIENT);
  const bool ok = sqlite3_step(st) == SQLITE_DONE;
  if (!ok) spdlog::error("database: cannot finish segment {}: {}", path, sqlite3_errmsg(conn));
  sqlite3_finalize(st);
  return ok;
}

}  // namespace matthan::storage
