// Alert channels against local HTTP stubs standing in for a webhook receiver, the Telegram Bot
// API and the Zalo OA API: what arrives, what is filtered, retries, timeouts and isolation.
#include <gtest/gtest.h>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>
#include <nlohmann/json.hpp>

#include <unistd.h>
#include <chrono>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <thread>

#include "http_stub.hpp"
#include "matthan/alerts/alert_dispatcher.hpp"
#include "matthan/alerts/alert_message.hpp"

using namespace std::chrono_literals;
using matthan::AlertChannelConfig;
using matthan::Event;
using matthan::EventPhase;
using matthan::alerts::AlertChannelStats;
using matthan::alerts::AlertDispatcher;
using matthan::alerts::AlertSettings;
using matthan::test::HttpStub;
using matthan::test::StubRequest;
using matthan::test::StubResponse;

namespace {

// As the server does before its first thread: spdlog's registry is made here, not by whichever
// worker logs first (two at once race on it; TSan sees that).
const auto* const kLogger = spdlog::default_logger_raw();

// 2026-11-29T16:41:05.25Z is 23:41:05 in Asia/Ho_Chi_Minh (+07:00).
constexpr std::int64_t kStartUs = 1795970465250000;
constexpr const char* kBotToken = "123456:AAHsecretBOTtokenValue";
constexpr const char* kZaloToken = "zaloSECRETaccessTOKEN_0123";

// Short waits so the whole file runs in a few seconds.
AlertSettings fast() {
  AlertSettings s;
  s.backoff_initial = 20ms;
  s.backoff_cap = 100ms;
  s.close_grace = 300ms;
  return s;
}

// A small file with JPEG markers and a NUL inside: binary-safe all the way.
const std::string kJpeg = std::string("\xFF\xD8\xFF\xE0", 4) + "JFIF snapshot" +
                          std::string("\x00\x01\x02\xFE", 4) + std::string("\xFF\xD9", 2);

std::string write_snapshot(const std::string& name) {
  const auto path = std::filesystem::temp_directory_path() /
                    ("matthan-alerts-" + std::to_string(::getpid()) + "-" + name + ".jpg");
  std::ofstream(path, std::ios::binary) << kJpeg;
  return path.string();
}

Event make_event(const std::string& id, const std::string& camera = "cong-ap-1",
                 std::vector<std::string> zones = {"cong"}, bool armed = true) {
  Event e;
  e.id = id;
  e.camera_id = camera;
  e.commune = "xa-an-binh";
  e.hamlet = "ap-1";
  e.type = "motion";
  e.start_us = kStartUs;
  e.peak_score = 0.0296;
  e.peak_box = {0.7, 0.5, 0.103, 0.328};
  e.zones = std::move(zones);
  e.armed = armed;
  e.pre_capture_s = 5;
  e.post_capture_s = 5;
  return e;
}

AlertChannelConfig webhook(const std::string& name, const std::string& url) {
  AlertChannelConfig c;
  c.name = name;
  c.kind = AlertChannelConfig::Kind::webhook;
  c.url = url;
  return c;
}

std::string base64_decode(const std::string& in) {
  static const std::string chars =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  std::uint32_t acc = 0;
  int bits = 0;
  for (const char c : in) {
    if (c == '=') break;
    acc = (acc << 6) | static_cast<std::uint32_t>(chars.find(c));
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += static_cast<char>((acc >> bits) & 0xFF);
    }
  }
  return out;
}

// Routes spdlog's default logger into a string for the test's lifetime.
class LogCapture {
 public:
  LogCapture() {
    previous_ = spdlog::default_logger();
    auto sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(out_);
    auto logger = std::make_shared<spdlog::logger>("capture", sink);
    logger->set_level(spdlog::level::debug);
    spdlog::set_default_logger(logger);
  }
  ~LogCapture() { spdlog::set_default_logger(previous_); }
  // Read only when no other thread logs any more (after close()).
  std::string text() const { return out_.str(); }

