#include <gtest/gtest.h>
#include <sqlite3.h>

#include <fstream>
#include <string>

#include "child_process.hpp"
#include "matthan/storage/database.hpp"
#include "matthan/storage/retention.hpp"
#include "matthan/storage/segment_index.hpp"

namespace matthan::storage {
namespace {

constexpr std::int64_t kSegmentBytes = 100;

// A finished segment of camera c1, with its file, as a recorder leaves it.
void add_segment(Database& db, const std::string& dir, int n) {
  const std::string path = dir + "/seg" + std::to_string(n) + ".mp4";
  std::ofstream(path) << std::string(kSegmentBytes, 'x');
  const std::int64_t start = 1'700'000'000'000'000 + std::int64_t{n} * 60'000'000;
  db.write([path, start](sqlite3* conn) {
    insert_segment_row(conn, {"n", "c1", "main", path, "h264", start}, "stream_break");
    finish_segment_row(conn, path, start + 60'000'000, kSegmentBytes, 1500, 30, "complete");
  });
}

std::int64_t used(Database& db) {
  db.flush();
  return db.read([](sqlite3* conn) {
    sqlite3_stmt* st = nullptr;
    sqlite3_prepare_v2(conn, "SELECT COALESCE(SUM(bytes), 0) FROM segment", -1, &st, nullptr);
    sqlite3_step(st);
    const std::int64_t v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
  });
}

// The recorders keep finishing segments while a pass deletes (the 16-camera soak: one pass in
// 31 stopped every recorder for a minute with "nothing more may be deleted" and nothing held).
// A count that grew meanwhile is deleted down too; only nothing left to delete is an alarm.
TEST(Retention, FootageWrittenDuringAPassIsNoFullVolume) {
  const auto dir = test::temp_dir("matthan-retention");
  auto db = Database::open(dir + "/m.db");
  ASSERT_TRUE(db) << db.error();
  for (int i = 0; i < 20; ++i) add_segment(**db, dir, i);
  ASSERT_EQ(used(**db), 20 * kSegmentBytes);

  RetentionPolicy policy;
  policy.node_id = "n";
  policy.root = dir;
  policy.days = policy.event_days = 36500;  // only the budget deletes here
  policy.max_bytes = 10 * kSegmentBytes;
  int next = 20;
  // Asked after each deletion: the first six times, a recorder has finished one more segment.
  const FreeSpace writing = [&](const std::string&) -> std::int64_t {
    if (next < 26) add_segment(**db, dir, next++);
    return std::int64_t{1} << 40;
  };
  const auto now = 1'700'000'000'000'000 + std::int64_t{40} * 60'000'000;
  const auto r = run_retention(**db, policy, now, writing);
  EXPECT_FALSE(r.over_budget) << r.alarm;
  EXPECT_EQ(next, 26);
  EXPECT_LE(used(**db), policy.max_bytes);
  EXPECT_EQ(r.deleted, 16);

  // Over the budget with nothing that may go (every segment still being written) is still the
  // alarm.
  (*db)->write([&](sqlite3* conn) {
    sqlite3_exec(conn, "UPDATE segment SET state = 'open'", nullptr, nullptr, nullptr);
  });
  policy.max_bytes = kSegmentBytes / 2;
  const auto stuck = run_retention(**db, policy, now, statvfs_free_bytes);
  EXPECT_TRUE(stuck.over_budget);
  EXPECT_NE(stuck.alarm.find("nothing more may be deleted"), std::string::npos) << stuck.alarm;
}

}  // namespace
}  // namespace matthan::storage
