#include "matthan/core/packet.hpp"

#include <condition_variable>
#include <deque>
#include <thread>

namespace matthan {

// One subscriber: a queue filled by publish() and drained by its own thread.
// All fields below mutex are guarded by it.
struct PacketFanout::Subscriber {
  std::string name;
  DropPolicy policy;
  std::size_t max_packets;
  std::size_t max_bytes;
  Handler handler;
  Batch batch;

  std::mutex mutex;
  std::condition_variable cv;
  std::deque<EncodedPacketPtr> queue;
  std::size_t queued_bytes = 0;
  std::uint64_t delivered = 0;
  std::uint64_t dropped = 0;
  bool stopping = false;
  bool waiting_keyframe = false;
  bool waiting = false;  // the worker waits for a packet (not gathering a batch): wake it
  std::thread worker;

  void push(EncodedPacketPtr packet) {
    {
      std::lock_guard lock(mutex);
      if (stopping) return;
      if (policy == DropPolicy::until_keyframe && waiting_keyframe) {
        if (!packet->keyframe) {
          ++dropped;
          return;
        }
        waiting_keyframe = false;
      }
      if (policy != DropPolicy::never && queue.size() >= max_packets) {
        if (policy == DropPolicy::oldest) {
          queued_bytes -= queue.front()->data.size();
          queue.pop_front();
          ++dropped;
        } else {
          // Skip ahead: everything queued is stale; resume at the next keyframe.
          dropped += queue.size();
          queue.clear();
          queued_bytes = 0;
          if (!packet->keyframe) {
            waiting_keyframe = true;
            ++dropped;
            return;
          }
        }
      }
      queued_bytes += packet->data.size();
      queue.push_back(std::move(packet));
      if (!waiting) return;  // running, or gathering a batch: it will look at the queue
    }
    cv.notify_one();
  }

  void run() {
    for (;;) {
      EncodedPacketPtr packet;
      {
        std::unique_lock lock(mutex);
        if (queue.empty() && !stopping) {
          // Drained: let the next packets gather for a while (push() does not wake us).
          const auto gather = batch ? batch() : std::chrono::microseconds(0);
          if (gather.count() > 0) cv.wait_for(lock, gather, [&] { return stopping; });
          waiting = true;
          cv.wait(lock, [&] { return stopping || !queue.empty(); });
          waiting = false;
        }
        if (queue.empty()) return;  // stopping and drained
        packet = std::move(queue.front());
        queue.pop_front();
        queued_bytes -= packet->data.size();
      }
      handler(packet);
      std::lock_guard lock(mutex);
      ++delivered;
    }
  }
};

PacketFanout::PacketFanout() = default;

PacketFanout::~PacketFanout() {
  stop();
}

void PacketFanout::subscribe(std::string name, DropPolicy policy, std::size_t max_packets,
                             std::size_t max_bytes, Handler handler, Batch batch) {
  auto sub = std::make_unique<Subscriber>();
  sub->name = std::move(name);
  sub->policy = policy;
  sub->max_packets = max_packets == 0 ? 1 : max_packets;
  sub->max_bytes = max_bytes;
  sub->handler = std::move(handler);
  sub->batch = std::move(batch);
  sub->worker = std::thread([s = sub.get()] { s->run(); });
  std::lock_guard lock(mutex_);
  subscribers_.push_back(std::move(sub));
  ++subscriber_count_;
}

void PacketFanout::publish(EncodedPacketPtr packet) {
  std::lock_guard lock(mutex_);
  for (auto& sub : subscribers_) sub->push(packet);
}

bool PacketFanout::eager() const {
  std::lock_guard lock(mutex_);
  for (const auto& sub : subscribers_) {
    if (!sub->batch || sub->batch().count() == 0) return true;  // `batch` is set once, read-only
  }
  return false;
}

std::vector<SubscriberStats> PacketFanout::stats() const {
  std::vector<SubscriberStats> out;
  std::lock_guard lock(mutex_);
  for (const auto& sub : subscribers_) {
    std::lock_guard sub_lock(sub->mutex);
    out.push_back({sub->name, sub->queue.size(), sub->queued_bytes, sub->delivered, sub->dropped,
                   sub->policy == DropPolicy::never && sub->queued_bytes > sub->max_bytes});
  }
  return out;
}

void PacketFanout::stop() {
  std::vector<std::unique_ptr<Subscriber>> subs;
  {
    std::lock_guard lock(mutex_);
    subs.swap(subscribers_);
    subscriber_count_ = 0;
  }
  for (auto& sub : subs) {
    {
      std::lock_guard lock(sub->mutex);
      sub->stopping = true;
    }
    sub->cv.notify_one();
    if (sub->worker.joinable()) sub->worker.join();
  }
}

}  // namespace matthan
