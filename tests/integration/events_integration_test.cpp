// Events end to end over real RTSP: a person crossing raises one motion event per crossing,
// stored in SQLite with a snapshot and published on ZeroMQ; a light switch and an IR switch
// raise none; a camera that vanishes raises camera_offline until it returns.
#include <gtest/gtest.h>
#include <signal.h>
#include <sqlite3.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <set>
#include <thread>
#include <zmq.hpp>

#include "child_process.hpp"
#include "http_stub.hpp"

#ifndef MATTHAN_SOURCE_DIR
#error "MATTHAN_SOURCE_DIR must be defined"
#endif

namespace matthan::test {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

struct Message {
  std::string topic;
  json body;
};

class EventsIntegration : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = temp_dir("matthan-ev");
    webhook_ = std::make_unique<HttpStub>();
    camsim_ = std::make_unique<ChildProcess>(
        std::vector<std::string>{
            binary_path("matthan-camsim"), "--scenario",
            std::string(MATTHAN_SOURCE_DIR) + "/tests/scenarios/events_smoke.yaml", "--truth",
            dir_ + "/truth.jsonl", "--cache", dir_ + "/../matthan-it-cache"},
        dir_ + "/camsim.log");
    auto line = camsim_->wait_for_line("CAMSIM ", 180s);
    ASSERT_TRUE(line.has_value()) << read_file(dir_ + "/camsim.log");
    const std::string base = line->substr(7);
    std::ofstream cfg(dir_ + "/matthan.yaml");
    cfg << "node_id: ev-node\nserver: {listen: '127.0.0.1:0', data_dir: '" << dir_ << "/var'}\n"
        << "analytics: {zmq_endpoint: 'tcp://127.0.0.1:*', gap_s: 2}\n"
        << "defaults: {stall_timeout_ms: 2000}\ncameras:\n";
    for (const char* id : {"walk", "lights", "tamper"}) {
      // The simulator's frame-index strip ticks like a camera's OSD clock: mask it.
      cfg << "  - {id: " << id << ", commune: xa-test, hamlet: ap-1, main_url: '" << base << "/"
          << id << "/main', sub_url: '" << base << "/" << id
          << "/sub', masks: [[[0, 0], [0.45, 0], [0.45, 0.07], [0, 0.07]]]";
      // The road in front of the walk camera is its detection zone.
      if (std::string(id) == "walk")
        cfg << ", zones: [{name: duong, polygon: [[0, 0.5], [1, 0.5], [1, 1], [0, 1]]}]";
      cfg << "}\n";
    }
    // Unacknowledged alerts go on to the officer on duty after 3 s (the test acknowledges the
    // tamper alerts at once, not the person ones).
    cfg << "alerts:\n  - {name: hook, type: webhook, url: '" << webhook_->url()
        << "/matthan', types: [person, tamper], timeout_ms: 2000, escalate_after_s: 3,"
        << " escalate_to: officer}\n  - {name: officer, type: webhook, url: '" << webhook_->url()
        << "/officer', escalation_only: true, timeout_ms: 2000}\n";
    cfg.close();
    server_ = std::make_unique<ChildProcess>(
        std::vector<std::string>{binary_path("matthan"), "run", "--config", dir_ + "/matthan.yaml"},
        dir_ + "/server.stderr");
    auto events = server_->wait_for_line("EVENTS ", 20s);
    ASSERT_TRUE(events.has_value()) << read_file(dir_ + "/server.stderr");
    endpoint_ = events->substr(7);
    sub_ = std::make_unique<zmq::socket_t>(ctx_, zmq::socket_type::sub);
    sub_->set(zmq::sockopt::subscribe, "");
    sub_->set(zmq::sockopt::rcvtimeo, 200);
    sub_->connect(endpoint_);
    auto listening = server_->wait_for_line("LISTENING ", 20s);
    ASSERT_TRUE(listening.has_value()) << read_file(dir_ + "/server.stderr");
    port_ = std::atoi(listening->substr(listening->rfind(':') + 1).c_str());
    ASSERT_EQ(login_admin(port_, dir_ + "/matthan.yaml"), "");
    ready_us_ = std::chrono::duration_cast<std::chrono::microseconds>(
                    std::chrono::system_clock::now().time_since_epoch())
                    .count();
  }

  static void TearDownTestSuite() {
    server_.reset();
    camsim_.reset();
    webhook_.reset();
    sub_.reset();
    std::filesystem::remove_all(dir_);
  }

  // Collects ZeroMQ messages for a while.
  static void collect(std::chrono::milliseconds how_long) {
    const auto until = std::chrono::steady_clock::now() + how_long;
    while (std::chrono::steady_clock::now() < until) {
      zmq::message_t topic, body;
      if (!sub_->recv(topic)) continue;
      if (!sub_->recv(body)) continue;
      messages_.push_back({topic.to_string(), json::parse(body.to_string())});
      // A guard acknowledges each tamper alert as it comes (through the API, as the page does).
      const auto& m = messages_.back();
      if (m.topic.starts_with("event.") && m.topic.ends_with(".tamper") &&
          m.body.value("phase", "") == "start") {
        const auto id = m.body["event"]["id"].get<std::string>();
        const auto acked = http_post(port_, "/api/events/" + id + "/ack", "{}");
        if (acked.status != 200) ack_failures_.push_back(id + ": " + acked.body);
        acked_.insert(id);
      }
    }
  }

  static std::vector<json> stored_events(const std::string& camera, const std::string& type) {
    sqlite3* db = nullptr;
    sqlite3_open_v2((dir_ + "/var/matthan.db").c_str(), &db, SQLITE_OPEN_READONLY, nullptr);
    sqlite3_busy_timeout(db, 2000);
    sqlite3_stmt* st = nullptr;
    sqlite3_prepare_v2(
        db,
        "SELECT id, start_us, end_us, snapshot_path, node_id, label FROM event WHERE camera_id = ?"
        " AND type = ? ORDER BY start_us",
        -1, &st, nullptr);
    sqlite3_bind_text(st, 1, camera.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 2, type.c_str(), -1, SQLITE_TRANSIENT);
    std::vector<json> out;
    while (sqlite3_step(st) == SQLITE_ROW) {
      json j{
          {"id", reinterpret_cast<const char*>(sqlite3_column_text(st, 0))},
          {"start_us", sqlite3_column_int64(st, 1)},
          {"end_us",
           sqlite3_column_type(st, 2) == SQLITE_NULL ? json() : json(sqlite3_column_int64(st, 2))},
          {"snapshot", reinterpret_cast<const char*>(sqlite3_column_text(st, 3))},
          {"node_id", reinterpret_cast<const char*>(sqlite3_column_text(st, 4))},
          {"label", reinterpret_cast<const char*>(sqlite3_column_text(st, 5))}};
      out.push_back(j);
    }
    sqlite3_finalize(st);
    sqlite3_close(db);
    return out;
  }

  static inline std::string dir_;
  static inline std::string endpoint_;
  static inline int port_ = 0;
  static inline std::int64_t ready_us_ = 0;
  static inline zmq::context_t ctx_{1};
  static inline std::unique_ptr<zmq::socket_t> sub_;
  static inline std::unique_ptr<ChildProcess> camsim_;
  static inline std::unique_ptr<ChildProcess> server_;
  static inline std::unique_ptr<HttpStub> webhook_;
  static inline std::vector<Message> messages_;
  static inline std::set<std::string> acked_;
  static inline std::vector<std::string> ack_failures_;
};