 private:
  std::ostringstream out_;
  std::shared_ptr<spdlog::logger> previous_;
};

std::size_t count_of(const std::string& text, const std::string& what) {
  std::size_t n = 0;
  for (auto p = text.find(what); p != std::string::npos; p = text.find(what, p + 1)) ++n;
  return n;
}

template <typename Pred>
bool eventually(Pred pred, std::chrono::milliseconds timeout = 3000ms) {
  const auto until = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < until) {
    if (pred()) return true;
    std::this_thread::sleep_for(5ms);
  }
  return pred();
}

std::string stats_text(const std::vector<AlertChannelStats>& stats) {
  std::string s;
  for (const auto& c : stats) s += c.name + " " + c.kind + " " + c.last_error + "\n";
  return s;
}

}  // namespace

TEST(AlertMessage, VietnameseTextSaysWhatWhereAndWhen) {
  ::setenv("TZ", "Asia/Ho_Chi_Minh", 1);
  ::tzset();
  Event e = make_event("01M8JV4RWZE4WHC0D7DA4EAB01");
  e.label = "person";
  EXPECT_EQ(
      matthan::alerts::alert_text(e, "Cổng ấp 1", ""),
      "⚠️ Phát hiện người — Cổng ấp 1 (ap-1), vùng cong, 23:41:05 29/11/2026");

  Event whole = make_event("01M8JV4RWZE4WHC0D7DA4EAB02", "cho-ap-2", {"all"});
  EXPECT_EQ(matthan::alerts::alert_text(whole, "", ""),
            "⚠️ Chuyển động — cho-ap-2 (ap-1), 23:41:05 29/11/2026");

  Event tamper = make_event("01M8JV4RWZE4WHC0D7DA4EAB03", "cong-ap-1", {});
  tamper.type = "tamper";
  tamper.label = "covered";
  EXPECT_EQ(matthan::alerts::event_words(tamper), "Camera bị che/mất nét");
  tamper.type = "camera_offline";
  tamper.label = "offline";
  EXPECT_EQ(matthan::alerts::event_words(tamper), "Camera mất kết nối");

  e.snapshot_path = "/var/snap.jpg";
  const std::string link = matthan::alerts::event_link("https://camera.xa-an-binh.vn/", e);
  EXPECT_EQ(link, "https://camera.xa-an-binh.vn/#/event/01M8JV4RWZE4WHC0D7DA4EAB01");
  EXPECT_TRUE(matthan::alerts::alert_text(e, "Cổng ấp 1", link).ends_with("2026\n" + link));
  EXPECT_EQ(matthan::alerts::event_link("", e), "");
}

TEST(AlertMessage, FiltersMatchCameraZoneTypeOrLabelAndArmedHours) {
  using matthan::alerts::channel_accepts;
  AlertChannelConfig c = webhook("w", "http://127.0.0.1:1");
  Event e = make_event("01M8JV4RWZE4WHC0D7DA4EAB04");
  EXPECT_TRUE(channel_accepts(c, e));
  e.armed = false;
  EXPECT_FALSE(channel_accepts(c, e)) << "armed_only is on by default";
  c.armed_only = false;
  EXPECT_TRUE(channel_accepts(c, e));

  c.cameras = {"cho-ap-2"};
  EXPECT_FALSE(channel_accepts(c, e));
  c.cameras = {"cho-ap-2", "cong-ap-1"};
  EXPECT_TRUE(channel_accepts(c, e));

  c.zones = {"san"};
  EXPECT_FALSE(channel_accepts(c, e));
  e.zones = {"cong", "san"};
  EXPECT_TRUE(channel_accepts(c, e)) << "any of the event's zones";
  e.zones = {};
  EXPECT_FALSE(channel_accepts(c, e)) << "an event without zones does not pass a zone filter";

  c.zones = {};
  c.types = {"person"};
  EXPECT_FALSE(channel_accepts(c, e));
  e.label = "person";
  EXPECT_TRUE(channel_accepts(c, e)) << "types match the label too";
  c.types = {"motion"};
  EXPECT_TRUE(channel_accepts(c, e)) << "types match the type";
}

