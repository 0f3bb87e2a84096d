// Delivers alerts to people who are not looking at a screen: webhook, Telegram bot, Zalo Official
// Account. What each channel sends, filters, retries and stats: docs/ref/alerts.md.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "matthan/core/clock.hpp"
#include "matthan/core/config.hpp"
#include "matthan/core/event.hpp"

namespace matthan::alerts {

struct AlertSettings {
  std::size_t queue_capacity = 256;  // per channel; when full the oldest message is dropped
  std::chrono::milliseconds backoff_initial{1000};
  std::chrono::milliseconds backoff_cap{60'000};
  double backoff_jitter = 0.3;  // each wait is drawn from [d·(1−jitter), d]
  // A server-asked wait (Telegram parameters.retry_after, Retry-After) is honoured up to this.
  std::chrono::milliseconds retry_after_cap{300'000};
  // close(): how long in-flight and queued messages still get before they are dropped.
  std::chrono::milliseconds close_grace{2000};
  const Clock* clock = nullptr;  // wall time for last_success_us; nullptr: the system clock
};

struct AlertChannelStats {
  std::string name;
  std::string kind;                   // webhook, telegram, zalo
  std::uint64_t sent = 0;             // messages the receiver accepted
  std::uint64_t failed_attempts = 0;  // requests that failed (each retry counts)
  std::uint64_t dropped = 0;  // messages lost: queue full, refused, out of attempts, shutdown
  std::size_t queued = 0;     // messages waiting, including the one being sent
  std::string last_error;     // latest failure, plain words, no secret; empty after a success
  std::int64_t last_success_us = 0;  // 0: never
};

// Thread-safe EventSink: on_event only filters and queues (never blocks on the network).
// Ownership:
// - node_id_, public_base_url_, camera_names_, settings_ and channels_ (configs, queues, threads)
//   are set by the constructor and never change;
// - each Channel's queue, stats and stopping flag are guarded by that channel's mutex; its
//   HTTP client, backoff and health (for logging on changes) belong to the channel's own worker
//   thread, so a channel that is down only ever delays itself;
// - labels_ (last label seen per open event, to send the person update once) is guarded by
//   labels_mutex_ and written by on_event callers (analysis workers);
// - closed_ is atomic: after close() new events are ignored.
class AlertDispatcher final : public EventSink {
 public:
  AlertDispatcher(std::vector<AlertChannelConfig> channels, std::string node_id,
                  std::string public_base_url = {},
                  std::map<std::string, std::string> camera_names = {},
                  AlertSettings settings = {});
  ~AlertDispatcher() override;
  AlertDispatcher(const AlertDispatcher&) = delete;
  AlertDispatcher& operator=(const AlertDispatcher&) = delete;

  // Sends on `start`, and once more when an `update` labels a motion event "person" for the
  // first time; never on `end`. Each channel applies its own filters (channel_accepts).
  void on_event(EventPhase phase, const Event& event) override;

  // Escalation (channels with escalate_after_s): `acknowledged` says whether someone answered an
  // event (the database); `escalated` records that it went on (event, from, to channel). Set
  // before the first event.
  void set_escalation_hooks(std::function<bool(const std::string& event_id)> acknowledged,
                            std::function<void(const Event&, const std::string& from,
                                               const std::string& to, int waited_s)>
                                escalated);

  // An escalation that was waiting when the server stopped: scheduled again for each channel
  // that would have alerted the event, due at alerted_us + escalate_after_s (at once if past).
  void resume_escalation(const Event& event, std::int64_t alerted_us, std::int64_t now_us);

  // One entry per channel, in config order.
  std::vector<AlertChannelStats> stats() const;

  // Stops accepting events, gives in-flight and queued messages up to close_grace (no more
  // retries), drops the rest and joins the workers. Idempotent; the destructor calls it.
  void close();

 private:
  struct Channel;  // queue, stats, worker thread and HTTP client: alert_dispatcher.cpp
  std::string node_id_;
  std::string public_base_url_;
  std::map<std::string, std::string> camera_names_;
  AlertSettings settings_;
  std::vector<std::unique_ptr<Channel>> channels_;
  std::mutex labels_mutex_;  // guards labels_
  std::map<std::string, std::string> labels_;
  std::atomic<bool> closed_{false};
  // Escalations waiting for their time: owned by esc_thread_, guarded by esc_mutex_.
  struct Pending {
    Event event;
    std::string from, to;
    int after_s = 0;
  };
  void schedule_escalation(const AlertChannelConfig& from, const Event& event,
                           std::int64_t delay_us);
  void run_escalations();
  std::function<bool(const std::string&)> acknowledged_;
  std::function<void(const Event&, const std::string&, const std::string&, int)> escalated_;
  std::mutex esc_mutex_;
  std::condition_variable esc_cv_;
  std::multimap<std::int64_t, Pending> pending_;             // steady µs due → escalation
  std::set<std::pair<std::string, std::string>> scheduled_;  // (event, channel): once each
  bool esc_stop_ = false;
  std::thread esc_thread_;
};

}  // namespace matthan::alerts
