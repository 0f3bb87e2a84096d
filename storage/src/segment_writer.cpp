#include "matthan/storage/segment_writer.hpp"

extern "C" {
#include <libavformat/avformat.h>
#include <libavutil/opt.h>
}

#include <fcntl.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <filesystem>

#include "video_track.hpp"

namespace matthan::storage {

namespace {

// Segments never start before the previous one ended, unless that end is this far ahead: then
// it was stamped by a clock that was badly wrong (ServerClock follows such a step at once).
constexpr std::int64_t kMaxClampUs = 6LL * 3600 * 1'000'000;
// Media time may run ahead of server time between two frames by this much (the session's
// smoother re-anchors on larger disagreements: TimestampSmoother's jump threshold).
constexpr std::int64_t kMaxLeapUs = 1'000'000;

std::string av_error(int code) {
  char buf[AV_ERROR_MAX_STRING_SIZE] = {};
  av_strerror(code, buf, sizeof buf);
  return buf;
}

// <root>/<camera>/<YYYY-MM-DD>/<HHMMSS>.mp4 in UTC; a name already taken gets -1, -2, ...
std::string segment_path(const std::string& root, const std::string& camera, StreamKind stream,
                         std::int64_t wall_us) {
  const std::time_t t = static_cast<std::time_t>(wall_us / 1'000'000);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char day[16], name[16];
  std::strftime(day, sizeof day, "%Y-%m-%d", &tm);
  std::strftime(name, sizeof name, "%H%M%S", &tm);
  const std::string dir = root + "/" + camera + (stream == StreamKind::sub ? "/sub/" : "/") + day;
  std::filesystem::create_directories(dir);
  std::string path = dir + "/" + name + ".mp4";
  for (int i = 1; std::filesystem::exists(path); ++i) {
    path = dir + "/" + name + "-" + std::to_string(i) + ".mp4";
  }
  return path;
}

}  // namespace

// One open segment: the muxer writes through our own file descriptor so fragments can be
// fdatasync'ed.
struct SegmentWriter::Segment {
  AVFormatContext* fmt = nullptr;
  AVIOContext* io = nullptr;
  int fd = -1;
  bool sync = true;
  std::int64_t written = 0;
  std::int64_t generation = -1;
  AVRational in_tb{1, 90000};
  std::int64_t first_dts = AV_NOPTS_VALUE;
  std::int64_t last_dts = AV_NOPTS_VALUE;
  std::int64_t last_duration = 0;
  std::int64_t frame_ticks = 3600;   // the last regular frame interval (25 fps until seen)
  std::int64_t damaged_indexed = 0;  // info.damaged as last handed to on_damaged
  std::int64_t shift = 0;            // added to later frames' media time once one was retimed
  std::int64_t next_sync_dts = 0;
  std::int64_t fragment_ticks = 90000;
  std::int64_t last_wall_us = 0;
  std::int64_t anchor_us = INT64_MAX;  // min(wall - media offset): the first frame's server time
  SegmentInfo info;
  // What is on the disk as of the last successful flush + fdatasync: a failed write later cuts
  // the file back to this.
  struct Durable {
    std::int64_t bytes = 0, frames = 0, keyframes = 0, damaged = 0;
    std::int64_t last_dts = AV_NOPTS_VALUE, last_duration = 0, last_wall_us = 0;
  } durable;

  static int write_cb(void* opaque, std::uint8_t* buf, int size) {  // FFmpeg 5: not const
    auto* s = static_cast<Segment*>(opaque);
    int done = 0;
    while (done < size) {
      const ssize_t n = ::write(s->fd, buf + done, static_cast<std::size_t>(size - done));
      if (n < 0) {
        if (errno == EINTR) continue;
        return AVERROR(errno);
      }
      done += static_cast<int>(n);
    }
    s->written += size;
    return size;
  }
  static std::int64_t seek_cb(void* opaque, std::int64_t offset, int whence) {
    auto* s = static_cast<Segment*>(opaque);
    if (whence == AVSEEK_SIZE) return s->written;
    return ::lseek(s->fd, offset, whence & ~AVSEEK_FORCE);
  }

