// Live view: one muxer per camera stream, fed by the stream's packet fan-out, shared by all its
// viewers (no per-viewer work but a pointer copy per fragment). The last GOP's packets are kept
// so a new viewer starts at once from a keyframe. A viewer that falls behind (its socket queue
// over its cap) gets nothing until the next keyframe: it skips ahead instead of piling latency.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
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
};

// Thread-safety: mutex_ guards everything; on_packet runs on the fan-out's delivery thread,
// add/remove on the connections' strands.
class LiveStream {
 public:
  LiveStream(std::string camera_id, StreamKind kind);
  void attach(PacketFanout& fanout);
  // cap_bytes: the most a viewer's socket may have queued before it is skipped ahead.
  std::uint64_t add_viewer(std::shared_ptr<web::WsChannel> channel, std::size_t cap_bytes);
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
  };
  void on_packet(const EncodedPacketPtr& packet);
  void send_start(Viewer& v);

  const std::string camera_id_;
  const StreamKind kind_;
  mutable std::mutex mutex_;
  storage::FragmentMuxer muxer_;
  std::vector<EncodedPacketPtr> gop_;                              // since the last keyframe
  std::vector<std::shared_ptr<const std::string>> gop_fragments_;  // the same, muxed
  std::vector<Viewer> viewers_;
  std::uint64_t next_id_ = 1;
  std::string last_error_;
  LiveStats stats_;
};

}  // namespace matthan::app
