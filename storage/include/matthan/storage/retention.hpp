// Retention: deletes the oldest footage that no rule keeps, from the index (no disk scans).
// Kept: footage younger than its camera's retention days; footage overlapping an event (with
// its pre/post capture) younger than the event retention days; footage under an active evidence
// hold — always, also under disk pressure. When only held (or too young to free) footage is left
// and the volume is still over its budget, the report says so: the caller raises
// `storage_alarm` and stops recording on that volume rather than delete evidence.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "matthan/storage/database.hpp"

namespace matthan::storage {

struct RetentionPolicy {
  std::string node_id;
  std::string root;  // the recordings volume
  double days = 30;
  double event_days = 90;
  std::map<std::string, std::pair<double, double>> per_camera;  // camera → (days, event days)
  std::int64_t max_bytes = 0;                                   // 0: no byte budget
  std::int64_t min_free_bytes = 0;
};

struct CameraForecast {
  std::string camera_id;
  std::int64_t bytes = 0;    // indexed footage now
  double bytes_per_day = 0;  // at the last day's bitrate
  double days_kept = 0;      // what retention and the volume allow at that rate
  std::int64_t oldest_us = 0;
};

struct RetentionReport {
  int deleted = 0;
  std::int64_t deleted_bytes = 0;
  std::int64_t used_bytes = 0;  // indexed footage on the volume
  std::int64_t free_bytes = 0;  // free on the volume after the pass
  std::int64_t held_bytes = 0;  // footage under active holds
  bool over_budget = false;     // still over the budget or under min free: storage alarm
  std::string alarm;            // why, for the log, the event and the UI
  std::vector<CameraForecast> forecast;
};

// Free bytes on the filesystem holding `path` (statvfs); injectable for tests of the policy.
using FreeSpace = std::function<std::int64_t(const std::string& path)>;
std::int64_t statvfs_free_bytes(const std::string& path);

// One pass; runs on the caller's thread (a timer's), writes through the database's writer.
RetentionReport run_retention(Database& db, const RetentionPolicy& policy, std::int64_t now_us,
                              const FreeSpace& free_space = statvfs_free_bytes);

}  // namespace matthan::storage
