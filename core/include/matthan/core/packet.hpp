// Encoded packets of a stream and the fan-out that hands them, undecoded, to several
// subscribers (recorder, live view, snapshots), each with its own bounded queue and drop policy.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "matthan/core/types.hpp"

namespace matthan {

// What a decoder or muxer needs to know about a stream; a new value is sent when it changes
// (new SPS/PPS, resolution or codec, e.g. after a reconnect or a camera setting change).
struct StreamParams {
  std::string camera_id;
  StreamKind stream = StreamKind::main;
  int index = 0;  // elementary stream index inside the session
  Codec codec = Codec::unknown;
  bool is_video = true;
  int width = 0;
  int height = 0;
  int sample_rate = 0;
  int channels = 0;
  std::vector<std::uint8_t> extradata;  // avcC/hvcC or Annex B parameter sets
  int time_base_num = 1;
  int time_base_den = 90000;
  std::int64_t generation = 0;  // bumps on every change
};

struct EncodedPacket {
  std::shared_ptr<const StreamParams> params;
  std::int64_t pts = 0;  // in params->time_base
  std::int64_t dts = 0;
  std::int64_t duration = 0;
  std::int64_t wall_us = 0;  // smoothed server time
  // When it arrived (steady clock, µs; 0: not known). A silence is measured on this: wall_us
  // may trail arrival by up to the smoother's 1 s and then catch up in one step.
  std::int64_t arrival_us = 0;
  bool keyframe = false;
  bool damaged = false;  // pieces of it were lost on the way (RTP): passed on as it arrived
  std::vector<std::uint8_t> data;
};

using EncodedPacketPtr = std::shared_ptr<const EncodedPacket>;

enum class DropPolicy {
  never,           // recording: keep everything; the queue grows up to its byte limit, then alarms
  oldest,          // drop the oldest packets when full
  until_keyframe,  // when full, drop everything up to the next keyframe (live view)
};

struct SubscriberStats {
  std::string name;
  std::size_t queued = 0;
  std::size_t queued_bytes = 0;
  std::uint64_t delivered = 0;
  std::uint64_t dropped = 0;
  bool over_limit = false;  // a `never` queue past its byte limit (memory alarm)
};

// Thread-safe. publish() is called from the stream's demux thread and never blocks on a
// subscriber: each subscriber drains its own queue on its own thread.
class PacketFanout {
 public:
  using Handler = std::function<void(const EncodedPacketPtr&)>;

  PacketFanout();
  ~PacketFanout();
  PacketFanout(const PacketFanout&) = delete;
  PacketFanout& operator=(const PacketFanout&) = delete;

  // Returns how long the subscriber's thread may let packets gather before it handles them.
  using Batch = std::function<std::chrono::microseconds()>;

  // max_packets bounds `oldest`/`until_keyframe` queues; max_bytes is the alarm line of `never`.
  // batch (asked each time the queue runs dry): a subscriber that needs no packet at once (the
  // recorder; a live view nobody watches) is woken once per batch instead of once per packet,
  // which is most of what a stream costs the kernel (bench/compare profile).
  void subscribe(std::string name, DropPolicy policy, std::size_t max_packets,
                 std::size_t max_bytes, Handler handler, Batch batch = {});
  void publish(EncodedPacketPtr packet);
  std::vector<SubscriberStats> stats() const;
  // Lets a publisher skip building packets nobody takes.
  bool has_subscribers() const { return subscriber_count_.load() > 0; }
  // Some subscriber wants each packet as soon as it comes (no batch now): a live view someone
  // watches. The publisher then reads its source without batching either.
  bool eager() const;
  void stop();

 private:
  struct Subscriber;
  std::atomic<int> subscriber_count_{0};
  mutable std::mutex mutex_;  // guards subscribers_ (the list, not their queues)
  std::vector<std::unique_ptr<Subscriber>> subscribers_;
};

}  // namespace matthan
