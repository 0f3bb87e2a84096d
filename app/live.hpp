// Live view: one muxer per camera stream, fed by the stream's packet fan-out, shared by all its
// viewers (no per-viewer work but a pointer copy per fragment). The last GOP's packets are kept
// so a new viewer starts at once from a keyframe. A viewer that falls behind (its socket queue
// over its cap) gets nothing until the next keyframe: it skips ahead instead of piling latency.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "matthan/core/packet.hpp"
#include "matthan/storage/live_muxer.hpp"
#include "matthan/web/http_server.hpp"

namespace matthan::app {

struct LiveStats {
  int viewers = 0;
  std::uint64_t fragments = 0;  // muxed
  std::uint64_t sent = 0;       // fragments handed to viewers
  std::uint64_t skipped = 0;    // fragments a lagging viewer did not get
  std::uint64_t bytes_sent = 0;
  std::uint64_t jpegs = 0;  // pictures encoded for the fallback
};

// Thread-safety: mutex_ guards everything but watched_ (atomic); on_packet runs on the
// fan-out's delivery thread, add/remove on the connections' strands.
class LiveStream {
 public:
  LiveStream(std::string camera_id, StreamKind kind);
  ~LiveStream();
  LiveStream(const LiveStream&) = delete;
  LiveStream& operator=(const LiveStream&) = delete;
  void attach(PacketFanout& fanout);
  // cap_bytes: the most a viewer's socket may have queued before it is skipped ahead. jpeg: the
  // fallback (JPEG pictures) instead of fMP4, for browsers that cannot play the codec in MSE.
  // max_bytes_per_s: a data budget (0: none); over it the viewer gets fewer GOPs, keyframe to
  // keyframe, never a broken one (a phone on a 4G plan).
  std::uint64_t add_viewer(std::shared_ptr<web::WsChannel> channel, std::size_t cap_bytes,
                           bool jpeg = false, double max_bytes_per_s = 0);
  void remove_viewer(std::uint64_t id);
  LiveStats stats() const;
  const std::string& camera_id() const { return camera_id_; }
  StreamKind kind() const { return kind_; }

 private:
  struct Viewer {
    std::uint64_t id = 0;
    std::shared_ptr<web::WsChannel> channel;
    std::size_t cap = 0;
    bool fresh = true;      // has not had the init segment yet
    bool skipping = false;  // waits for a keyframe
    bool jpeg = false;      // the JPEG fallback
    // Token bucket of the data budget: rate bytes/s, up to 2 s of it saved.
    double rate = 0;
    double tokens = 0;
    std::int64_t refilled_us = 0;
    // Whether `bytes` fit the budget now (a keyframe message always goes once the bucket is
    // full, so a budget below one keyframe still shows a picture now and then).
    bool within_budget(std::size_t bytes, bool key);
  };
  void on_packet(const EncodedPacketPtr& packet);
  void send_start(Viewer& v);
  void mux();
  // Sends pending_; previous_gop: it is the tail of the GOP a keyframe just ended.
  void flush(bool previous_gop);
  void feed_jpeg(const EncodedPacketPtr& packet);
  void jpeg_loop();
  void send_jpeg(std::string picture);

  const std::string camera_id_;
  const StreamKind kind_;
  mutable std::mutex mutex_;
  storage::FragmentMuxer muxer_;
  // The JPEG fallback decodes on its own thread (started at the first such viewer) so decoding
  // never holds mutex_, which connections wait on: jpeg_queue_ (mutex_) feeds it; jpeg_ is the
  // thread's own. 5 pictures a second, at most 640 wide.
  storage::JpegEncoder jpeg_{5, 640};
  std::thread jpeg_thread_;
  std::condition_variable jpeg_cv_;
  std::deque<EncodedPacketPtr> jpeg_queue_;
  bool jpeg_active_ = false;   // the queue follows the stream (from a keyframe)
  bool jpeg_restart_ = false;  // the decoder starts over with the queue's first packet
  bool stopping_ = false;
  std::vector<EncodedPacketPtr> gop_;                              // since the last keyframe
  std::vector<std::shared_ptr<const std::string>> gop_fragments_;  // the same, muxed
  std::string pending_;  // fragments of the next message (the newest gop_fragments_)
  std::size_t pending_frames_ = 0;
  bool pending_key_ = false;
  std::int64_t pending_first_us_ = 0;
  std::vector<Viewer> viewers_;
  std::atomic<std::size_t> watched_{0};  // viewers_.size(), read by the fan-out without mutex_
  std::uint64_t next_id_ = 1;
  std::string last_error_;
  LiveStats stats_;
};

}  // namespace matthan::app