TEST(AlertDispatcher, WebhookGetsTheEventJsonWithTheSnapshot) {
  HttpStub hook;
  AlertChannelConfig c = webhook("hook", hook.url() + "/matthan/events");
  AlertDispatcher alerts({c}, "xa-an-binh-1", "https://camera.xa-an-binh.vn",
                         {{"cong-ap-1", "Cổng ấp 1"}}, fast());
  Event e = make_event("01M8JV4RWZE4WHC0D7DA4EAB10");
  e.snapshot_path = write_snapshot("webhook");

  const auto t0 = std::chrono::steady_clock::now();
  alerts.on_event(EventPhase::start, e);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 50ms);
  ASSERT_TRUE(hook.wait_for_requests(1, 3s));
  e.peak_score = 0.05;
  alerts.on_event(EventPhase::update, e);  // the peak grew: not news
  e.end_us = kStartUs + 4'000'000;
  alerts.on_event(EventPhase::end, e);  // never sent

  const StubRequest r = hook.requests().at(0);
  EXPECT_EQ(r.method, "POST");
  EXPECT_EQ(r.target, "/matthan/events");
  EXPECT_EQ(r.header("content-type"), "application/json");
  EXPECT_EQ(r.header("x-matthan-event"), e.id);
  const auto j = nlohmann::json::parse(r.body);
  EXPECT_EQ(j["schema"], 1);
  EXPECT_EQ(j["node_id"], "xa-an-binh-1");
  EXPECT_EQ(j["phase"], "start");
  const auto& ev = j["event"];
  EXPECT_EQ(ev["id"], e.id);
  EXPECT_EQ(ev["camera"], "cong-ap-1");
  EXPECT_EQ(ev["commune"], "xa-an-binh");
  EXPECT_EQ(ev["hamlet"], "ap-1");
  EXPECT_EQ(ev["type"], "motion");
  EXPECT_EQ(ev["label"], "");
  EXPECT_EQ(ev["zones"], nlohmann::json::array({"cong"}));
  EXPECT_EQ(ev["armed"], true);
  EXPECT_EQ(ev["start"], "2026-11-29T16:41:05.250000Z");
  EXPECT_EQ(ev["start_us"], kStartUs);
  EXPECT_TRUE(ev["end"].is_null());
  EXPECT_DOUBLE_EQ(ev["peak_score"].get<double>(), 0.0296);
  EXPECT_DOUBLE_EQ(ev["peak_box"]["w"].get<double>(), 0.103);
  EXPECT_EQ(ev["snapshot"], true);
  EXPECT_EQ(base64_decode(j["snapshot_jpeg_base64"].get<std::string>()), kJpeg);
  EXPECT_EQ(j["link"], "https://camera.xa-an-binh.vn/#/event/" + e.id);
  EXPECT_NE(j["text"].get<std::string>().find("Chuyển động — Cổng ấp 1"), std::string::npos);

  std::this_thread::sleep_for(100ms);
  alerts.close();
  EXPECT_EQ(hook.request_count(), 1u) << "no message for the update or the end";
  const auto s = alerts.stats().at(0);
  EXPECT_EQ(s.name, "hook");
  EXPECT_EQ(s.kind, "webhook");
  EXPECT_EQ(s.sent, 1u);
  EXPECT_EQ(s.failed_attempts, 0u);
  EXPECT_EQ(s.dropped, 0u);
  EXPECT_EQ(s.queued, 0u);
  EXPECT_GT(s.last_success_us, 0);
  std::filesystem::remove(e.snapshot_path);
}