  ~Segment() {
    if (fmt != nullptr) avformat_free_context(fmt);
    if (io != nullptr) {
      av_freep(&io->buffer);
      avio_context_free(&io);
    }
    if (fd >= 0) ::close(fd);
  }
};

SegmentWriter::SegmentWriter(SegmentWriterSettings settings, std::string camera_id,
                             StreamKind stream, OnSegment on_closed)
    : settings_(std::move(settings)),
      camera_id_(std::move(camera_id)),
      stream_(stream),
      on_closed_(std::move(on_closed)) {}

SegmentWriter::~SegmentWriter() {
  close();
}

std::expected<void, std::string> SegmentWriter::open(const EncodedPacket& first) {
  const auto& p = *first.params;
  if (p.codec != Codec::h264 && p.codec != Codec::h265) {
    return std::unexpected("camera " + camera_id_ + ": cannot record codec " +
                           std::string(to_string(p.codec)));
  }
  if (first.wall_us < retry_after_us_) return std::unexpected(failure_);
  // A full or read-only volume: say so without leaving an empty file behind each keyframe.
  struct statvfs vfs {};
  std::error_code mk;
  std::filesystem::create_directories(settings_.root, mk);
  if (::statvfs(settings_.root.c_str(), &vfs) == 0) {
    const auto free_bytes =
        static_cast<std::int64_t>(vfs.f_bavail) * static_cast<std::int64_t>(vfs.f_frsize);
    if ((vfs.f_flag & ST_RDONLY) != 0 || free_bytes < settings_.min_free_bytes) {
      return std::unexpected(fail((vfs.f_flag & ST_RDONLY) != 0
                                      ? "the recording volume " + settings_.root + " is read-only"
                                      : "the recording volume " + settings_.root + " is full",
                                  first.wall_us));
    }
  }
  auto seg = std::make_unique<Segment>();
  seg->sync = settings_.sync;
  seg->generation = p.generation;
  seg->in_tb = {p.time_base_num, p.time_base_den};
  seg->info.camera_id = camera_id_;
  seg->info.stream = stream_;
  seg->info.codec = std::string(to_string(p.codec));
  seg->info.start_us = previous_end_us_ - first.wall_us <= kMaxClampUs
                           ? std::max(first.wall_us, previous_end_us_)
                           : first.wall_us;
  try {
    seg->info.path = segment_path(settings_.root, camera_id_, stream_, first.wall_us);
  } catch (const std::filesystem::filesystem_error& e) {
    return std::unexpected(
        fail("cannot create the recording folder: " + std::string(e.what()), first.wall_us));
  }
  seg->fd = ::open(seg->info.path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (seg->fd < 0) {
    return std::unexpected(
        fail("cannot create " + seg->info.path + ": " + std::strerror(errno), first.wall_us));
  }
  // The volume is writable again: cut what a read-only volume left torn.
  std::erase_if(untrimmed_, [](const auto& t) {
    return ::truncate(t.first.c_str(), t.second) == 0 || errno == ENOENT;
  });
  if (avformat_alloc_output_context2(&seg->fmt, nullptr, "mp4", nullptr) < 0) {
    return std::unexpected("no mp4 muxer");
  }
  constexpr int kBuffer = 64 * 1024;
  auto* buffer = static_cast<unsigned char*>(av_malloc(kBuffer));
  seg->io = avio_alloc_context(buffer, kBuffer, 1, seg.get(), nullptr, &Segment::write_cb,
                               &Segment::seek_cb);
  seg->fmt->pb = seg->io;
  seg->fmt->flags |= AVFMT_FLAG_CUSTOM_IO;
  AVDictionary* opts = nullptr;
  // Fragmented: playable and recoverable up to the last complete fragment after a crash. We cut
  // each fragment ourselves (frag_custom) right before it is synced, so that what is on the disk
  // is known to the frame (a failed write cuts the file back to exactly that).
  av_dict_set(&opts, "movflags", "empty_moov+default_base_moof+frag_custom", 0);
  const int rc = add_video_track(seg->fmt, p) == nullptr ? AVERROR(ENOMEM)
                                                         : avformat_write_header(seg->fmt, &opts);
  av_dict_free(&opts);
  if (rc < 0) {
    std::error_code rm;
    std::filesystem::remove(seg->info.path, rm);
    return std::unexpected("cannot start " + seg->info.path + ": " + av_error(rc));
  }
  seg->fragment_ticks = static_cast<std::int64_t>(settings_.fragment_s * 90000);
  seg->next_sync_dts = seg->fragment_ticks;
  segment_ = std::move(seg);
  if (on_opened_) on_opened_(segment_->info);
  return {};
}

std::expected<void, std::string> SegmentWriter::write(const EncodedPacket& packet) {
  if (!packet.params || !packet.params->is_video) return {};
  const auto& p = *packet.params;
  // A new segment: none open; new parameters (resolution, codec: a new moov is needed); or a
  // keyframe after segment_s.
  if (segment_ && segment_->generation != p.generation) close();
  // The length on the segment's own (retimed) timeline: a camera's timestamps may jump.
  if (segment_ && packet.keyframe && segment_->last_dts != AV_NOPTS_VALUE) {
    const double length_s =
        static_cast<double>(segment_->last_dts + segment_->last_duration) / 90000.0;
    if (length_s >= settings_.segment_s) close();
  }
  if (!segment_) {
    if (!packet.keyframe) {
      if (!failure_.empty()) {  // after a failure: lost, not merely waiting for a keyframe
        ++lost_;
        return std::unexpected(failure_);
      }
      ++skipped_;
      return {};
    }
    if (auto opened = open(packet); !opened) {
      if (!failure_.empty()) ++lost_;  // a write failure (not a codec that cannot be recorded)
      return opened;
    }
    failure_.clear();
  }
  auto& s = *segment_;
  AVPacket* pkt = av_packet_alloc();
  pkt->data = const_cast<std::uint8_t*>(packet.data.data());
  pkt->size = static_cast<int>(packet.data.size());
  if (s.first_dts == AV_NOPTS_VALUE) {
    s.first_dts = packet.dts == AV_NOPTS_VALUE ? 0 : packet.dts;
    s.info.media_start = av_rescale_q(packet.dts, s.in_tb, {1, 90000});
  }
  // Each segment's media time starts at 0; pts keeps its distance to dts (B-frames). A broken
  // stream can carry any 64-bit timestamp: one more than 2^40 ticks (~140 days at 90 kHz) from
  // the segment's first is taken as missing, so no difference below can overflow (fuzz_rtp).
  const AVRational out_tb = s.fmt->streams[0]->time_base;
  constexpr std::int64_t kFar = std::int64_t{1} << 40;
  std::int64_t rel_dts = 0, rel_pts = 0;
  const bool usable = packet.dts != AV_NOPTS_VALUE && packet.pts != AV_NOPTS_VALUE &&
                      !__builtin_sub_overflow(packet.dts, s.first_dts, &rel_dts) &&
                      !__builtin_sub_overflow(packet.pts, s.first_dts, &rel_pts) &&
                      rel_dts > -kFar && rel_dts < kFar && rel_pts > -kFar && rel_pts < kFar;
  pkt->dts = usable ? av_rescale_q(rel_dts, s.in_tb, out_tb) + s.shift : 0;
  pkt->pts = usable ? av_rescale_q(rel_pts, s.in_tb, out_tb) + s.shift : 0;
  // Cameras (and RTP at a connection's start) send repeated or backward timestamps now and
  // then: such a frame is placed one usual frame interval after the last, not squeezed in.
  // A timestamp more than 1 s ahead of the server time since the segment's anchor (its frames'
  // earliest server time less their media offset; the camera jumped its clock) is placed at that
  // server time: otherwise the segment's start, reckoned back from its frames' server times,
  // would move back over the gap before it. Later frames keep their own spacing from the frame
  // so placed (`shift`). Not measured from the last frame: on a lossy link the frame after a
  // hole of shed frames may arrive right after the last one, yet its media time is right.
  const bool backward = s.last_dts != AV_NOPTS_VALUE && pkt->dts <= s.last_dts;
  const std::int64_t wall_pos_us =
      s.anchor_us == INT64_MAX ? 0 : packet.wall_us - s.anchor_us;  // server time since start
  const bool leap = s.last_dts != AV_NOPTS_VALUE && !backward && s.anchor_us != INT64_MAX &&
                    av_rescale_q(pkt->dts, out_tb, {1, 1'000'000}) - wall_pos_us > kMaxLeapUs;
  if (!usable || backward || leap) {
    const std::int64_t step =
        leap ? std::max(s.frame_ticks,
                        av_rescale_q(wall_pos_us, {1, 1'000'000}, out_tb) - s.last_dts)
        : packet.duration > 0 && packet.duration < kFar
            ? av_rescale_q(packet.duration, s.in_tb, out_tb)
            : s.frame_ticks;
    const std::int64_t fixed = s.last_dts == AV_NOPTS_VALUE ? 0 : s.last_dts + step;
    if (usable && s.last_dts != AV_NOPTS_VALUE) {  // bounded: a broken stream may do this often
      s.shift = std::clamp(s.shift + (fixed - pkt->dts), -(kFar << 10), kFar << 10);
    }
    pkt->pts = fixed + std::max<std::int64_t>(0, pkt->pts - pkt->dts);
    pkt->dts = fixed;
    ++s.info.retimed;
  } else if (s.last_dts != AV_NOPTS_VALUE) {
    s.frame_ticks = pkt->dts - s.last_dts;  // the usual interval, for the case above
  }
  if (pkt->pts < pkt->dts) pkt->pts = pkt->dts;
  // Every sample gets a duration: fragments are cut by us, so the muxer cannot take the last
  // one's from the next packet.
  pkt->duration = packet.duration > 0 && packet.duration < kFar
                      ? av_rescale_q(packet.duration, s.in_tb, out_tb)
                      : s.frame_ticks;
  pkt->flags = packet.keyframe ? AV_PKT_FLAG_KEY : 0;
  pkt->stream_index = 0;
  const std::int64_t dts_out = pkt->dts;
  const std::int64_t duration_out = pkt->duration;
  // av_write_frame, not the interleaved variant: one stream, and no packet is held back.
  const int rc = av_write_frame(s.fmt, pkt);
  av_packet_free(&pkt);
  if (rc < 0 || s.io->error < 0) {
    ++lost_;  // this frame; finish() adds those of the fragment cut off
    return std::unexpected(fail(
        "writing " + s.info.path + ": " + av_error(rc < 0 ? rc : s.io->error), packet.wall_us));
  }
  s.last_dts = dts_out;
  s.last_duration = duration_out;
  s.last_wall_us = packet.wall_us;
  // ...but never before the previous segment's end: server time may run slow for a while (a
  // step back of the system clock being absorbed) and segments must not overlap.
  s.anchor_us =
      std::min(s.anchor_us, packet.wall_us - av_rescale_q(dts_out, out_tb, {1, 1'000'000}));
  if (previous_end_us_ - packet.wall_us <= kMaxClampUs) {
    s.anchor_us = std::max(s.anchor_us, previous_end_us_);
  }
  ++s.info.frames;
  s.info.keyframes += packet.keyframe ? 1 : 0;
  s.info.damaged += packet.damaged ? 1 : 0;
  // Durability: once a fragment's worth is written, push it to the disk.
  if (dts_out >= s.next_sync_dts) {
    if (const int cut = av_write_frame(s.fmt, nullptr); cut < 0) {  // end the fragment here
      return std::unexpected(fail("writing " + s.info.path + ": " + av_error(cut), packet.wall_us));
    }
    avio_flush(s.io);
    if (s.io->error < 0) {
      return std::unexpected(
          fail("writing " + s.info.path + ": " + av_error(s.io->error), packet.wall_us));
    }
    if (s.sync && ::fdatasync(s.fd) != 0) {
      return std::unexpected(
          fail("syncing " + s.info.path + ": " + std::strerror(errno), packet.wall_us));
    }
    // Everything but the frames still in the muxer's open fragment is now on the disk.
    s.durable = {s.written,  s.info.frames,   s.info.keyframes, s.info.damaged,
                 s.last_dts, s.last_duration, s.last_wall_us};
    durable_us_ = s.last_wall_us;
    s.next_sync_dts = dts_out + s.fragment_ticks;
    // The index follows the settled start (after a connection's burst), so a crash-recovered
    // segment is placed right.
    if (s.info.start_us - s.anchor_us > 20'000) {
      const std::int64_t old = s.info.start_us;
      s.info.start_us = s.anchor_us;
      if (on_start_moved_) on_start_moved_(s.info, old);
    }
    if (s.info.damaged > s.damaged_indexed) {
      s.damaged_indexed = s.info.damaged;
      if (on_damaged_) on_damaged_(s.info);
    }
  }
  return {};
}

void SegmentWriter::close() {
  if (!segment_) return;
  auto& s = *segment_;
  const int trailer = av_write_trailer(s.fmt);
  avio_flush(s.io);
  const bool ok = trailer >= 0 && s.io->error >= 0 && (!s.sync || ::fdatasync(s.fd) == 0);
  if (!ok) {
    const int err = trailer < 0 ? trailer : s.io->error < 0 ? s.io->error : AVERROR(EIO);
    fail("closing " + s.info.path + ": " + av_error(err), s.last_wall_us);  // cuts it short
    return;
  } else {
    s.durable = {s.written,  s.info.frames,   s.info.keyframes, s.info.damaged,
                 s.last_dts, s.last_duration, s.last_wall_us};
    durable_us_ = std::max(durable_us_, s.last_wall_us);
  }
  finish(!ok);
}

std::string SegmentWriter::fail(const std::string& what, std::int64_t wall_us) {
  failure_ = what + "; recording stopped, retried every " +
             std::to_string(static_cast<int>(settings_.retry_s)) + " s";
  retry_after_us_ = wall_us + static_cast<std::int64_t>(settings_.retry_s * 1e6);
  if (segment_) finish(true);
  return failure_;
}

// Closes the segment's bookkeeping: on a failure the file is cut back to its last whole
// fragment (the torn rest would make players stop with an error) and described as such.
void SegmentWriter::finish(bool cut_short) {
  auto& s = *segment_;
  if (cut_short) {
    // Always: a short write may have put bytes on the disk that `written` never counted.
    if (::ftruncate(s.fd, s.durable.bytes) != 0) {  // read-only: cut when it is writable again
      untrimmed_.emplace_back(s.info.path, s.durable.bytes);
    }
    lost_ += s.info.frames - s.durable.frames;  // the frames of the fragment cut off
    s.info.frames = s.durable.frames;
    s.info.keyframes = s.durable.keyframes;
    s.info.damaged = s.durable.damaged;
    s.last_dts = s.durable.last_dts;
    s.last_duration = s.durable.last_duration;
    s.last_wall_us = s.durable.last_wall_us;
    s.info.cut_short = true;
  }
  s.info.bytes = cut_short ? std::min(s.written, s.durable.bytes) : s.written;
  // The last frame lasts one frame interval: its duration, else the mean so far.
  const std::int64_t last_us =
      s.last_dts == AV_NOPTS_VALUE ? 0 : av_rescale_q(s.last_dts, {1, 90000}, {1, 1'000'000});
  std::int64_t frame_us =
      s.last_duration > 0 ? av_rescale_q(s.last_duration, {1, 90000}, {1, 1'000'000}) : 0;
  if (frame_us == 0 && s.info.frames > 1) frame_us = last_us / (s.info.frames - 1);
  if (s.anchor_us != INT64_MAX) s.info.start_us = s.anchor_us;
  // The media span, unless server time ran slower (absorbing a step back): then the server time
  // of the last frame, so the next segment does not start before this one ends.
  s.info.end_us =
      s.info.frames > 0
          ? std::max(s.info.start_us + frame_us,
                     std::min(s.info.start_us + last_us + frame_us, s.last_wall_us + frame_us))
          : s.info.start_us;
  previous_end_us_ = std::max(previous_end_us_, s.info.end_us);
  const SegmentInfo info = s.info;
  segment_.reset();
  if (on_closed_) on_closed_(info);
}

}  // namespace matthan::storage
