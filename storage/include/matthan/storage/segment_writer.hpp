// Recording without re-encoding: one camera stream's packets, stream-copied into fragmented MP4
// segments (about a minute each, ~1 s fragments, every segment starting at a keyframe) under
// <root>/<camera>/<YYYY-MM-DD>/<HHMMSS>.mp4 (UTC). Durability: each fragment is fdatasync'ed
// once written, so a power cut loses at most the fragment being written (docs/design/recording.md).
#pragma once

#include <cstdint>
#include <expected>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "matthan/core/packet.hpp"

namespace matthan::storage {

struct SegmentInfo {
  std::string camera_id;
  StreamKind stream = StreamKind::main;
  std::string path;
  std::string codec;  // h264, h265
  // Server time of the first frame: the earliest (wall - media offset) over the segment's
  // packets, so frames a camera sends in a burst on connecting are not placed late.
  std::int64_t start_us = 0;
  std::int64_t end_us = 0;       // after the last frame: [start_us, end_us)
  std::int64_t media_start = 0;  // first dts, in 1/90000 s (for gap checks across segments)
  std::int64_t bytes = 0;
  std::int64_t frames = 0;
  std::int64_t keyframes = 0;
  std::int64_t damaged = 0;  // frames that arrived with pieces missing (EncodedPacket::damaged)
  std::int64_t retimed = 0;  // frames whose timestamp was missing, went back or leapt ahead
  // A write to the volume failed (full, read-only, I/O error): the file was cut back to its last
  // whole fragment, which is all the fields above describe.
  bool cut_short = false;
};

struct SegmentWriterSettings {
  std::string root;       // the recordings directory
  double segment_s = 60;  // a new segment at the first keyframe after this long
  double fragment_s = 1;  // fragment length (and the durability unit)
  bool sync = true;       // fdatasync every fragment
  // After a failed write, no new segment is tried for this long; nor while the volume is
  // read-only or has less than min_free_bytes free (no empty files on a full disk).
  double retry_s = 5;
  std::int64_t min_free_bytes = 2 << 20;
};

// Not thread-safe: one per camera stream, driven by its recorder thread (never an io thread).
class SegmentWriter {
 public:
  using OnSegment = std::function<void(const SegmentInfo&)>;  // called when a segment is closed

  SegmentWriter(SegmentWriterSettings settings, std::string camera_id, StreamKind stream,
                OnSegment on_closed);
  ~SegmentWriter();
  SegmentWriter(const SegmentWriter&) = delete;
  SegmentWriter& operator=(const SegmentWriter&) = delete;

  // Video packets in decode order. Packets before the first keyframe (of the stream, or after
  // a parameter change) cannot start a segment and are counted in skipped(). A failed write
  // closes the segment cut short (see SegmentInfo::cut_short) and returns the error; so does
  // every packet until a new segment can start, counted in lost().
  std::expected<void, std::string> write(const EncodedPacket& packet);
  // Ends the current segment (a reconnect, a stop): the next packet starts a new one.
  void close();
  std::int64_t skipped() const { return skipped_; }
  std::int64_t lost() const { return lost_; }
  // A write failed and no segment could start since (the volume is full, read-only, broken).
  bool failing() const { return !failure_.empty(); }
  // Wall time of the last frame known to be on the disk (its fragment flushed), 0 before any.
  std::int64_t durable_us() const { return durable_us_; }
  // The end of what this stream recorded before (its last segment in the index): the first
  // segment starts no earlier.
  void set_not_before(std::int64_t end_us) { previous_end_us_ = end_us; }
  // Called when a segment's file was created (before its first packet is written).
  void set_on_opened(OnSegment on_opened) { on_opened_ = std::move(on_opened); }
  // Called (at a fragment boundary) when start_us moved earlier by more than 20 ms.
  void set_on_start_moved(std::function<void(const SegmentInfo&, std::int64_t old_start_us)> fn) {
    on_start_moved_ = std::move(fn);
  }
  // Called (at a fragment boundary) when more of the segment's frames on the disk arrived
  // damaged than last time (SegmentInfo::damaged), so the index has it before the segment ends
  // (a crash, a camera offline for hours).
  void set_on_damaged(OnSegment fn) { on_damaged_ = std::move(fn); }

 private:
  struct Segment;
  std::expected<void, std::string> open(const EncodedPacket& first);
  std::string fail(const std::string& what, std::int64_t wall_us);
  void finish(bool cut_short);
  SegmentWriterSettings settings_;
  std::string camera_id_;
  StreamKind stream_;
  OnSegment on_closed_;
  OnSegment on_opened_;
  std::function<void(const SegmentInfo&, std::int64_t)> on_start_moved_;
  OnSegment on_damaged_;
  std::unique_ptr<Segment> segment_;
  std::int64_t skipped_ = 0;
  std::int64_t lost_ = 0;
  std::int64_t previous_end_us_ = 0;  // the last segment's end: the next starts no earlier
  std::int64_t retry_after_us_ = 0;   // wall time before which no new segment is tried
  std::string failure_;               // why, while retry_after_us_ holds
  std::int64_t durable_us_ = 0;
  // Segments cut short whose torn tail could not be cut off yet (a read-only volume): path, size.
  std::vector<std::pair<std::string, std::int64_t>> untrimmed_;
};

}  // namespace matthan::storage
