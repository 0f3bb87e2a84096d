// The `segment`, `gap` and `rollup_day` tables' row updates (migrations 0004, 0005), shared by
// the recorder (a segment opened or closed) and start-up reconciliation (a segment finished
// from its file after a crash). All run on the database's writer thread.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

struct sqlite3;

namespace matthan::storage {

// A hole between two segments of a stream shorter than this is timestamp jitter, not a gap.
inline constexpr std::int64_t kMinGapUs = 500'000;

struct SegmentRow {
  std::string node_id, camera_id, stream, path, codec;
  std::int64_t start_us = 0;
};

// Inserts the row of a segment whose file was just created (state 'open'). When the stream's
// previous segment ended more than kMinGapUs before, the hole is indexed as a gap with
// `gap_reason` (and added to the daily rollups).
bool insert_segment_row(sqlite3* conn, const SegmentRow& row, const char* gap_reason);

// Sets end_us, bytes, frames, keyframes and state (and start_us when >= 0) of the row for `path`
// and adds the segment to the daily rollups; false on a failure (logged).
bool finish_segment_row(sqlite3* conn, const std::string& path, std::int64_t end_us,
                        std::int64_t bytes, std::int64_t frames, std::int64_t keyframes,
                        const char* state, std::int64_t start_us = -1);

// How many of the segment's frames arrived damaged (SegmentInfo::damaged).
void set_damaged_frames(sqlite3* conn, const std::string& path, std::int64_t frames);

// The segment's start moved earlier (SegmentWriter's settled start): its row, and the end of
// the gap before it, follow.
void move_segment_start(sqlite3* conn, const SegmentRow& row, std::int64_t old_start_us);

// Splits [start_us, end_us) at local midnights (the process's TZ): fn(day "YYYY-MM-DD", µs).
void for_each_local_day(std::int64_t start_us, std::int64_t end_us,
                        const std::function<void(const std::string&, std::int64_t)>& fn);

}  // namespace matthan::storage
