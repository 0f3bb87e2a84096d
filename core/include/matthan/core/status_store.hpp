// The persistence that ingest and the server's self-health need, implemented by storage/.
// Other modules reach the database only through interfaces like this one.
#pragma once

#include <cstdint>
#include <string>

#include "matthan/core/types.hpp"

namespace matthan {

struct StateChange {
  std::string camera_id;
  std::string stream;  // "main", "sub" or "camera" for the camera as a whole
  StreamState state = StreamState::connecting;
  std::int64_t at_us = 0;
  std::string error;  // plain words, credentials masked
};

enum class ClockEventKind { ntp_synchronised, ntp_unsynchronised, jump };

// Implementations are thread-safe and never block the caller on disk I/O.
class StatusStore {
 public:
  virtual ~StatusStore() = default;
  virtual void record_state_change(const StateChange& change) = 0;
  // A server run is monitored time from its start to its last heartbeat.
  virtual void record_heartbeat(const std::string& run_id, std::int64_t start_us,
                                std::int64_t now_us, bool clean_stop) = 0;
  virtual void record_clock_event(ClockEventKind kind, std::int64_t at_us, std::int64_t delta_us,
                                  const std::string& detail) = 0;
};

}  // namespace matthan
