#include "matthan/storage/database.hpp"

#include <spdlog/spdlog.h>
#include <sqlite3.h>

#include <filesystem>

namespace matthan::storage {
namespace {

bool exec(sqlite3* db, const std::string& sql, std::string* error) {
  char* message = nullptr;
  const int rc = sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &message);
  if (rc != SQLITE_OK) {
    if (error != nullptr) *error = message != nullptr ? message : sqlite3_errstr(rc);
    sqlite3_free(message);
    return false;
  }
  return true;
}

int user_version(sqlite3* db) {
  sqlite3_stmt* stmt = nullptr;
  int version = 0;
  if (sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &stmt, nullptr) == SQLITE_OK &&
      sqlite3_step(stmt) == SQLITE_ROW) {
    version = sqlite3_column_int(stmt, 0);
  }
  sqlite3_finalize(stmt);
  return version;
}

}  // namespace

std::expected<int, std::string> migrate(sqlite3* db, const std::vector<Migration>& migrations) {
  int version = user_version(db);
  const int newest = migrations.empty() ? 0 : migrations.back().version;
  if (version > newest) {
    return std::unexpected("database schema version " + std::to_string(version) +
                           " is newer than this program knows (" + std::to_string(newest) +
                           "): refusing to touch it");
  }
  for (const auto& m : migrations) {
    if (m.version <= version) continue;
    std::string error;
    const std::string sql = "BEGIN IMMEDIATE;\n" + m.sql +
                            "\nPRAGMA user_version = " + std::to_string(m.version) + ";\nCOMMIT;";
    if (!exec(db, sql, &error)) {
      exec(db, "ROLLBACK", nullptr);
      return std::unexpected("migration " + std::to_string(m.version) + " (" + m.name +
                             ") failed: " + error);
    }
    spdlog::info("database: applied migration {} ({})", m.version, m.name);
    version = m.version;
  }
  return version;
}

std::expected<std::unique_ptr<Database>, std::string> Database::open(
    const std::string& path, const std::vector<Migration>& migrations, int read_connections) {
  std::unique_ptr<Database> self(new Database());
  self->path_ = path;
  std::error_code ec;
  const auto parent = std::filesystem::path(path).parent_path();
  if (!parent.empty()) std::filesystem::create_directories(parent, ec);
  if (ec) return std::unexpected("cannot create " + parent.string() + ": " + ec.message());

  if (sqlite3_open_v2(path.c_str(), &self->writer_db_,
                      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                      nullptr) != SQLITE_OK) {
    std::string msg = self->writer_db_ ? sqlite3_errmsg(self->writer_db_) : "out of memory";
    return std::unexpected("cannot open database " + path + ": " + msg);
  }
  sqlite3_busy_timeout(self->writer_db_, 5000);
  std::string error;
  // WAL: readers never block the writer. synchronous=NORMAL in WAL loses at most the last
  // transactions on power loss, never corrupts; status rows are re-derivable from the next run.
  if (!exec(self->writer_db_,
            "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"
            " PRAGMA foreign_keys=ON;",
            &error)) {
    return std::unexpected("cannot set up database " + path + ": " + error);
  }
  auto migrated = migrate(self->writer_db_, migrations);
  if (!migrated) return std::unexpected(migrated.error());
  self->schema_version_ = *migrated;

  for (int i = 0; i < read_connections; ++i) {
    sqlite3* reader = nullptr;
    if (sqlite3_open_v2(path.c_str(), &reader, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX,
                        nullptr) != SQLITE_OK) {
      sqlite3_close(reader);
      return std::unexpected("cannot open read connection to " + path);
    }
    sqlite3_busy_timeout(reader, 5000);
    self->readers_.push_back(reader);
    self->all_readers_.push_back(reader);
  }
  self->writer_ = std::thread([db = self.get()] { db->writer_loop(); });
  return self;
}

Database::~Database() {
  {
    std::lock_guard lock(write_mutex_);
    stopping_ = true;
  }
  write_cv_.notify_all();
  if (writer_.joinable()) writer_.join();
  for (auto* r : all_readers_) sqlite3_close(r);
  if (writer_db_ != nullptr) sqlite3_close(writer_db_);
}

void Database::write(WriteJob job) {
  {
    std::lock_guard lock(write_mutex_);
    write_queue_.push_back(std::move(job));
    ++queued_seq_;
  }
  write_cv_.notify_one();
}

void Database::flush() {
  std::unique_lock lock(write_mutex_);
  const auto target = queued_seq_;
  flushed_cv_.wait(lock, [&] { return committed_seq_ >= target; });
}

std::uint64_t Database::write_failures() const {
  std::lock_guard lock(write_mutex_);
  return write_failures_;
}

void Database::writer_loop() {
  for (;;) {
    std::deque<WriteJob> batch;
    {
      std::unique_lock lock(write_mutex_);
      write_cv_.wait(lock, [&] { return stopping_ || !write_queue_.empty(); });
      if (write_queue_.empty() && stopping_) return;
      batch.swap(write_queue_);
    }
    std::string error;
    bool ok = exec(writer_db_, "BEGIN IMMEDIATE", &error);
    if (ok) {
      for (auto& job : batch) job(writer_db_);
      ok = exec(writer_db_, "COMMIT", &error);
      if (!ok) exec(writer_db_, "ROLLBACK", nullptr);
    }
    std::lock_guard lock(write_mutex_);
    if (!ok) {
      ++write_failures_;
      spdlog::error("database: a write batch of {} job(s) failed: {}", batch.size(), error);
    }
    committed_seq_ += batch.size();
    flushed_cv_.notify_all();
  }
}

Database::Lease::Lease(Database& o) : owner(o), db(nullptr) {
  std::unique_lock lock(owner.read_mutex_);
  owner.read_cv_.wait(lock, [&] { return !owner.readers_.empty(); });
  db = owner.readers_.back();
  owner.readers_.pop_back();
}

Database::Lease::~Lease() {
  {
    std::lock_guard lock(owner.read_mutex_);
    owner.readers_.push_back(db);
  }
  owner.read_cv_.notify_one();
}

}  // namespace matthan::storage