TEST(AlertDispatcher, FiltersAndThePersonUpdateDecideWhatIsSent) {
  HttpStub hook;
  AlertChannelConfig all = webhook("all", hook.url() + "/all");
  AlertChannelConfig any_time = webhook("any-time", hook.url() + "/any-time");
  any_time.armed_only = false;
  AlertChannelConfig gate_cam = webhook("gate-cam", hook.url() + "/gate-cam");
  gate_cam.cameras = {"cong-ap-1"};
  AlertChannelConfig gate_zone = webhook("gate-zone", hook.url() + "/gate-zone");
  gate_zone.zones = {"cong"};
  AlertChannelConfig people = webhook("people", hook.url() + "/people");
  people.types = {"person"};
  AlertChannelConfig tamper = webhook("tamper", hook.url() + "/tamper");
  tamper.types = {"tamper"};
  AlertDispatcher alerts({all, any_time, gate_cam, gate_zone, people, tamper}, "node-1", "", {},
                         fast());

  // Outside armed hours: only the channel that does not care about armed hours.
  alerts.on_event(EventPhase::start,
                  make_event("01M8JV4RWZE4WHC0D7DA4EABA1", "cong-ap-1", {"cong"}, false));
  // Another camera, another zone.
  alerts.on_event(EventPhase::start, make_event("01M8JV4RWZE4WHC0D7DA4EABB1", "cho-ap-2", {"san"}));
  // At the gate; later the people classifier labels it.
  Event c = make_event("01M8JV4RWZE4WHC0D7DA4EABC1");
  alerts.on_event(EventPhase::start, c);
  c.peak_score = 0.1;
  alerts.on_event(EventPhase::update, c);  // peak only
  c.label = "person";
  alerts.on_event(EventPhase::update, c);  // the person label: sent once more
  c.peak_score = 0.2;
  alerts.on_event(EventPhase::update, c);  // still a person: not again
  c.end_us = kStartUs + 9'000'000;
  alerts.on_event(EventPhase::end, c);
  // A covered lens has no zones.
  Event d = make_event("01M8JV4RWZE4WHC0D7DA4EABD1", "cong-ap-1", {});
  d.type = "tamper";
  d.label = "covered";
  alerts.on_event(EventPhase::start, d);

  // all: B, C, C-person, D; any-time: A, B, C, C-person, D; gate-cam: C, C-person, D;
  // gate-zone: C, C-person; people: C-person; tamper: D.
  const std::map<std::string, int> expected{{"/all", 4},       {"/any-time", 5}, {"/gate-cam", 3},
                                            {"/gate-zone", 2}, {"/people", 1},   {"/tamper", 1}};
  ASSERT_TRUE(hook.wait_for_requests(16, 3s)) << hook.request_count();
  std::this_thread::sleep_for(150ms);  // nothing more may arrive
  alerts.close();
  std::map<std::string, int> got;
  for (const auto& r : hook.requests()) {
    ++got[r.target];
    if (r.target == "/people") {
      const auto j = nlohmann::json::parse(r.body);
      EXPECT_EQ(j["phase"], "update");
      EXPECT_EQ(j["event"]["label"], "person");
      EXPECT_EQ(j["event"]["id"], c.id);
      EXPECT_NE(j["text"].get<std::string>().find("Phát hiện người"), std::string::npos);
    }
    if (r.target == "/gate-zone") {
      EXPECT_EQ(nlohmann::json::parse(r.body)["event"]["id"], c.id);
    }
  }
  EXPECT_EQ(got, expected);
}

