#include "matthan/storage/recorder.hpp"

extern "C" {
#include <libavutil/mathematics.h>
}

#include <chrono>
#include <cstdlib>

#include "matthan/storage/segment_index.hpp"

#include <spdlog/spdlog.h>
#include <sqlite3.h>

namespace matthan::storage {

Recorder::Recorder(Database& db, std::string node_id, std::string camera_id, StreamKind stream,
                   RecorderSettings settings)
    : db_(db),
      node_id_(std::move(node_id)),
      camera_id_(std::move(camera_id)),
      stream_(stream),
      settings_(std::move(settings)) {
  writer_ = std::make_unique<SegmentWriter>(
      settings_.writer, camera_id_, stream_, [this](const SegmentInfo& s) {
        // Completed after the writer's trailer and fdatasync: the row never points past data.
        // A segment cut short by a failed write is 'recovered' (up to its last whole fragment),
        // as after a crash.
        const char* state = s.frames == 0 ? "unreadable" : s.cut_short ? "recovered" : "complete";
        db_.write([s, state](sqlite3* conn) {
          finish_segment_row(conn, s.path, s.end_us, s.bytes, s.frames, s.keyframes, state,
                             s.start_us);
          if (s.damaged > 0) set_damaged_frames(conn, s.path, s.damaged);
        });
        std::lock_guard lock(mutex_);
        ++stats_.segments;
        stats_.current_path.clear();
      });
  writer_->set_on_damaged([this](const SegmentInfo& s) {
    db_.write([path = s.path, n = s.damaged](sqlite3* conn) { set_damaged_frames(conn, path, n); });
  });
  writer_->set_on_start_moved([this](const SegmentInfo& s, std::int64_t old_start) {
    db_.write([row = SegmentRow{node_id_, s.camera_id, std::string(to_string(stream_)), s.path,
                                s.codec, s.start_us},
               old_start](sqlite3* conn) { move_segment_start(conn, row, old_start); });
  });
  // The end of this stream's recordings so far: the first segment of this run starts no
  // earlier, whatever the clock did while the server was down.
  writer_->set_not_before(db_.read([&](sqlite3* conn) {
    sqlite3_stmt* st = nullptr;
    sqlite3_prepare_v2(conn,
                       "SELECT MAX(end_us) FROM segment WHERE node_id = ?1 AND camera_id = ?2"
                       " AND stream = ?3",
                       -1, &st, nullptr);
    sqlite3_bind_text(st, 1, node_id_.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 2, camera_id_.c_str(), -1, SQLITE_TRANSIENT);
    const std::string kind(to_string(stream_));
    sqlite3_bind_text(st, 3, kind.c_str(), -1, SQLITE_TRANSIENT);
    const std::int64_t end = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
    sqlite3_finalize(st);
    return end;
  }));
  writer_->set_on_opened([this](const SegmentInfo& s) {
    // The first segment of this run follows the server's own downtime; later ones a break in
    // the stream.
    const char* reason = !opened_any_ ? "restart" : resumed_ ? "storage_full" : "stream_break";
    opened_any_ = true;
    resumed_ = false;
    db_.write([row = SegmentRow{node_id_, s.camera_id, std::string(to_string(stream_)), s.path,
                                s.codec, s.start_us},
               reason](sqlite3* conn) { insert_segment_row(conn, row, reason); });
    std::lock_guard lock(mutex_);
    stats_.current_path = s.path;
  });
}

Recorder::~Recorder() = default;

void Recorder::attach(PacketFanout& fanout) {
  // Nothing is durable before its fragment (1 s) is synced: handling packets in batches of
  // 300 ms adds at most that to what a crash loses, and spares ~20 wake-ups a second. A little
  // longer than the recorded stream's read batch (250 ms), so that each wake-up finds one.
  fanout.subscribe(
      "recorder", DropPolicy::never, 0, settings_.max_queue_bytes,
      [this](const EncodedPacketPtr& p) { on_packet(p); },
      [] { return std::chrono::microseconds(300'000); });
}

void Recorder::on_packet(const EncodedPacketPtr& packet) {
  if (!packet->params || !packet->params->is_video) return;  // audio: later
  if (paused_.load()) {
    writer_->close();  // a no-op once closed; the gap is indexed when recording resumes
    resumed_ = true;
    std::lock_guard lock(mutex_);
    stats_.paused = true;
    ++stats_.not_recorded;
    return;
  }
  // A silence longer than gap_us that is also a hole in the media time is a break (a stall):
  // the gap is a recorded fact, not something a segment spans. Measured on arrival: over a
  // lossy link the smoothed time can leap by a second more than the silence. And only with a
  // hole in the media time: frames that a slow link held back arrive late but whole, follow on
  // from the last ones, and a cut would cost them up to the next keyframe. (A reconnect always
  // cuts: new stream parameters.)
  const std::int64_t arrival = packet->arrival_us != 0 ? packet->arrival_us : packet->wall_us;
  const StreamParams& params = *packet->params;
  // av_rescale_q: pts × 10⁶ overflows after months of a camera's 90 kHz clock.
  const std::int64_t media_us =
      params.time_base_den > 0
          ? av_rescale_q(packet->pts, {params.time_base_num, params.time_base_den}, {1, 1'000'000})
          : packet->wall_us;
  if (last_arrival_us_ != 0 && params.generation == last_generation_ &&
      arrival - last_arrival_us_ > settings_.gap_us) {
    if (std::llabs(media_us - last_media_us_) > settings_.gap_us) {
      spdlog::info("camera {} {}: nothing arrived for {} ms: the segment ends here", camera_id_,
                   to_string(stream_), (arrival - last_arrival_us_) / 1000);
      writer_->close();
    } else {
      spdlog::info(
          "camera {} {}: nothing arrived for {} ms, then the frames that follow on (held back on"
          " the way): the segment goes on",
          camera_id_, to_string(stream_), (arrival - last_arrival_us_) / 1000);
    }
  }
  last_arrival_us_ = arrival;
  last_media_us_ = media_us;
  last_generation_ = params.generation;
  const auto before = writer_->skipped();
  auto written = writer_->write(*packet);
  std::lock_guard lock(mutex_);
  stats_.paused = false;
  ++stats_.packets;
  stats_.skipped += static_cast<std::uint64_t>(writer_->skipped() - before);
  stats_.lost = static_cast<std::uint64_t>(writer_->lost());  // also what close() cut off
  const std::int64_t steady_us = std::chrono::duration_cast<std::chrono::microseconds>(
                                     std::chrono::steady_clock::now().time_since_epoch())
                                     .count();
  if (writer_->durable_us() != durable_seen_us_) {
    durable_seen_us_ = writer_->durable_us();
    stats_.durable_steady_us = steady_us;
  }
  if (!written) {
    stats_.failure_steady_us = steady_us;
    ++stats_.errors;
    if (stats_.last_error != written.error()) {
      spdlog::error("camera {}: recording: {}", camera_id_, written.error());
    }
    stats_.last_error = written.error();
  }
  if (stats_.failing && !writer_->failing()) {
    spdlog::warn("camera {}: recording resumed ({} frames lost to write failures so far)",
                 camera_id_, stats_.lost);
  }
  stats_.failing = writer_->failing();
}

RecorderStats Recorder::stats() const {
  std::lock_guard lock(mutex_);
  return stats_;
}

void Recorder::close() {
  writer_->close();
}

}  // namespace matthan::storage
