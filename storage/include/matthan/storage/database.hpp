// The SQLite database: numbered migrations, one writer thread, a pool of read-only connections,
// WAL. The schema belongs to storage/: later features only add migrations.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <expected>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

struct sqlite3;

namespace matthan::storage {

struct Migration {
  int version;
  std::string name;
  std::string sql;
};

// The migrations built into the binary (storage/schema/NNNN_*.sql), in order.
const std::vector<Migration>& builtin_migrations();

enum class DbError { open_failed, migration_failed, newer_schema, write_failed };

// Thread-safe. Writes are queued to the writer thread and run in batched transactions;
// reads borrow a read-only connection from the pool.
class Database {
 public:
  using WriteJob = std::function<void(sqlite3*)>;

  static std::expected<std::unique_ptr<Database>, std::string> open(
      const std::string& path, const std::vector<Migration>& migrations = builtin_migrations(),
      int read_connections = 2);
  ~Database();
  Database(const Database&) = delete;
  Database& operator=(const Database&) = delete;

  // Queued; runs on the writer thread inside a transaction with other queued jobs.
  void write(WriteJob job);
  // Blocks until every write queued before this call is committed.
  void flush();
  // Runs fn with a read-only connection (blocks while all are busy).
  template <typename Fn>
  auto read(Fn&& fn) {
    Lease lease(*this);
    return fn(lease.db);
  }
  int schema_version() const { return schema_version_; }
  const std::string& path() const { return path_; }
  std::uint64_t write_failures() const;

 private:
  struct Lease {
    explicit Lease(Database& owner);
    ~Lease();
    Database& owner;
    sqlite3* db;
  };

  Database() = default;
  void writer_loop();

  std::string path_;
  int schema_version_ = 0;
  sqlite3* writer_db_ = nullptr;  // owned by writer_ thread after open()

  mutable std::mutex write_mutex_;  // guards write_queue_, stopping_, seq counters, failures
  std::condition_variable write_cv_;
  std::condition_variable flushed_cv_;
  std::deque<WriteJob> write_queue_;
  std::uint64_t queued_seq_ = 0;
  std::uint64_t committed_seq_ = 0;
  std::uint64_t write_failures_ = 0;
  bool stopping_ = false;
  std::thread writer_;

  std::mutex read_mutex_;  // guards readers_
  std::condition_variable read_cv_;
  std::vector<sqlite3*> readers_;
  std::vector<sqlite3*> all_readers_;
};

// Runs migrations newer than the database's user_version, each in its own transaction.
std::expected<int, std::string> migrate(sqlite3* db, const std::vector<Migration>& migrations);

}  // namespace matthan::storage