TEST(AlertDispatcher, TelegramGetsPhotoWithCaptionOrMessageAndNeverLeaksTheToken) {
  LogCapture log;
  HttpStub api;
  api.set_default({200, R"({"ok":true,"result":{"message_id":7}})"});
  HttpStub dead;
  const std::string dead_url = dead.url();
  dead.stop();

  AlertChannelConfig tg;
  tg.name = "ban-cong-an";
  tg.kind = AlertChannelConfig::Kind::telegram;
  tg.url = api.url();
  tg.bot_token = kBotToken;
  tg.chat_id = "-1001234567890";
  AlertChannelConfig tg_down = tg;
  tg_down.name = "tg-down";
  tg_down.url = dead_url;
  tg_down.max_attempts = 2;
  AlertDispatcher alerts({tg, tg_down}, "node-1", "", {{"cong-ap-1", "Cổng ấp 1"}}, fast());

  Event e = make_event("01M8JV4RWZE4WHC0D7DA4EABE1");
  e.label = "person";
  e.snapshot_path = write_snapshot("telegram");
  alerts.on_event(EventPhase::start, e);
  ASSERT_TRUE(api.wait_for_requests(1, 3s));
  Event plain = make_event("01M8JV4RWZE4WHC0D7DA4EABE2");
  alerts.on_event(EventPhase::start, plain);
  ASSERT_TRUE(api.wait_for_requests(2, 3s));

  const auto reqs = api.requests();
  const StubRequest& photo = reqs.at(0);
  EXPECT_EQ(photo.method, "POST");
  EXPECT_EQ(photo.target, std::string("/bot") + kBotToken + "/sendPhoto");
  EXPECT_TRUE(photo.header("content-type").starts_with("multipart/form-data; boundary="));
  EXPECT_NE(photo.body.find("name=\"chat_id\"\r\n\r\n-1001234567890\r\n"), std::string::npos);
  EXPECT_NE(
      photo.body.find(
          "name=\"caption\"\r\n\r\n⚠️ Phát hiện người — Cổng ấp 1 (ap-1), vùng "
          "cong"),
      std::string::npos);
  EXPECT_NE(
      photo.body.find("name=\"photo\"; filename=\"" + e.id + ".jpg\"\r\nContent-Type: image/jpeg"),
      std::string::npos);
  EXPECT_NE(photo.body.find(kJpeg), std::string::npos) << "the JPEG bytes, unchanged";

  const StubRequest& msg = reqs.at(1);
  EXPECT_EQ(msg.target, std::string("/bot") + kBotToken + "/sendMessage");
  EXPECT_EQ(msg.header("content-type"), "application/json");
  const auto j = nlohmann::json::parse(msg.body);
  EXPECT_EQ(j["chat_id"], "-1001234567890");
  EXPECT_TRUE(
      j["text"].get<std::string>().starts_with("⚠️ Chuyển động — Cổng ấp 1"));

  for (const auto& r : reqs) {
    EXPECT_EQ(r.body.find(kBotToken), std::string::npos) << "the token is only in the path";
    for (const auto& [k, v] : r.headers) EXPECT_EQ(v.find(kBotToken), std::string::npos) << k;
  }

  // The Bot API refuses: not retried, said in plain words without the token.
  api.script({{401, R"({"ok":false,"error_code":401,"description":"Unauthorized"})"}});
  alerts.on_event(EventPhase::start, make_event("01M8JV4RWZE4WHC0D7DA4EABE3"));
  ASSERT_TRUE(api.wait_for_requests(3, 3s));
  ASSERT_TRUE(eventually([&] { return alerts.stats().at(1).dropped == 3; }))
      << "the channel that cannot connect gives up after 2 attempts per message";
  std::this_thread::sleep_for(100ms);
  alerts.close();
  EXPECT_EQ(api.request_count(), 3u) << "a 401 is not retried";

  const auto stats = alerts.stats();
  EXPECT_EQ(stats[0].sent, 2u);
  EXPECT_EQ(stats[0].dropped, 1u);
  EXPECT_NE(stats[0].last_error.find("HTTP 401"), std::string::npos) << stats[0].last_error;
  EXPECT_NE(stats[0].last_error.find("Unauthorized"), std::string::npos) << stats[0].last_error;
  EXPECT_NE(stats[1].last_error.find("cannot connect to 127.0.0.1:"), std::string::npos)
      << stats[1].last_error;
  EXPECT_EQ(stats[1].failed_attempts, 6u);
  EXPECT_EQ(stats_text(stats).find(kBotToken), std::string::npos) << stats_text(stats);
  EXPECT_EQ(stats_text(stats).find("AAHsecret"), std::string::npos);
  const std::string logs = log.text();
  EXPECT_NE(logs.find("cannot deliver"), std::string::npos) << logs;
  EXPECT_EQ(logs.find("AAHsecret"), std::string::npos) << logs;
  std::filesystem::remove(e.snapshot_path);
}

