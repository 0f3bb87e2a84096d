// The `segment` table's row updates (migration 0004), shared by the recorder (a segment closed)
// and start-up reconciliation (a segment finished from its file after a crash).
#pragma once

#include <cstdint>
#include <string>

struct sqlite3;

namespace matthan::storage {

// Sets end_us, bytes, frames, keyframes and state of the row for `path`; false on a failure
// (logged).
bool finish_segment_row(sqlite3* conn, const std::string& path, std::int64_t end_us,
                        std::int64_t bytes, std::int64_t frames, std::int64_t keyframes,
                        const char* state);

}  // namespace matthan::storage
