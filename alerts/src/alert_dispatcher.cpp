#include "matthan/alerts/alert_dispatcher.hpp"

#include <spdlog/spdlog.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <condition_variable>
#include <deque>
#include <fstream>
#include <iterator>
#include <limits>
#include <optional>
#include <thread>

#include "http_client.hpp"
#include "matthan/alerts/alert_message.hpp"
#include "matthan/core/backoff.hpp"

namespace matthan::alerts {
namespace {

constexpr std::size_t kMaxOpenEvents = 4096;         // label memory; oldest ULIDs go first
constexpr std::size_t kMaxSnapshotBytes = 10 << 20;  // Telegram's photo limit
constexpr std::size_t kZaloMaxImageBytes = 1 << 20;  // Zalo's upload/image limit
constexpr int kZaloRateLimited = -32;                // "request limit exceeded": wait and retry

struct Job {
  EventPhase phase = EventPhase::start;
  Event event;
  int escalated_after_s = 0;  // > 0: nobody acknowledged it on the first channel in this time
};

// One request's outcome in plain words.
struct Attempt {
  bool ok = false;
  bool permanent = false;  // retrying cannot help (a 4xx, a refused token, a bad chat id)
  bool aborted = false;    // close() ran out of grace
  std::string error{};
  std::chrono::milliseconds retry_after{0};  // what the receiver asked us to wait
};

Attempt succeeded() {
  Attempt a;
  a.ok = true;
  return a;
}

// A failure that may pass: retried with backoff.
Attempt failed(std::string error) {
  Attempt a;
  a.error = std::move(error);
  return a;
}

// A message and what it needs across its retries.
struct Message {
  Job job;
  std::string text;
  std::string link;
  std::optional<std::string> jpeg;
  std::string zalo_attachment_id;  // an upload that worked is not repeated on retry
};

bool looks_like_jpeg(const std::string& b) {
  return b.size() >= 4 && static_cast<unsigned char>(b[0]) == 0xFF &&
         static_cast<unsigned char>(b[1]) == 0xD8 &&
         static_cast<unsigned char>(b[b.size() - 2]) == 0xFF &&
         static_cast<unsigned char>(b[b.size() - 1]) == 0xD9;
}

std::optional<std::string> read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return std::nullopt;
  std::string bytes;
  bytes.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  if (bytes.size() > kMaxSnapshotBytes) return std::nullopt;
  return bytes;
}

// The analysis rewrites an event's snapshot in place when its peak grows, so a read can catch
// a half-written file: check the JPEG markers and read once more before sending without it.
std::optional<std::string> read_snapshot(const std::string& path) {
  if (path.empty()) return std::nullopt;
  for (int i = 0; i < 2; ++i) {
    auto bytes = read_file(path);
    if (!bytes) return std::nullopt;
    if (looks_like_jpeg(*bytes)) return bytes;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return std::nullopt;
}

void replace_all(std::string& s, const std::string& what, std::string_view with) {
  if (what.empty()) return;
  for (auto pos = s.find(what); pos != std::string::npos; pos = s.find(what, pos + with.size())) {
    s.replace(pos, what.size(), with);
  }
}

bool retryable_status(int status) {
  return status >= 500 || status == 408 || status == 429;
}

Attempt transport_failure(const HttpFailure& f) {
  Attempt a;
  a.error = f.message;
  a.permanent = f.kind == HttpFailure::Kind::invalid;
  a.aborted = f.kind == HttpFailure::Kind::aborted;
  return a;
}

Attempt status_failure(const HttpResponse& r, const std::string& host, const std::string& detail,
                       std::optional<int> retry_after_s = std::nullopt) {
  Attempt a;
  a.permanent = !retryable_status(r.status);
  a.error = "HTTP " + std::to_string(r.status) + " from " + host;
  if (!detail.empty()) a.error += ": " + detail;
  if (r.status >= 300 && r.status < 400) a.error += " (a redirect: set url to the final address)";
  const int secs = std::max(retry_after_s.value_or(0), r.retry_after_s.value_or(0));
  a.retry_after = std::chrono::seconds(secs);
  return a;
}

nlohmann::json parse_json(const std::string& body) {
  return nlohmann::json::parse(body, nullptr, /*allow_exceptions=*/false);
}

std::string string_at(const nlohmann::json& j, const char* key) {
  if (!j.is_object()) return {};
  const auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
}

}  // namespace

struct AlertDispatcher::Channel {
  Channel(AlertChannelConfig c, const AlertDispatcher& o) : config(std::move(c)), owner(o) {
    base = config.url;
    while (!base.empty() && base.back() == '/') base.pop_back();
    host = url_host(config.url);
    stats.name = config.name;
    stats.kind = std::string(to_string(config.kind));
  }