TEST(AlertDispatcher, TelegramRetryAfterIsHonoured) {
  HttpStub api;
  api.script(
      {{429, R"({"ok":false,"error_code":429,"description":"Too Many Requests: retry after 1",)"
             R"("parameters":{"retry_after":1}})"}});
  api.set_default({200, R"({"ok":true,"result":{}})"});
  AlertChannelConfig tg;
  tg.name = "tg";
  tg.kind = AlertChannelConfig::Kind::telegram;
  tg.url = api.url();
  tg.bot_token = kBotToken;
  tg.chat_id = "42";
  AlertDispatcher alerts({tg}, "node-1", "", {}, fast());
  alerts.on_event(EventPhase::start, make_event("01M8JV4RWZE4WHC0D7DA4EABF1"));
  ASSERT_TRUE(api.wait_for_requests(2, 3s));
  const auto reqs = api.requests();
  EXPECT_GE(reqs[1].at - reqs[0].at, 950ms) << "retry_after 1 s, not the 20 ms backoff";
  ASSERT_TRUE(eventually([&] { return alerts.stats().at(0).sent == 1; }));
  EXPECT_EQ(alerts.stats().at(0).failed_attempts, 1u);
}

TEST(AlertDispatcher, ZaloUploadsTheImageThenSendsItsAttachmentId) {
  LogCapture log;
  HttpStub api;
  api.script({
      {200, R"({"error":0,"message":"Success","data":{"attachment_id":"att-42"}})"},
      {200, R"({"error":0,"message":"Success","data":{"message_id":"m1","user_id":"u1"}})"},
      {200, R"({"error":0,"message":"Success","data":{"message_id":"m2","user_id":"u1"}})"},
      {200, R"({"error":-216,"message":"Access token is invalid"})"},
  });
  AlertChannelConfig z;
  z.name = "zalo-oa";
  z.kind = AlertChannelConfig::Kind::zalo;
  z.url = api.url();
  z.access_token = kZaloToken;
  z.user_id = "2468013579";
  AlertDispatcher alerts({z}, "node-1", "", {{"cong-ap-1", "Cổng ấp 1"}}, fast());

  Event e = make_event("01M8JV4RWZE4WHC0D7DA4EABG1");
  e.snapshot_path = write_snapshot("zalo");
  alerts.on_event(EventPhase::start, e);
  ASSERT_TRUE(api.wait_for_requests(2, 3s));
  alerts.on_event(EventPhase::start, make_event("01M8JV4RWZE4WHC0D7DA4EABG2"));
  ASSERT_TRUE(api.wait_for_requests(3, 3s));
  alerts.on_event(EventPhase::start, make_event("01M8JV4RWZE4WHC0D7DA4EABG3"));
  ASSERT_TRUE(api.wait_for_requests(4, 3s));
  ASSERT_TRUE(eventually([&] { return alerts.stats().at(0).dropped == 1; }));
  std::this_thread::sleep_for(100ms);
  alerts.close();

  const auto reqs = api.requests();
  ASSERT_EQ(reqs.size(), 4u) << "error -216 is not retried";
  const StubRequest& up = reqs[0];
  EXPECT_EQ(up.method, "POST");
  EXPECT_EQ(up.target, "/v2.0/oa/upload/image");
  EXPECT_EQ(up.header("access_token"), kZaloToken);
  EXPECT_TRUE(up.header("content-type").starts_with("multipart/form-data"));
  EXPECT_NE(up.body.find("name=\"file\"; filename=\"" + e.id + ".jpg\""), std::string::npos);
  EXPECT_NE(up.body.find(kJpeg), std::string::npos);

  const StubRequest& send = reqs[1];
  EXPECT_EQ(send.target, "/v3.0/oa/message/cs");
  EXPECT_EQ(send.header("access_token"), kZaloToken);
  EXPECT_EQ(send.header("content-type"), "application/json");
  const auto j = nlohmann::json::parse(send.body);
  EXPECT_EQ(j["recipient"]["user_id"], "2468013579");
  EXPECT_TRUE(j["message"]["text"].get<std::string>().starts_with(
      "⚠️ Chuyển động — Cổng ấp 1"));
  EXPECT_EQ(j["message"]["attachment"]["type"], "template");
  EXPECT_EQ(j["message"]["attachment"]["payload"]["template_type"], "media");
  const auto& el = j["message"]["attachment"]["payload"]["elements"].at(0);
  EXPECT_EQ(el["media_type"], "image");
  EXPECT_EQ(el["attachment_id"], "att-42") << "the id from the upload's answer";

  const auto text_only = nlohmann::json::parse(reqs[2].body);
  EXPECT_EQ(reqs[2].target, "/v3.0/oa/message/cs");
  EXPECT_FALSE(text_only["message"].contains("attachment"));
  EXPECT_FALSE(text_only["message"]["text"].get<std::string>().empty());

  const auto s = alerts.stats().at(0);
  EXPECT_EQ(s.sent, 2u);
  EXPECT_EQ(s.dropped, 1u);
  EXPECT_EQ(s.failed_attempts, 1u);
  EXPECT_NE(s.last_error.find("-216"), std::string::npos) << s.last_error;
  EXPECT_EQ(s.last_error.find(kZaloToken), std::string::npos);
  EXPECT_EQ(log.text().find(kZaloToken), std::string::npos);
  std::filesystem::remove(e.snapshot_path);
}

