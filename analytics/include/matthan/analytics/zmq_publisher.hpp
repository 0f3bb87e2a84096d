// Publishes events and camera status on a ZeroMQ PUB socket: multipart [topic, JSON].
// Topics: event.<commune>.<camera>.<type> and status.<commune>.<camera>. Every message has
// "schema" (version) and "seq" (per node, +1 per message) so subscribers detect what they
// missed. Schema: docs/ref/events.md.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <expected>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>

#include "matthan/core/event.hpp"

namespace matthan::analytics {

inline constexpr int kEventSchemaVersion = 1;

std::string event_json(const std::string& node_id, std::uint64_t seq, EventPhase phase,
                       const Event& event);

// Thread-safe: on_event/on_status queue (bounded, oldest dropped and counted); the socket is
// owned by the publisher's own thread.
class ZmqPublisher final : public EventSink, public StatusSink {
 public:
  static std::expected<std::unique_ptr<ZmqPublisher>, std::string> bind(const std::string& endpoint,
                                                                        std::string node_id);
  ~ZmqPublisher() override;
  void on_event(EventPhase phase, const Event& event) override;
  void on_status(const CameraStatusChange& change) override;
  std::uint64_t dropped() const;
  // The endpoint actually bound ("tcp://127.0.0.1:*" picks a free port).
  const std::string& endpoint() const;

 private:
  ZmqPublisher() = default;
  void push(std::string topic, std::function<std::string(std::uint64_t seq)> body);
  void run();

  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace matthan::analytics
