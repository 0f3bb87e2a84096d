#include "matthan/analytics/zmq_publisher.hpp"

#include <spdlog/spdlog.h>
#include <nlohmann/json.hpp>

#include "matthan/core/event_json.hpp"

#include <functional>
#include <zmq.hpp>

#include "matthan/core/time_format.hpp"

namespace matthan::analytics {
namespace {
// Topic parts are config ids ([a-z0-9_-]); an empty commune becomes "-" so topics keep their shape.
std::string part(const std::string& s) {
  return s.empty() ? "-" : s;
}
}  // namespace

std::string event_json(const std::string& node_id, std::uint64_t seq, EventPhase phase,
                       const Event& e) {
  nlohmann::json j{{"schema", kEventSchemaVersion},
                   {"seq", seq},
                   {"node_id", node_id},
                   {"phase", std::string(to_string(phase))},
                   {"event", event_body_json(e)}};
  return j.dump();
}

struct ZmqPublisher::Impl {
  std::string node_id;
  std::string endpoint;
  zmq::context_t context{1};
  zmq::socket_t socket{context, zmq::socket_type::pub};
  std::mutex mutex;  // guards queue, stopping, dropped
  std::condition_variable cv;
  std::deque<std::pair<std::string, std::function<std::string(std::uint64_t)>>> queue;
  bool stopping = false;
  std::uint64_t dropped = 0;
  std::uint64_t seq = 0;  // publisher thread only
  std::thread thread;
};

std::expected<std::unique_ptr<ZmqPublisher>, std::string> ZmqPublisher::bind(
    const std::string& endpoint, std::string node_id) {
  std::unique_ptr<ZmqPublisher> self(new ZmqPublisher());
  self->impl_ = std::make_unique<Impl>();
  self->impl_->node_id = std::move(node_id);
  try {
    self->impl_->socket.set(zmq::sockopt::linger, 200);
    self->impl_->socket.set(zmq::sockopt::sndhwm, 10000);
    self->impl_->socket.bind(endpoint);
    self->impl_->endpoint = self->impl_->socket.get(zmq::sockopt::last_endpoint);
  } catch (const zmq::error_t& e) {
    return std::unexpected("cannot bind the ZeroMQ event socket to " + endpoint + ": " + e.what());
  }
  self->impl_->thread = std::thread([p = self.get()] { p->run(); });
  return self;
}

ZmqPublisher::~ZmqPublisher() {
  if (!impl_) return;
  {
    std::lock_guard lock(impl_->mutex);
    impl_->stopping = true;
  }
  impl_->cv.notify_all();
  if (impl_->thread.joinable()) impl_->thread.join();
}

void ZmqPublisher::push(std::string topic, std::function<std::string(std::uint64_t)> body) {
  {
    std::lock_guard lock(impl_->mutex);
    if (impl_->queue.size() >= 10000) {
      impl_->queue.pop_front();
      ++impl_->dropped;  // subscribers see the gap in seq
    }
    impl_->queue.emplace_back(std::move(topic), std::move(body));
  }
  impl_->cv.notify_one();
}

void ZmqPublisher::on_event(EventPhase phase, const Event& event) {
  const std::string topic =
      "event." + part(event.commune) + "." + event.camera_id + "." + event.type;
  push(topic, [node = impl_->node_id, phase, event](std::uint64_t seq) {
    return event_json(node, seq, phase, event);
  });
}

void ZmqPublisher::on_status(const CameraStatusChange& c) {
  const std::string topic = "status." + part(c.commune) + "." + c.camera_id;
  push(topic, [node = impl_->node_id, c](std::uint64_t seq) {
    return nlohmann::json{{"schema", kEventSchemaVersion},
                          {"seq", seq},
                          {"node_id", node},
                          {"camera", c.camera_id},
                          {"commune", c.commune},
                          {"hamlet", c.hamlet},
                          {"state", c.state},
                          {"error", c.error},
                          {"at", format_iso8601_us(c.at_us)},
                          {"at_us", c.at_us}}
        .dump();
  });
}

const std::string& ZmqPublisher::endpoint() const {
  return impl_->endpoint;
}

std::uint64_t ZmqPublisher::dropped() const {
  std::lock_guard lock(impl_->mutex);
  return impl_->dropped;
}

void ZmqPublisher::run() {
  for (;;) {
    std::pair<std::string, std::function<std::string(std::uint64_t)>> item;
    {
      std::unique_lock lock(impl_->mutex);
      impl_->cv.wait(lock, [&] { return impl_->stopping || !impl_->queue.empty(); });
      if (impl_->queue.empty()) return;
      item = std::move(impl_->queue.front());
      impl_->queue.pop_front();
    }
    const std::string body = item.second(++impl_->seq);
    try {
      impl_->socket.send(zmq::buffer(item.first), zmq::send_flags::sndmore);
      impl_->socket.send(zmq::buffer(body), zmq::send_flags::none);
    } catch (const zmq::error_t& e) {
      spdlog::warn("zeromq: cannot publish {}: {}", item.first, e.what());
    }
  }
}

}  // namespace matthan::analytics
