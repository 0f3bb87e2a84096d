// The recorder of one camera stream: subscribes to the stream's packet fan-out with the `never`
// drop policy (every packet is kept while memory allows; the queue's byte limit raises an
// alarm instead), writes segments on the subscriber's own thread, and indexes them in SQLite:
// a row when a segment opens, completed when it closes (after the data is on disk).
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "matthan/core/packet.hpp"
#include "matthan/storage/database.hpp"
#include "matthan/storage/segment_writer.hpp"

namespace matthan::storage {

struct RecorderSettings {
  SegmentWriterSettings writer;
  // Nothing arrived for this long and the media time has a hole as long: the stream broke, a
  // new segment.
  std::int64_t gap_us = 2'000'000;
  std::size_t max_queue_bytes = 64u << 20;
};

struct RecorderStats {
  std::uint64_t packets = 0;
  std::uint64_t segments = 0;
  std::uint64_t skipped = 0;  // before the first keyframe of a connection
  std::uint64_t errors = 0;   // packets a write failure kept off the disk
  std::string last_error;
  bool failing = false;  // the last packet could not be written (the volume is full, ...)
  // Steady-clock times (µs) of the last write that reached the disk (a fragment flushed) and
  // of the last failed one: a step of the system clock must not order them wrongly.
  std::int64_t durable_steady_us = 0;
  std::int64_t failure_steady_us = 0;
  std::uint64_t lost = 0;  // frames lost to write failures (incl. fragments cut off)
  std::string current_path;
  bool paused = false;             // the volume is full of held footage: storage alarm
  std::uint64_t not_recorded = 0;  // packets dropped while paused
};

// The writer and the open segment belong to the fan-out subscriber's thread; mutex_ guards
// stats_ (read by the API).
class Recorder {
 public:
  Recorder(Database& db, std::string node_id, std::string camera_id, StreamKind stream,
           RecorderSettings settings);
  ~Recorder();
  // Subscribes to `fanout`; packets flow until the fan-out stops.
  void attach(PacketFanout& fanout);
  RecorderStats stats() const;
  const std::string& camera_id() const { return camera_id_; }
  StreamKind stream() const { return stream_; }
  // Ends the open segment (server stopping); call after the fan-out stopped.
  void close();
  // While paused (storage alarm) packets are not written; the open segment is closed first.
  void set_paused(bool paused) { paused_.store(paused); }

 private:
  void on_packet(const EncodedPacketPtr& packet);

  Database& db_;
  std::string node_id_;
  std::string camera_id_;
  StreamKind stream_;
  RecorderSettings settings_;
  std::unique_ptr<SegmentWriter> writer_;
  std::int64_t last_arrival_us_ = 0;   // the last packet's arrival (or wall time if unknown)
  std::int64_t last_media_us_ = 0;     // the last packet's media time, µs
  std::int64_t last_generation_ = -1;  // its stream parameters (a new one each connection)
  std::int64_t durable_seen_us_ = 0;   // the writer's durable_us() when last looked at
  bool opened_any_ = false;
  bool resumed_ = false;  // the next segment follows a storage-alarm pause
  std::atomic<bool> paused_{false};
  mutable std::mutex mutex_;  // guards stats_
  RecorderStats stats_;
};

}  // namespace matthan::storage