TEST_F(EventsIntegration, CrossingsBecomeOneEventEachAndSwitchesNone) {
  // Two full 20 s loops after warming up: two crossings, two light and two IR switches.
  collect(50s);
  // Ground truth: when each loop of the walk camera started, so crossings are [start+3, start+10).
  std::vector<std::int64_t> loop_starts;
  std::ifstream truth(dir_ + "/truth.jsonl");
  for (std::string line; std::getline(truth, line);) {
    const auto j = json::parse(line);
    if (j["kind"] == "loop" && j["camera"] == "walk")
      loop_starts.push_back(j["start_us"].get<std::int64_t>());
  }
  // A camera learns its scene for 3 s after connecting (warm-up): score the loops that began
  // after that, and the events within them.
  std::erase_if(loop_starts, [](std::int64_t s) { return s < ready_us_ + 3'500'000; });
  ASSERT_GE(loop_starts.size(), 2u);
  auto walks = stored_events("walk", "motion");
  std::erase_if(walks, [&](const json& e) {
    return e["start_us"].get<std::int64_t>() < loop_starts.front();
  });
  int hits = 0;
  int vehicles = 0;
  for (const auto start : loop_starts) {
    const std::int64_t enter = start + 3'000'000;
    const std::int64_t leave = start + 10'000'000;
    int matching = 0;
    for (const auto& e : walks) {
      const auto s = e["start_us"].get<std::int64_t>();
      if (s >= enter - 500'000 && s <= enter + 2'000'000) {
        ++matching;
        // Onset within 2 s of the person entering; ends after they left, within the gap.
        if (!e["end_us"].is_null()) {
          EXPECT_GT(e["end_us"].get<std::int64_t>(), leave - 1'500'000);
          EXPECT_LT(e["end_us"].get<std::int64_t>(), leave + 3'000'000);
        }
        // The snapshot is the analysed picture: a greyscale JPEG of the sub stream, not flat.
        const cv::Mat snap = cv::imread(e["snapshot"].get<std::string>(), cv::IMREAD_UNCHANGED);
        ASSERT_FALSE(snap.empty()) << "not a readable JPEG: " << e.dump();
        EXPECT_EQ(snap.channels(), 1);
        EXPECT_EQ(snap.cols, 640);
        EXPECT_EQ(snap.rows, 360);
        cv::Scalar mean, stddev;
        cv::meanStdDev(snap, mean, stddev);
        EXPECT_GT(stddev[0], 10.0) << "a flat picture";
        EXPECT_EQ(e["label"], "person") << e.dump();
        EXPECT_EQ(e["node_id"], "ev-node");
      }
    }
    EXPECT_LE(matching, 1) << "one crossing, one event";
    hits += matching;
    // The car passes in [12 s, 17 s): an event, but not a person.
    for (const auto& e : walks) {
      const auto s = e["start_us"].get<std::int64_t>();
      if (s >= start + 11'500'000 && s <= start + 14'000'000) {
        ++vehicles;
        EXPECT_NE(e["label"], "person") << e.dump();
      }
    }
  }
  EXPECT_GE(hits, 2) << "walk events: " << json(walks).dump();
  EXPECT_GE(vehicles, 1);
  std::string starts_text;
  for (const auto s : loop_starts) starts_text += std::to_string(s) + " ";
  EXPECT_EQ(walks.size(), static_cast<std::size_t>(hits + vehicles))
      << "no event outside a pass: " << json(walks).dump() << " loops " << starts_text;
  EXPECT_TRUE(stored_events("lights", "motion").empty())
      << json(stored_events("lights", "motion")).dump();

  // The same events went out on ZeroMQ, in order, without gaps.
  int starts = 0, ends = 0;
  std::int64_t last_seq = 0;
  for (const auto& m : messages_) {
    EXPECT_EQ(m.body["schema"], 1);
    if (last_seq != 0) {
      EXPECT_EQ(m.body["seq"].get<std::int64_t>(), last_seq + 1);
    }
    last_seq = m.body["seq"].get<std::int64_t>();
    if (m.topic == "event.xa-test.walk.motion") {
      starts += m.body["phase"] == "start";
      ends += m.body["phase"] == "end";
    }
    EXPECT_NE(m.topic, "event.xa-test.lights.motion");
  }
  EXPECT_GE(starts, 2);
  EXPECT_GE(ends, 1);
  // The covered and the defocused lens became tamper events.
  bool covered = false, defocused = false;
  for (const auto& m : messages_) {
    if (m.topic == "event.xa-test.tamper.tamper" && m.body["phase"] == "start") {
      covered = covered || m.body["event"]["label"] == "covered";
      defocused = defocused || m.body["event"]["label"] == "defocused";
    }
  }
  EXPECT_TRUE(covered);
  EXPECT_TRUE(defocused);
  EXPECT_FALSE(stored_events("tamper", "tamper").empty());
  const auto api = http_get(port_, "/api/events?camera=walk");
  EXPECT_EQ(api.status, 200);
  const auto listed = json::parse(api.body);  // a named value: the loop below refers into it
  EXPECT_GE(listed["events"].size(), 2u);
  for (const auto& e : listed["events"]) {
    EXPECT_EQ(e["zones"], json::array({"duong"})) << e.dump();
  }

  // The webhook channel got each person (with its snapshot) and the tamper events, nothing
  // from the light switches and not the car (its event is motion, not person).
  int person_alerts = 0, tamper_alerts = 0;
  std::map<std::string, std::chrono::steady_clock::time_point> first_sent;
  std::vector<std::pair<json, std::chrono::steady_clock::time_point>> escalations;
  for (const auto& r : webhook_->requests()) {
    if (r.target == "/officer") {
      escalations.emplace_back(json::parse(r.body), r.at);
      continue;
    }
    EXPECT_EQ(r.target, "/matthan");
    first_sent.emplace(json::parse(r.body)["event"]["id"].get<std::string>(), r.at);
    const auto body = json::parse(r.body);
    const auto& e = body["event"];
    EXPECT_EQ(r.header("X-Matthan-Event"), e["id"].get<std::string>());
    EXPECT_NE(e["camera"], "lights") << r.body.substr(0, 300);
    if (e["label"] == "person") {
      ++person_alerts;
      EXPECT_EQ(e["camera"], "walk");
      EXPECT_GT(body.value("snapshot_jpeg_base64", std::string()).size(), 1000u);
      EXPECT_NE(body["text"].get<std::string>().find("Phát hiện người"), std::string::npos);
    }
    if (e["type"] == "tamper") ++tamper_alerts;
  }
  EXPECT_GE(person_alerts, 2);
  EXPECT_GE(tamper_alerts, 2);
  // Escalation: every unacknowledged alert (the persons) reached the officer 3 s or more after
  // the first message, saying nobody answered; no acknowledged one (the tampers) did.
  EXPECT_TRUE(ack_failures_.empty()) << ack_failures_.front();
  EXPECT_GE(acked_.size(), 2u);
  std::set<std::string> escalated;
  for (const auto& [body, at] : escalations) {
    const std::string id = body["event"]["id"];
    escalated.insert(id);
    EXPECT_FALSE(acked_.contains(id)) << "an acknowledged alert was escalated: " << id;
    EXPECT_NE(body["text"].get<std::string>().find("CHƯA AI NHẬN"), std::string::npos);
    ASSERT_TRUE(first_sent.contains(id)) << id;
    // Scheduled when queued for the first channel (3 s); that delivery may itself be late.
    EXPECT_GE(at - first_sent[id], 2000ms) << id;
  }
  int person_events_alerted = 0;
  for (const auto& [id, at] : first_sent) {
    if (acked_.contains(id)) continue;
    // Alerts of the last 4 s may not be due yet.
    if (std::chrono::steady_clock::now() - at < 4s) continue;
    ++person_events_alerted;
    EXPECT_TRUE(escalated.contains(id)) << "unacknowledged alert " << id << " not escalated";
  }
  EXPECT_GE(person_events_alerted, 2);
  const auto escalated_events = json::parse(http_get(port_, "/api/events?camera=walk").body);
  int with_escalation = 0;
  for (const auto& e : escalated_events["events"])
    with_escalation += e["escalations"].get<int>() > 0;
  EXPECT_GE(with_escalation, static_cast<int>(escalated.size()));
  // Each escalation is in the audit log.
  const auto audit = json::parse(http_get(port_, "/api/audit?limit=1000").body);
  std::set<std::string> audited;
  for (const auto& e : audit["entries"]) {
    if (e["action"] == "alert_escalated") audited.insert(e["target"].get<std::string>());
  }
  for (const auto& id : escalated) EXPECT_TRUE(audited.contains(id)) << "not audited: " << id;
  const auto health = json::parse(http_get(port_, "/healthz").body);
  ASSERT_EQ(health["alert_channels"].size(), 2u);
  EXPECT_EQ(health["alert_channels"][0]["name"], "hook");
  EXPECT_GE(health["alert_channels"][0]["sent"].get<int>(), person_alerts + tamper_alerts);
}

