#include "live.hpp"

#include <chrono>

#include <spdlog/spdlog.h>

#include <nlohmann/json.hpp>
#include <utility>

namespace matthan::app {

namespace {
constexpr std::size_t kMaxGop = 600;  // a camera without keyframes must not grow this forever
// Frames per live message: measured in bench/web (20 viewers' CPU vs one) against the latency
// tests/browser/e2e.mjs reads off the picture.
constexpr std::size_t kMessageFrames = 3;
constexpr std::int64_t kMessageUs = 100'000;
// Packets gather this long between wake-ups of the delivery thread while nobody watches (a
// new viewer waits at most this for the kept GOP to catch up): a little longer than the
// stream's read batch (250 ms), so that each wake-up finds one.
constexpr std::chrono::microseconds kIdleBatch{300'000};
}  // namespace

LiveStream::LiveStream(std::string camera_id, StreamKind kind)
    : camera_id_(std::move(camera_id)), kind_(kind) {}

LiveStream::~LiveStream() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  jpeg_cv_.notify_all();
  if (jpeg_thread_.joinable()) jpeg_thread_.join();
}

void LiveStream::attach(PacketFanout& fanout) {
  // Unwatched, the kept GOP may trail by a batch: a new viewer waits at most that long.
  fanout.subscribe(
      "live", DropPolicy::until_keyframe, 250, 0,
      [this](const EncodedPacketPtr& p) { on_packet(p); },
      [this] { return watched_.load() == 0 ? kIdleBatch : std::chrono::microseconds(0); });
}

bool LiveStream::Viewer::within_budget(std::size_t bytes, bool key) {
  if (rate <= 0) return true;
  const std::int64_t now = std::chrono::duration_cast<std::chrono::microseconds>(
                               std::chrono::steady_clock::now().time_since_epoch())
                               .count();
  const double burst = rate * 2;
  tokens = std::min(burst, tokens + rate * static_cast<double>(now - refilled_us) / 1e6);
  refilled_us = now;
  const auto need = static_cast<double>(bytes);
  if (tokens < need && !(key && tokens >= burst)) return false;
  tokens -= need;  // may go below zero for a large keyframe: paid back before the next
  return true;
}

std::uint64_t LiveStream::add_viewer(std::shared_ptr<web::WsChannel> channel, std::size_t cap_bytes,
                                     bool jpeg, double max_bytes_per_s) {
  std::lock_guard lock(mutex_);
  Viewer v;
  v.id = next_id_++;
  v.channel = std::move(channel);
  v.cap = cap_bytes;
  v.jpeg = jpeg;
  v.rate = max_bytes_per_s;
  v.tokens = max_bytes_per_s * 2;
  v.refilled_us = std::chrono::duration_cast<std::chrono::microseconds>(
                      std::chrono::steady_clock::now().time_since_epoch())
                      .count();
  // Running already: the init segment and this GOP's fragments now; else at the next packet.
  if (!jpeg && muxer_.open() && !gop_fragments_.empty()) send_start(v);
  viewers_.push_back(std::move(v));
  stats_.viewers = static_cast<int>(viewers_.size());
  watched_ = viewers_.size();
  return viewers_.back().id;
}

void LiveStream::remove_viewer(std::uint64_t id) {
  std::lock_guard lock(mutex_);
  std::erase_if(viewers_, [id](const Viewer& v) { return v.id == id; });
  stats_.viewers = static_cast<int>(viewers_.size());
  watched_ = viewers_.size();
}

LiveStats LiveStream::stats() const {
  std::lock_guard lock(mutex_);
  return stats_;
}

void LiveStream::send_start(Viewer& v) {
  const nlohmann::json hello{{"type", "init"},
                             {"camera", camera_id_},
                             {"stream", std::string(to_string(kind_))},
                             {"mime", muxer_.mime()}};
  v.channel->send(std::make_shared<const std::string>(hello.dump()), false);
  v.channel->send(muxer_.init(), true);
  // The GOP so far, but not the fragments waiting in pending_: those follow with it.
  for (std::size_t i = 0; i + pending_frames_ < gop_fragments_.size(); ++i) {
    const auto& f = gop_fragments_[i];
    v.channel->send(f, true);
    ++stats_.sent;
    stats_.bytes_sent += f->size();
  }
  v.fresh = false;
  v.skipping = false;
}

void LiveStream::on_packet(const EncodedPacketPtr& packet) {
  if (!packet->params || !packet->params->is_video) return;
  std::lock_guard lock(mutex_);
  if (packet->keyframe) {
    gop_.clear();
    gop_fragments_.clear();
  }
  if (gop_.empty() && !packet->keyframe) return;  // nothing to start from yet
  if (gop_.size() >= kMaxGop) {
    gop_.clear();
    gop_fragments_.clear();
    return;
  }
  gop_.push_back(packet);
  bool mse = false, jpeg = false;
  for (const auto& v : viewers_) (v.jpeg ? jpeg : mse) = true;
  if (mse) {
    mux();
  } else {
    if (muxer_.open()) muxer_.reset();  // nobody watches this way: no muxing
    gop_fragments_.clear();
  }
  if (jpeg) {
    feed_jpeg(packet);
  } else if (jpeg_active_) {
    jpeg_active_ = false;
    jpeg_queue_.clear();
  }
}

void LiveStream::feed_jpeg(const EncodedPacketPtr& packet) {
  if (!jpeg_thread_.joinable()) jpeg_thread_ = std::thread([this] { jpeg_loop(); });
  if (!jpeg_active_) {
    // A decoder that starts catches up through the kept GOP (decoding all, encoding only the
    // newest picture), so a new viewer sees a picture at once.
    jpeg_queue_.assign(gop_.begin(), gop_.end());
    jpeg_active_ = true;
    jpeg_restart_ = true;
  } else {
    jpeg_queue_.push_back(packet);
  }
  // A decoder that cannot keep up starts again at the next keyframe rather than fall behind.
  if (jpeg_queue_.size() > 2 * kMaxGop / 3) {
    jpeg_queue_.clear();
    jpeg_active_ = false;
    ++stats_.skipped;
  }
  jpeg_cv_.notify_one();
}

void LiveStream::jpeg_loop() {
  std::unique_lock lock(mutex_);
  for (;;) {
    jpeg_cv_.wait(lock, [&] { return stopping_ || !jpeg_queue_.empty(); });
    if (stopping_) return;
    const bool restart = std::exchange(jpeg_restart_, false);
    const auto packet = jpeg_queue_.front();
    jpeg_queue_.pop_front();
    const bool due = jpeg_queue_.empty();  // catching up: decode, encode only the newest
    lock.unlock();
    if (restart) jpeg_.reset();
    auto out = jpeg_.push(*packet, due);
    lock.lock();
    if (!out) {
      if (last_error_ != out.error()) spdlog::warn("camera {}: {}", camera_id_, out.error());
      last_error_ = out.error();
      jpeg_active_ = false;  // start again from the next packet's GOP
      jpeg_queue_.clear();
      continue;
    }
    if (*out) send_jpeg(std::move(**out));
  }
}

void LiveStream::send_jpeg(std::string picture) {
  ++stats_.jpegs;
  const auto shared = std::make_shared<const std::string>(std::move(picture));
  for (auto& v : viewers_) {
    if (!v.jpeg) continue;
    if (v.fresh) {
      const nlohmann::json hello{{"type", "init"},
                                 {"camera", camera_id_},
                                 {"stream", std::string(to_string(kind_))},
                                 {"mime", "image/jpeg"}};
      v.channel->send(std::make_shared<const std::string>(hello.dump()), false);
      v.fresh = false;
    }
    // Behind, or over its data budget: this picture is dropped, not queued.
    if (v.channel->queued_bytes() > v.cap || !v.within_budget(shared->size(), true)) {
      ++stats_.skipped;
      continue;
    }
    v.channel->send(shared, true);
    ++stats_.sent;
    stats_.bytes_sent += shared->size();
  }
}

void LiveStream::mux() {
  // The muxer starts (or restarts on new parameters) from the kept GOP's keyframe.
  const bool restart = !muxer_.open() || gop_fragments_.size() + 1 != gop_.size();
  if (restart) {
    muxer_.reset();
    gop_fragments_.clear();
  }
  bool new_init = false;
  std::shared_ptr<const std::string> latest;
  bool latest_key = false;
  for (std::size_t i = restart ? 0 : gop_.size() - 1; i < gop_.size(); ++i) {
    auto out = muxer_.push(*gop_[i]);
    if (!out) {
      if (last_error_ != out.error()) spdlog::warn("camera {}: {}", camera_id_, out.error());
      last_error_ = out.error();
      gop_fragments_.clear();
      return;
    }
    if (!*out) continue;
    new_init = new_init || (*out)->new_init;
    latest = std::make_shared<const std::string>(std::move((*out)->bytes));
    latest_key = (*out)->keyframe;
    gop_fragments_.push_back(latest);
    ++stats_.fragments;
  }
  if (!latest) return;
  if (restart || new_init) {
    // Everyone starts over from the kept GOP (which holds this frame already).
    pending_.clear();
    pending_frames_ = 0;
    for (auto& v : viewers_) {
      if (!v.jpeg) send_start(v);
    }
    return;
  }
  // A few frames per message (at most kMessageFrames, or kMessageUs of video): fewer socket
  // writes per viewer for at most that much latency. A keyframe always starts a message, so a
  // skipping viewer can resume there.
  if (latest_key && pending_frames_ > 0) flush(true);
  if (pending_frames_ == 0) {
    pending_key_ = latest_key;
    pending_first_us_ = gop_.back()->wall_us;
  }
  pending_ += *latest;
  ++pending_frames_;
  if (pending_frames_ >= kMessageFrames || gop_.back()->wall_us - pending_first_us_ >= kMessageUs)
    flush(false);
}

void LiveStream::flush(bool previous_gop) {
  const auto message = std::make_shared<const std::string>(std::move(pending_));
  const bool key = pending_key_;
  std::vector<std::shared_ptr<web::WsChannel>> to;
  for (auto& v : viewers_) {
    if (v.jpeg) continue;
    if (v.fresh) {
      // The tail of the GOP before: nothing a new viewer can decode; it starts at the keyframe.
      if (previous_gop) continue;
      send_start(v);  // the GOP without this message's frames; then the message
    } else if (v.channel->queued_bytes() > v.cap || (v.skipping && !key) ||
               !v.within_budget(message->size(), key)) {
      // Behind or over budget: skip to the next keyframe rather than queue latency.
      v.skipping = true;
      ++stats_.skipped;
      continue;
    }
    v.skipping = false;
    to.push_back(v.channel);
    ++stats_.sent;
    stats_.bytes_sent += message->size();
  }
  pending_.clear();
  pending_frames_ = 0;
  if (to.size() == 1) {
    to.front()->send(message, true);
  } else if (!to.empty()) {
    // One hand-off to an io thread, which queues every socket's write on itself.
    auto first = to.front();
    first->run_on_io([to = std::move(to), message] {
      for (const auto& ch : to) ch->send(message, true);
    });
  }
}

}  // namespace matthan::app
