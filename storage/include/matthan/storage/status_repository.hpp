// Camera health history, server runs and clock events in SQLite (migration 0001).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "matthan/core/status_store.hpp"
#include "matthan/storage/database.hpp"

namespace matthan::storage {

struct StoredStateChange {
  std::string camera_id;
  std::string stream;
  std::string state;
  std::int64_t start_us = 0;
  std::string error;
};

// Thread-safe: writes go through the Database's writer, reads through its pool.
class StatusRepository final : public StatusStore {
 public:
  StatusRepository(Database& db, std::string node_id) : db_(db), node_id_(std::move(node_id)) {}

  void record_state_change(const StateChange& change) override;
  void record_heartbeat(const std::string& run_id, std::int64_t start_us, std::int64_t now_us,
                        bool clean_stop) override;
  void record_clock_event(ClockEventKind kind, std::int64_t at_us, std::int64_t delta_us,
                          const std::string& detail) override;

  std::vector<StoredStateChange> state_changes(const std::string& camera_id,
                                               const std::string& stream) const;

 private:
  Database& db_;
  std::string node_id_;
};

}  // namespace matthan::storage