  void enqueue(EventPhase phase, const Event& event, int escalated_after_s = 0);
  void run();
  void deliver(HttpClient& http, Job job);
  Attempt attempt(HttpClient& http, Message& m);
  Attempt send_webhook(HttpClient& http, const Message& m);
  Attempt send_telegram(HttpClient& http, const Message& m);
  Attempt send_zalo(HttpClient& http, Message& m);
  void record_success();
  void record_failure(const Attempt& a);
  // why == nullptr: dropped at shutdown.
  void record_drop(const char* why, const Event& e, int attempts);
  std::string mask(std::string s) const {
    replace_all(s, config.bot_token, "***");
    replace_all(s, config.access_token, "***");
    return s;
  }

  // Immutable after construction.
  const AlertChannelConfig config;
  const AlertDispatcher& owner;
  std::string base;  // url without a trailing '/'
  std::string host;  // host:port for messages

  mutable std::mutex mutex;  // guards queue, in_flight, stopping, overflow_warned, stats
  std::condition_variable cv;
  std::deque<Job> queue;
  bool in_flight = false;
  bool stopping = false;
  bool overflow_warned = false;  // one warning per overflow episode (reset by a success)
  AlertChannelStats stats;
  // Steady µs after which requests are abandoned; set once by close().
  std::atomic<std::int64_t> abort_at_us{std::numeric_limits<std::int64_t>::max()};

