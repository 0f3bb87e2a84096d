// Evidence holds (tables `hold`, `hold_camera`): footage of the held cameras in the held range
// is never deleted by retention or disk pressure while the hold is active (not released, not
// expired). Creating and releasing a hold is audited.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "matthan/storage/database.hpp"

namespace matthan::evidence {

struct Hold {
  std::string id;  // ULID, made by create_hold
  std::vector<std::string> cameras;
  std::int64_t start_us = 0;
  std::int64_t end_us = 0;
  std::string reason;
  std::string created_by;
  std::int64_t created_us = 0;
  std::optional<std::int64_t> expires_us;
  std::optional<std::int64_t> released_us;
  std::string export_id;
};

// Queued on the writer thread with its audit row; returns the hold's id.
std::string create_hold(storage::Database& db, const std::string& node_id, Hold hold);
// False when there is no such active hold.
bool release_hold(storage::Database& db, const std::string& node_id, const std::string& id,
                  const std::string& actor, std::int64_t now_us);
std::vector<Hold> list_holds(storage::Database& db, const std::string& node_id, bool active_only,
                             std::int64_t now_us);

}  // namespace matthan::evidence