TEST(AlertDispatcher, ReceiverThatIsDownGetsTheMessageWhenItComesBack) {
  LogCapture log;
  HttpStub hook;
  hook.stop();  // connection refused from now on
  AlertChannelConfig c = webhook("hook", hook.url() + "/in");
  c.max_attempts = 100;
  AlertDispatcher alerts({c}, "node-1", "", {}, fast());
  const auto t0 = std::chrono::steady_clock::now();
  alerts.on_event(EventPhase::start, make_event("01M8JV4RWZE4WHC0D7DA4EABH1"));
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 50ms);
  ASSERT_TRUE(eventually([&] { return alerts.stats().at(0).failed_attempts >= 3; }));
  auto s = alerts.stats().at(0);
  EXPECT_EQ(s.sent, 0u);
  EXPECT_EQ(s.queued, 1u);
  EXPECT_NE(s.last_error.find("cannot connect to 127.0.0.1:" + std::to_string(hook.port())),
            std::string::npos)
      << s.last_error;

  hook.start();
  ASSERT_TRUE(hook.wait_for_requests(1, 3s));
  ASSERT_TRUE(eventually([&] { return alerts.stats().at(0).sent == 1; }));
  alerts.close();
  s = alerts.stats().at(0);
  EXPECT_EQ(s.dropped, 0u);
  EXPECT_EQ(s.queued, 0u);
  EXPECT_TRUE(s.last_error.empty()) << "a success clears the error";
  EXPECT_EQ(nlohmann::json::parse(hook.requests().at(0).body)["event"]["id"],
            "01M8JV4RWZE4WHC0D7DA4EABH1");
  const std::string logs = log.text();
  EXPECT_EQ(count_of(logs, "cannot deliver"), 1u) << "one warning, not one per retry:\n" << logs;
  EXPECT_EQ(count_of(logs, "delivers again"), 1u) << logs;
}