  // Worker thread only: logged on changes, not per retry.
  enum class Health { ok, retrying, refused } health = Health::ok;
  std::uint64_t shutdown_drops = 0;  // worker thread; close() reads it after the join
  std::thread thread;
};

void AlertDispatcher::Channel::enqueue(EventPhase phase, const Event& event,
                                       int escalated_after_s) {
  bool warn = false;
  {
    std::lock_guard lock(mutex);
    if (stopping) return;
    if (queue.size() >= std::max<std::size_t>(owner.settings_.queue_capacity, 1)) {
      queue.pop_front();  // the newest alert matters most
      ++stats.dropped;
      warn = !overflow_warned;
      overflow_warned = true;
    }
    queue.push_back(Job{phase, event, escalated_after_s});
  }
  cv.notify_one();
  if (warn) {
    spdlog::warn("alerts: channel '{}': {} messages waiting, dropping the oldest", config.name,
                 owner.settings_.queue_capacity);
  }
}

void AlertDispatcher::Channel::run() {
  try {
    HttpClient http;
    for (;;) {
      Job job;
      {
        std::unique_lock lock(mutex);
        cv.wait(lock, [&] { return stopping || !queue.empty(); });
        if (queue.empty()) return;
        job = std::move(queue.front());
        queue.pop_front();
        in_flight = true;
      }
      deliver(http, std::move(job));
      std::lock_guard lock(mutex);
      in_flight = false;
    }
  } catch (const std::exception& e) {
    // Nothing may cross the thread boundary; the channel stops and says why.
    spdlog::error("alerts: channel '{}' stopped: {}", config.name, mask(e.what()));
  }
}

void AlertDispatcher::Channel::deliver(HttpClient& http, Job job) {
  Message m;
  const auto name = owner.camera_names_.find(job.event.camera_id);
  m.link = event_link(owner.public_base_url_, job.event);
  m.text = alert_text(job.event, name != owner.camera_names_.end() ? name->second : "", m.link);
  if (job.escalated_after_s > 0) {
    m.text = "⚠️ CHƯA AI NHẬN sau " + std::to_string(job.escalated_after_s) +
             " giây — chuyển tiếp / not acknowledged, escalated\n" + m.text;
  }
  if (config.snapshot) m.jpeg = read_snapshot(job.event.snapshot_path);
  m.job = std::move(job);

  Backoff backoff(BackoffPolicy{owner.settings_.backoff_initial, owner.settings_.backoff_cap, 2.0,
                                owner.settings_.backoff_jitter});
  for (int n = 1;; ++n) {
    if (steady_now_us() >= abort_at_us.load()) {
      record_drop(nullptr, m.job.event, n - 1);
      return;
    }
    const Attempt a = attempt(http, m);
    if (a.ok) {
      record_success();
      return;
    }
    record_failure(a);
    if (a.permanent || a.aborted || n >= config.max_attempts) {
      if (a.aborted) {
        record_drop(nullptr, m.job.event, n);
      } else {
        record_drop(a.permanent ? "refused, retrying cannot help" : "out of attempts", m.job.event,
                    n);
      }
      return;
    }
    const auto asked =
        std::min<std::chrono::milliseconds>(a.retry_after, owner.settings_.retry_after_cap);
    const auto wait = std::max(backoff.next(), asked);
    std::unique_lock lock(mutex);
    if (cv.wait_for(lock, wait, [&] { return stopping; })) {
      lock.unlock();
      record_drop(nullptr, m.job.event, n);  // no retries after close()
      return;
    }
  }
}

Attempt AlertDispatcher::Channel::attempt(HttpClient& http, Message& m) {
  switch (config.kind) {
    case AlertChannelConfig::Kind::webhook:
      return send_webhook(http, m);
    case AlertChannelConfig::Kind::telegram:
      return send_telegram(http, m);
    case AlertChannelConfig::Kind::zalo:
      return send_zalo(http, m);
  }
  Attempt a = failed("unknown channel type");
  a.permanent = true;
  return a;
}

Attempt AlertDispatcher::Channel::send_webhook(HttpClient& http, const Message& m) {
  HttpRequest req;
  req.url = config.url;
  req.timeout = std::chrono::milliseconds(config.timeout_ms);
  // The event id lets a receiver recognise a retry of a message it already has.
  req.headers = {{"Content-Type", "application/json"}, {"X-Matthan-Event", m.job.event.id}};
  req.body = webhook_json(owner.node_id_, m.job.phase, m.job.event, m.text, m.link, m.jpeg);
  const auto r = http.post(req, abort_at_us);
  if (!r) return transport_failure(r.error());
  if (r->status >= 200 && r->status < 300) return succeeded();
  return status_failure(*r, host, "");
}

Attempt AlertDispatcher::Channel::send_telegram(HttpClient& http, const Message& m) {
  HttpRequest req;
  req.timeout = std::chrono::milliseconds(config.timeout_ms);
  const std::string bot = base + "/bot" + config.bot_token;  // the token lives only in the path
  if (m.jpeg) {
    req.url = bot + "/sendPhoto";
    req.form = {{"chat_id", config.chat_id, "", ""},
                {"caption", m.text, "", ""},
                {"photo", *m.jpeg, m.job.event.id + ".jpg", "image/jpeg"}};
  } else {
    req.url = bot + "/sendMessage";
    req.headers = {{"Content-Type", "application/json"}};
    req.body = nlohmann::json{{"chat_id", config.chat_id}, {"text", m.text}}.dump();
  }
  const auto r = http.post(req, abort_at_us);
  if (!r) return transport_failure(r.error());
  const auto j = parse_json(r->body);
  if (r->status == 200 && j.is_object() && j.value("ok", false)) return succeeded();
  std::string detail = string_at(j, "description");
  if (!detail.empty()) detail = "Telegram says \"" + detail + "\"";
  std::optional<int> retry_after;
  if (j.is_object() && j.contains("parameters") && j["parameters"].is_object()) {
    const auto& p = j["parameters"];
    if (p.contains("retry_after") && p["retry_after"].is_number_integer()) {
      retry_after = p["retry_after"].get<int>();
    }
  }
  if (r->status == 200) {
    // 200 without "ok": true is not the Bot API talking (a proxy page, a wrong url).
    return failed("unexpected answer from " + host + " (no \"ok\": true)");
  }
  return status_failure(*r, host, detail, retry_after);
}

Attempt AlertDispatcher::Channel::send_zalo(HttpClient& http, Message& m) {
  const auto timeout = std::chrono::milliseconds(config.timeout_ms);
  // Zalo answers most errors as HTTP 200 with a negative "error"; only the rate limit is
  // worth waiting for, the rest (bad token, user not following the OA, bad message) is not.
  auto zalo_failure = [&](const nlohmann::json& j, const char* step) {
    Attempt a;
    const int code = j.value("error", 0);
    a.permanent = code != kZaloRateLimited;
    a.error = std::string("Zalo refused the ") + step + ": error " + std::to_string(code);
    if (auto msg = string_at(j, "message"); !msg.empty()) a.error += " \"" + msg + "\"";
    return a;
  };
  const bool with_image = m.jpeg && m.jpeg->size() <= kZaloMaxImageBytes;
  if (with_image && m.zalo_attachment_id.empty()) {
    HttpRequest up;
    up.url = base + "/v2.0/oa/upload/image";
    up.timeout = timeout;
    up.headers = {{"access_token", config.access_token}};
    up.form = {{"file", *m.jpeg, m.job.event.id + ".jpg", "image/jpeg"}};
    const auto r = http.post(up, abort_at_us);
    if (!r) return transport_failure(r.error());
    const auto j = parse_json(r->body);
    if (r->status != 200) return status_failure(*r, host, "image upload");
    if (!j.is_object() || !j.contains("error") || !j["error"].is_number_integer()) {
      return failed("unexpected answer to the image upload from " + host);
    }
    if (j["error"].get<int>() != 0) return zalo_failure(j, "image upload");
    if (j.contains("data")) m.zalo_attachment_id = string_at(j["data"], "attachment_id");
    if (m.zalo_attachment_id.empty()) {
      return failed("Zalo answered the image upload without an attachment_id");
    }
  }
  nlohmann::json message{{"text", m.text}};
  if (with_image) {
    message["attachment"] = {
        {"type", "template"},
        {"payload",
         {{"template_type", "media"},
          {"elements", nlohmann::json::array({{{"media_type", "image"},
                                               {"attachment_id", m.zalo_attachment_id}}})}}}};
  }
  HttpRequest req;
  req.url = base + "/v3.0/oa/message/cs";
  req.timeout = timeout;
  req.headers = {{"Content-Type", "application/json"}, {"access_token", config.access_token}};
  req.body =
      nlohmann::json{{"recipient", {{"user_id", config.user_id}}}, {"message", message}}.dump();
  const auto r = http.post(req, abort_at_us);
  if (!r) return transport_failure(r.error());
  const auto j = parse_json(r->body);
  if (r->status != 200) return status_failure(*r, host, "message");
  if (!j.is_object() || !j.contains("error") || !j["error"].is_number_integer()) {
    return failed("unexpected answer to the message from " + host);
  }
  if (j["error"].get<int>() != 0) return zalo_failure(j, "message");
  return succeeded();
}

void AlertDispatcher::Channel::record_success() {
  static const SystemClock system;
  const Clock& clock = owner.settings_.clock != nullptr ? *owner.settings_.clock : system;
  {
    std::lock_guard lock(mutex);
    ++stats.sent;
    stats.last_success_us = clock.now_us();
    stats.last_error.clear();
    overflow_warned = false;
  }
  if (health != Health::ok) spdlog::info("alerts: channel '{}' delivers again", config.name);
  health = Health::ok;
}

void AlertDispatcher::Channel::record_failure(const Attempt& a) {
  const std::string error = mask(a.error);
  {
    std::lock_guard lock(mutex);
    ++stats.failed_attempts;
    stats.last_error = error;
  }
  if (a.aborted) return;  // our own shutdown, not the receiver's fault
  const Health now = a.permanent ? Health::refused : Health::retrying;
  if (now != health) {
    health = now;
    spdlog::warn("alerts: channel '{}' ({}) cannot deliver: {}{}", config.name,
                 to_string(config.kind), error,
                 a.permanent ? " (not retried)" : " (retrying with backoff)");
  } else {
    spdlog::debug("alerts: channel '{}': {}", config.name, error);
  }
}

void AlertDispatcher::Channel::record_drop(const char* why, const Event& e, int attempts) {
  {
    std::lock_guard lock(mutex);
    ++stats.dropped;
  }
  if (why == nullptr) {
    ++shutdown_drops;  // summed up once by close()
    return;
  }
  // One line per lost message (not per retry): someone may have to look at that camera.
  spdlog::info("alerts: channel '{}' gave up on event {} of camera {} after {} attempt(s): {}",
               config.name, e.id, e.camera_id, attempts, why);
}

AlertDispatcher::AlertDispatcher(std::vector<AlertChannelConfig> channels, std::string node_id,
                                 std::string public_base_url,
                                 std::map<std::string, std::string> camera_names,
                                 AlertSettings settings)
    : node_id_(std::move(node_id)),
      public_base_url_(std::move(public_base_url)),
      camera_names_(std::move(camera_names)),
      settings_(settings) {
  // Once per process, before any worker exists: curl_global_init is not safe to race.
  static std::once_flag curl_once;
  std::call_once(curl_once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
  channels_.reserve(channels.size());
  for (auto& c : channels) channels_.push_back(std::make_unique<Channel>(std::move(c), *this));
  for (auto& c : channels_) c->thread = std::thread([ch = c.get()] { ch->run(); });
  bool escalates = false;
  for (const auto& c : channels_) escalates = escalates || c->config.escalate_after_s > 0;
  if (escalates) esc_thread_ = std::thread([this] { run_escalations(); });
}

void AlertDispatcher::set_escalation_hooks(
    std::function<bool(const std::string&)> acknowledged,
    std::function<void(const Event&, const std::string&, const std::string&, int)> escalated) {
  std::lock_guard lock(esc_mutex_);
  acknowledged_ = std::move(acknowledged);
  escalated_ = std::move(escalated);
}

void AlertDispatcher::resume_escalation(const Event& event, std::int64_t alerted_us,
                                        std::int64_t now_us) {
  for (const auto& c : channels_) {
    const auto& cfg = c->config;
    if (cfg.escalate_after_s <= 0 || cfg.escalation_only || !channel_accepts(cfg, event)) continue;
    const std::int64_t left = alerted_us + cfg.escalate_after_s * 1'000'000LL - now_us;
    // Due long before this start: old news by now, not an alarm to send to the next contact.
    if (left < -15 * 60 * 1'000'000LL) continue;
    schedule_escalation(cfg, event, std::max<std::int64_t>(0, left));
  }
}

void AlertDispatcher::schedule_escalation(const AlertChannelConfig& from, const Event& event,
                                          std::int64_t delay_us) {
  std::lock_guard lock(esc_mutex_);
  if (esc_stop_ || !scheduled_.insert({event.id, from.name}).second) return;
  while (scheduled_.size() > 4096) scheduled_.erase(scheduled_.begin());
  pending_.emplace(steady_now_us() + delay_us,
                   Pending{event, from.name, from.escalate_to, from.escalate_after_s});
  esc_cv_.notify_one();
}

void AlertDispatcher::run_escalations() {
  std::unique_lock lock(esc_mutex_);
  while (!esc_stop_) {
    if (pending_.empty()) {
      esc_cv_.wait(lock);
      continue;
    }
    const auto due = pending_.begin()->first;
    const auto now = steady_now_us();
    if (due > now) {
      esc_cv_.wait_for(lock, std::chrono::microseconds(due - now));
      continue;
    }
    Pending p = std::move(pending_.begin()->second);
    pending_.erase(pending_.begin());
    auto acknowledged = acknowledged_;
    auto escalated = escalated_;
    lock.unlock();  // the database and the queues are not ours to hold a lock over
    const bool answered = acknowledged && acknowledged(p.event.id);
    if (!answered) {
      for (auto& c : channels_) {
        if (c->config.name == p.to) c->enqueue(EventPhase::start, p.event, p.after_s);
      }
      spdlog::warn("alerts: event {} not acknowledged within {} s on '{}': escalated to '{}'",
                   p.event.id, p.after_s, p.from, p.to);
      if (escalated) escalated(p.event, p.from, p.to, p.after_s);
    }
    lock.lock();
  }
}

AlertDispatcher::~AlertDispatcher() {
  close();
}

void AlertDispatcher::on_event(EventPhase phase, const Event& event) {
  if (closed_.load()) return;
  bool send = false;
  {
    std::lock_guard lock(labels_mutex_);
    if (phase == EventPhase::end) {
      labels_.erase(event.id);
      return;
    }
    if (phase == EventPhase::start) {
      send = true;
    } else {
      // Only the first "person" label on a motion event is news; later updates only grow the
      // peak. An update for an event we never saw start counts as unlabelled before.
      const auto it = labels_.find(event.id);
      const bool was_unlabelled = it == labels_.end() || it->second.empty();
      send = event.type == "motion" && event.label == "person" && was_unlabelled;
    }
    labels_[event.id] = event.label;
    while (labels_.size() > kMaxOpenEvents) labels_.erase(labels_.begin());
  }
  if (!send) return;
  for (auto& c : channels_) {
    if (c->config.escalation_only || !channel_accepts(c->config, event)) continue;
    c->enqueue(phase, event);
    if (c->config.escalate_after_s > 0)
      schedule_escalation(c->config, event, c->config.escalate_after_s * 1'000'000LL);
  }
}

std::vector<AlertChannelStats> AlertDispatcher::stats() const {
  std::vector<AlertChannelStats> out;
  out.reserve(channels_.size());
  for (const auto& c : channels_) {
    std::lock_guard lock(c->mutex);
    out.push_back(c->stats);
    out.back().queued = c->queue.size() + (c->in_flight ? 1 : 0);
  }
  return out;
}

void AlertDispatcher::close() {
  if (closed_.exchange(true)) return;
  {
    std::lock_guard lock(esc_mutex_);
    esc_stop_ = true;
  }
  esc_cv_.notify_all();
  if (esc_thread_.joinable()) esc_thread_.join();
  const std::int64_t deadline =
      steady_now_us() +
      std::chrono::duration_cast<std::chrono::microseconds>(settings_.close_grace).count();
  for (auto& c : channels_) {
    c->abort_at_us.store(deadline);
    {
      std::lock_guard lock(c->mutex);
      c->stopping = true;
    }
    c->cv.notify_all();
  }
  for (auto& c : channels_) {
    if (c->thread.joinable()) c->thread.join();
    if (c->shutdown_drops > 0) {
      spdlog::warn("alerts: channel '{}': {} message(s) not delivered before shutdown",
                   c->config.name, c->shutdown_drops);
    }
  }
}

}  // namespace matthan::alerts
