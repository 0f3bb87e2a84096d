#include <gtest/gtest.h>
#include <sqlite3.h>

#include <filesystem>

#include "child_process.hpp"
#include "matthan/storage/database.hpp"
#include "matthan/storage/status_repository.hpp"

namespace matthan::storage {
namespace {

int count_rows(const std::string& path, const std::string& sql) {
  sqlite3* db = nullptr;
  sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr);
  sqlite3_stmt* st = nullptr;
  int n = -1;
  if (sqlite3_prepare_v2(db, sql.c_str(), -1, &st, nullptr) == SQLITE_OK &&
      sqlite3_step(st) == SQLITE_ROW) {
    n = sqlite3_column_int(st, 0);
  }
  sqlite3_finalize(st);
  sqlite3_close(db);
  return n;
}

TEST(Database, MigratesOnceAndUsesWal) {
  const auto dir = test::temp_dir("matthan-db");
  const auto path = dir + "/m.db";
  {
    auto db = Database::open(path);
    ASSERT_TRUE(db.has_value()) << db.error();
    EXPECT_EQ((*db)->schema_version(), builtin_migrations().back().version);
  }
  {
    auto db = Database::open(path);  // second open: nothing to apply, no error
    ASSERT_TRUE(db.has_value()) << db.error();
  }
  EXPECT_EQ(
      count_rows(path, "SELECT count(*) FROM sqlite_master WHERE name = 'camera_state_change'"), 1);
  sqlite3* raw = nullptr;
  sqlite3_open(path.c_str(), &raw);
  sqlite3_stmt* st = nullptr;
  sqlite3_prepare_v2(raw, "PRAGMA journal_mode", -1, &st, nullptr);
  sqlite3_step(st);
  EXPECT_STREQ(reinterpret_cast<const char*>(sqlite3_column_text(st, 0)), "wal");
  sqlite3_finalize(st);
  sqlite3_close(raw);
  std::filesystem::remove_all(dir);
}

TEST(Database, RefusesASchemaNewerThanItKnows) {
  const auto dir = test::temp_dir("matthan-db");
  const auto path = dir + "/m.db";
  sqlite3* raw = nullptr;
  sqlite3_open(path.c_str(), &raw);
  sqlite3_exec(raw, "PRAGMA user_version = 999", nullptr, nullptr, nullptr);
  sqlite3_close(raw);
  auto db = Database::open(path);
  ASSERT_FALSE(db.has_value());
  EXPECT_NE(db.error().find("newer"), std::string::npos);
  std::filesystem::remove_all(dir);
}

TEST(Database, FailedMigrationRollsBackAndSaysWhich) {
  const auto dir = test::temp_dir("matthan-db");
  std::vector<Migration> migrations{
      {1, "good", "CREATE TABLE a (x INTEGER);"},
      {2, "broken", "CREATE TABLE b (x INTEGER); SELECT nonsense FROM nowhere;"}};
  auto db = Database::open(dir + "/m.db", migrations);
  ASSERT_FALSE(db.has_value());
  EXPECT_NE(db.error().find("migration 2 (broken)"), std::string::npos);
  EXPECT_EQ(count_rows(dir + "/m.db", "PRAGMA user_version"), 1);
  EXPECT_EQ(count_rows(dir + "/m.db", "SELECT count(*) FROM sqlite_master WHERE name = 'b'"), 0);
  std::filesystem::remove_all(dir);
}

TEST(StatusRepository, StateChangesHeartbeatsAndClockEventsCarryNodeId) {
  const auto dir = test::temp_dir("matthan-db");
  const auto path = dir + "/m.db";
  auto db = Database::open(path);
  ASSERT_TRUE(db.has_value());
  StatusRepository repo(**db, "node-7");
  repo.record_state_change({"cam1", "main", StreamState::connecting, 1000, ""});
  repo.record_state_change({"cam1", "main", StreamState::online, 2000, ""});
  repo.record_state_change({"cam1", "main", StreamState::offline, 3000, "closed"});
  repo.record_heartbeat("run-a", 500, 900, false);
  repo.record_heartbeat("run-a", 500, 4000, true);
  repo.record_clock_event(ClockEventKind::jump, 3500, -2'000'000, "stepped back");
  (*db)->flush();
  const auto rows = repo.state_changes("cam1", "main");
  ASSERT_EQ(rows.size(), 3u);
  EXPECT_EQ(rows[1].state, "online");
  EXPECT_EQ(rows[2].error, "closed");
  EXPECT_EQ(count_rows(path, "SELECT count(*) FROM camera_state_change WHERE node_id = 'node-7'"),
            3);
  EXPECT_EQ(count_rows(path, "SELECT last_heartbeat_us FROM server_run WHERE run_id = 'run-a'"),
            4000);
  EXPECT_EQ(count_rows(path, "SELECT clean_stop FROM server_run WHERE run_id = 'run-a'"), 1);
  EXPECT_EQ(count_rows(path, "SELECT delta_us FROM clock_event WHERE kind = 'jump'"), -2'000'000);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace matthan::storage
