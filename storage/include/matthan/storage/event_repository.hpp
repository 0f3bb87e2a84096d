// Events in SQLite (migration 0002): one row per event, inserted at start and updated in place.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "matthan/core/event.hpp"
#include "matthan/storage/database.hpp"

namespace matthan::storage {

// Thread-safe: writes go through the Database's writer thread, reads through its pool.
class EventRepository final : public EventSink {
 public:
  EventRepository(Database& db, std::string node_id) : db_(db), node_id_(std::move(node_id)) {}
  void on_event(EventPhase phase, const Event& event) override;
  // Events of a camera (or all when empty) overlapping [from_us, to_us), newest first.
  std::vector<Event> list(const std::string& camera_id, std::int64_t from_us, std::int64_t to_us,
                          int limit) const;

 private:
  Database& db_;
  std::string node_id_;
};

}  // namespace matthan::storage