TEST(AlertDispatcher, ServerErrorsAreRetriedClientErrorsAreNot) {
  HttpStub flaky;
  flaky.script({{503, "busy"}, {408, "slow"}, {429, "later"}});
  HttpStub strict;
  strict.set_default({400, R"({"error":"bad request"})"});
  AlertChannelConfig a = webhook("flaky", flaky.url());
  AlertChannelConfig b = webhook("strict", strict.url());
  AlertDispatcher alerts({a, b}, "node-1", "", {}, fast());
  alerts.on_event(EventPhase::start, make_event("01M8JV4RWZE4WHC0D7DA4EABJ1"));
  ASSERT_TRUE(flaky.wait_for_requests(4, 3s));
  ASSERT_TRUE(eventually([&] { return alerts.stats().at(0).sent == 1; }));
  ASSERT_TRUE(strict.wait_for_requests(1, 3s));
  std::this_thread::sleep_for(200ms);  // several backoff periods
  alerts.close();
  EXPECT_EQ(strict.request_count(), 1u) << "a 400 is permanent";
  const auto s = alerts.stats();
  EXPECT_EQ(s[0].failed_attempts, 3u);
  EXPECT_EQ(s[0].dropped, 0u);
  EXPECT_EQ(s[1].failed_attempts, 1u);
  EXPECT_EQ(s[1].dropped, 1u);
  EXPECT_NE(s[1].last_error.find("HTTP 400"), std::string::npos) << s[1].last_error;
}

TEST(AlertDispatcher, HangingReceiverTimesOutAndNeverBlocksTheCaller) {
  HttpStub hang;
  hang.set_default({.hang = true});
  AlertChannelConfig c = webhook("hang", hang.url());
  c.timeout_ms = 300;
  c.max_attempts = 2;
  AlertSettings settings = fast();
  settings.queue_capacity = 4;
  AlertDispatcher alerts({c}, "node-1", "", {}, settings);

  auto slowest = std::chrono::steady_clock::duration::zero();
  for (int i = 0; i < 10; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    alerts.on_event(EventPhase::start, make_event("01M8JV4RWZE4WHC0D7DA4EABK" + std::to_string(i)));
    slowest = std::max(slowest, std::chrono::steady_clock::now() - t0);
  }
  EXPECT_LT(slowest, 50ms) << "on_event only queues";
  auto s = alerts.stats().at(0);
  EXPECT_GE(s.dropped, 5u) << "4 wait, 1 is being sent, the oldest of the rest are dropped";
  EXPECT_LE(s.queued, 5u);

  ASSERT_TRUE(hang.wait_for_requests(1, 1s));
  ASSERT_TRUE(eventually([&] { return alerts.stats().at(0).failed_attempts >= 1; }, 2s));
  const auto timed_out = std::chrono::steady_clock::now() - hang.requests().at(0).at;
  EXPECT_GE(timed_out, 250ms) << "timeout_ms is respected";
  s = alerts.stats().at(0);
  EXPECT_NE(s.last_error.find("no answer from 127.0.0.1:"), std::string::npos) << s.last_error;
  EXPECT_NE(s.last_error.find("within 300 ms"), std::string::npos) << s.last_error;

  const auto t0 = std::chrono::steady_clock::now();
  alerts.close();
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 1s) << "close gives in-flight sends 300 ms";
  s = alerts.stats().at(0);
  EXPECT_EQ(s.sent, 0u);
  EXPECT_EQ(s.dropped, 10u) << "every message is accounted for";
  EXPECT_EQ(s.queued, 0u);
}

TEST(AlertDispatcher, SlowChannelDoesNotDelayAnother) {
  HttpStub slow;
  slow.set_default({.hang = true});
  HttpStub quick;
  AlertChannelConfig a = webhook("slow", slow.url());
  a.timeout_ms = 5000;
  AlertChannelConfig b = webhook("quick", quick.url());
  AlertDispatcher alerts({a, b}, "node-1", "", {}, fast());
  const auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < 3; ++i) {
    alerts.on_event(EventPhase::start, make_event("01M8JV4RWZE4WHC0D7DA4EABL" + std::to_string(i)));
  }
  ASSERT_TRUE(quick.wait_for_requests(3, 2s));
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 1s)
      << "the quick channel does not wait for the one that hangs";
  EXPECT_EQ(slow.request_count(), 1u);
  EXPECT_TRUE(eventually([&] { return alerts.stats().at(1).sent == 3; }));
}