TEST_F(EventsIntegration, VanishedCameraRaisesCameraOfflineUntilItReturns) {
  messages_.clear();
  camsim_->write_line("stop lights");
  ASSERT_TRUE(camsim_->wait_for_line("ok stopped", 5s).has_value());
  collect(4s);
  camsim_->write_line("start lights");
  ASSERT_TRUE(camsim_->wait_for_line("ok started", 5s).has_value());
  collect(8s);
  bool offline_status = false, online_status = false, start = false, end = false;
  for (const auto& m : messages_) {
    if (m.topic == "status.xa-test.lights") {
      offline_status = offline_status || m.body["state"] == "offline";
      online_status = online_status || (offline_status && m.body["state"] == "online");
    }
    if (m.topic == "event.xa-test.lights.camera_offline") {
      start = start || m.body["phase"] == "start";
      end = end || m.body["phase"] == "end";
    }
  }
  EXPECT_TRUE(offline_status);
  EXPECT_TRUE(online_status);
  EXPECT_TRUE(start);
  EXPECT_TRUE(end);
  const auto stored = stored_events("lights", "camera_offline");
  ASSERT_EQ(stored.size(), 1u);
  EXPECT_FALSE(stored[0]["end_us"].is_null());
  EXPECT_GT(stored[0]["end_us"].get<std::int64_t>() - stored[0]["start_us"].get<std::int64_t>(),
            3'000'000);
}

}  // namespace
}  // namespace matthan::test
