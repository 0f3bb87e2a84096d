// The server against the simulator, over real RTSP on 127.0.0.1: cameras come online, go and
// come back, refuse, lie and send garbage, and the server reports each honestly, stores every
// transition, keeps the others running and never shows a password.
#include <gtest/gtest.h>
#include <signal.h>
#include <sqlite3.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>

#include "child_process.hpp"

namespace matthan::test {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

constexpr const char* kGoodPassword = "Secr3t-Pw";
constexpr const char* kWrongPassword = "WrongPass99";
constexpr int kStallMs = 2000;

class IngestIntegration : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = temp_dir("matthan-it");
    // A video file served as a camera (as a DVR export or a phone clip would be).
    const std::string clip = dir_ + "/clip.mp4";
    ChildProcess ffmpeg({"/usr/bin/ffmpeg", "-v", "error", "-f", "lavfi", "-i",
                         "testsrc=size=640x360:rate=25:duration=4", "-c:v", "libx264", "-g", "25",
                         "-pix_fmt", "yuv420p", "-y", clip},
                        dir_ + "/ffmpeg.log");
    ASSERT_EQ(ffmpeg.signal_and_wait(0, 60s), 0) << read_file(dir_ + "/ffmpeg.log");
    camsim_ = std::make_unique<ChildProcess>(
        std::vector<std::string>{binary_path("matthan-camsim"), "--cameras", "8", "--duration", "6",
                                 "--seed", "5", "--h265", "cam4", "--auth",
                                 std::string("cam5=admin:") + kGoodPassword, "--file",
                                 "filecam=" + clip, "--cache", dir_ + "/../matthan-it-cache"},
        dir_ + "/camsim.log");
    auto line = camsim_->wait_for_line("CAMSIM ", 180s);
    ASSERT_TRUE(line.has_value()) << read_file(dir_ + "/camsim.log");
    base_ = line->substr(7);
    const std::string b = base_;
    std::ofstream cfg(dir_ + "/matthan.yaml");
    cfg << "node_id: it-node\nanalytics: {zmq_endpoint: 'tcp://127.0.0.1:*'}\nserver:\n  listen: "
           "127.0.0.1:0\n  data_dir: "
        << dir_
        << "/var\n  heartbeat_s: 1\ndefaults:\n  analysis_fps: 5\n  connect_timeout_ms: 3000\n"
        << "  stall_timeout_ms: " << kStallMs << "\ncameras:\n";
    auto cam = [&](const std::string& id, const std::string& path, const std::string& extra = "") {
      cfg << "  - {id: " << id << ", commune: xa-it, hamlet: ap-1, main_url: \"" << path
          << "/main\", sub_url: \"" << path << "/sub\"" << extra << "}\n";
    };
    for (int i = 1; i <= 4; ++i) cam("cam" + std::to_string(i), b + "/cam" + std::to_string(i));
    cam("cam5", b + "/cam5", std::string(", username: admin, password: ") + kGoodPassword);
    cam("cam6", b + "/cam6");
    cam("cam7", b + "/cam7");
    cam("cam8", b + "/cam8");
    cam("wrongpw", b + "/cam5", std::string(", username: admin, password: ") + kWrongPassword);
    cam("badport", "rtsp://127.0.0.1:1/x");
    cam("badhost", "rtsp://camera.invalid/x");
    cam("nopath", b + "/nosuchcamera");
    cam("filecam", b + "/filecam");
    cfg.close();
    server_ = std::make_unique<ChildProcess>(
        std::vector<std::string>{binary_path("matthan"), "run", "--config", dir_ + "/matthan.yaml"},
        dir_ + "/server.stderr");
    auto listening = server_->wait_for_line("LISTENING ", 20s);
    ASSERT_TRUE(listening.has_value()) << read_file(dir_ + "/server.stderr");
    port_ = std::atoi(listening->substr(listening->rfind(':') + 1).c_str());
    ASSERT_EQ(login_admin(port_, dir_ + "/matthan.yaml"), "");
    started_ = std::chrono::steady_clock::now();
  }

  static void TearDownTestSuite() {
    server_.reset();
    camsim_.reset();
    std::filesystem::remove_all(dir_);
  }

  static json cameras() {
    const auto r = http_get(port_, "/api/cameras");
    if (r.status != 200) return json::object();
    return json::parse(r.body, nullptr, false);
  }

  static json camera(const std::string& id) {
    const auto r = http_get(port_, "/api/cameras/" + id);
    if (r.status != 200) return json::object();
    return json::parse(r.body, nullptr, false);
  }

  static std::string state(const std::string& id) { return camera(id).value("state", "?"); }

  // Polls until the camera is in the state; returns the time it took, or nullopt.
  static std::optional<std::chrono::milliseconds> wait_state(const std::string& id,
                                                             const std::string& want,
                                                             std::chrono::milliseconds limit) {
    const auto t0 = std::chrono::steady_clock::now();
    while (std::chrono::steady_clock::now() - t0 < limit) {
      if (state(id) == want) {
        return std::chrono::duration_cast<std::chrono::milliseconds>(
            std::chrono::steady_clock::now() - t0);
      }
      std::this_thread::sleep_for(100ms);
    }
    return std::nullopt;
  }

  static std::string command(const std::string& cmd) {
    camsim_->write_line(cmd);
    auto reply = camsim_->wait_for_line("ok", 5s);
    return reply.value_or("no reply");
  }

  static std::vector<std::string> stored_states(const std::string& camera_id,
                                                const std::string& stream) {
    sqlite3* db = nullptr;
    sqlite3_open_v2((dir_ + "/var/matthan.db").c_str(), &db, SQLITE_OPEN_READONLY, nullptr);
    sqlite3_busy_timeout(db, 2000);
    sqlite3_stmt* st = nullptr;
    std::vector<std::string> out;
    sqlite3_prepare_v2(db,
                       "SELECT state FROM camera_state_change WHERE node_id = 'it-node' AND "
                       "camera_id = ? AND stream = ? ORDER BY start_us, id",
                       -1, &st, nullptr);
    sqlite3_bind_text(st, 1, camera_id.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 2, stream.c_str(), -1, SQLITE_TRANSIENT);
    while (sqlite3_step(st) == SQLITE_ROW)
      out.emplace_back(reinterpret_cast<const char*>(sqlite3_column_text(st, 0)));
    sqlite3_finalize(st);
    sqlite3_close(db);
    return out;
  }

  // Error texts of a camera's stored `error` states (the history, not the current state).
  static std::vector<std::string> stored_errors(const std::string& camera_id) {
    sqlite3* db = nullptr;
    sqlite3_open_v2((dir_ + "/var/matthan.db").c_str(), &db, SQLITE_OPEN_READONLY, nullptr);
    sqlite3_busy_timeout(db, 2000);
    sqlite3_stmt* st = nullptr;
    std::vector<std::string> out;
    sqlite3_prepare_v2(db,
                       "SELECT error FROM camera_state_change WHERE node_id = 'it-node' AND "
                       "camera_id = ? AND stream = 'camera' AND state = 'error' ORDER BY id",
                       -1, &st, nullptr);
    sqlite3_bind_text(st, 1, camera_id.c_str(), -1, SQLITE_TRANSIENT);
    while (sqlite3_step(st) == SQLITE_ROW)
      out.emplace_back(reinterpret_cast<const char*>(sqlite3_column_text(st, 0)));
    sqlite3_finalize(st);
    sqlite3_close(db);
    return out;
  }

  static inline std::string dir_;
  static inline std::string base_;
  static inline int port_ = 0;
  static inline std::chrono::steady_clock::time_point started_;
  static inline std::unique_ptr<ChildProcess> camsim_;
  static inline std::unique_ptr<ChildProcess> server_;
};

TEST_F(IngestIntegration, FourCamerasOnlineWithin10sAtConfiguredRates) {
  for (const char* id : {"cam1", "cam2", "cam3", "cam4"}) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        10s - (std::chrono::steady_clock::now() - started_));
    EXPECT_TRUE(wait_state(id, "online", std::max(left, 1ms)).has_value())
        << id << ": " << camera(id).dump();
  }
  // Rates are measured over a few seconds of streaming.
  std::this_thread::sleep_for(5s);
  for (const char* id : {"cam1", "cam2", "cam3", "cam4"}) {
    const auto c = camera(id);
    const auto& sub = c["streams"][1];
    EXPECT_EQ(sub["kind"], "sub");
    EXPECT_NEAR(sub["fps_decoded"].get<double>(), 25.0, 2.5) << id;
    EXPECT_NEAR(sub["fps_in"].get<double>(), 25.0, 2.5) << id;
    // The configured 5 fps, plus the frames between taken while new motion is confirmed
    // sooner (never more than twice the rate).
    EXPECT_GE(c["fps_analysed"].get<double>(), 4.5) << id;
    EXPECT_LE(c["fps_analysed"].get<double>(), 10.0) << id;
    EXPECT_EQ(sub["width"], 640);
    EXPECT_GT(c["streams"][0]["bitrate_bps"].get<double>(), 1e6) << id;  // main stream flows
    EXPECT_GT(c["mean_luma"].get<double>(), 40.0) << id;  // a real picture, not black
  }
  const auto h = http_get(port_, "/healthz");
  EXPECT_EQ(h.status, 200);
  EXPECT_GE(json::parse(h.body)["cameras_online"].get<int>(), 4);
}

TEST_F(IngestIntegration, LoopedVideoFileServesAsACamera) {
  ASSERT_TRUE(wait_state("filecam", "online", 10s).has_value()) << camera("filecam").dump();
  std::this_thread::sleep_for(3s);
  const auto c = camera("filecam");
  EXPECT_NEAR(c["streams"][1]["fps_decoded"].get<double>(), 25.0, 2.5);  // loops without a gap
  EXPECT_EQ(c["streams"][1]["decode_errors"].get<int>(), 0);
  EXPECT_EQ(c["streams"][1]["timestamp_jumps"].get<int>(), 0);
}

TEST_F(IngestIntegration, H265CameraDecodes) {
  ASSERT_TRUE(wait_state("cam4", "online", 10s).has_value());
  const auto c = camera("cam4");
  EXPECT_EQ(c["streams"][0]["codec"], "hevc");
  EXPECT_EQ(c["streams"][1]["codec"], "hevc");
  EXPECT_GT(c["streams"][1]["frames_decoded"].get<int>(), 25);
  EXPECT_EQ(c["streams"][1]["decode_errors"].get<int>(), 0);
}

TEST_F(IngestIntegration, AuthenticatedCameraWorksAndWrongPasswordIsUnauthorizedWithoutStorm) {
  EXPECT_TRUE(wait_state("cam5", "online", 10s).has_value()) << camera("cam5").dump();
  ASSERT_TRUE(wait_state("wrongpw", "unauthorized", 10s).has_value()) << camera("wrongpw").dump();
  const auto before = camera("wrongpw")["streams"][0]["reconnects"].get<int>();
  std::this_thread::sleep_for(11s);
  const auto after = camera("wrongpw")["streams"][0]["reconnects"].get<int>();
  // Cameras lock accounts after a few bad logins: at most one try per 5 s.
  EXPECT_LE(after - before, 3) << before << " -> " << after;
  EXPECT_NE(camera("wrongpw")["last_error"].get<std::string>().find("401"), std::string::npos);
}

TEST_F(IngestIntegration, BadAddressesGiveClearErrors) {
  ASSERT_TRUE(wait_state("badport", "error", 10s).has_value());
  EXPECT_NE(
      camera("badport")["last_error"].get<std::string>().find("connection refused by 127.0.0.1:1"),
      std::string::npos);
  ASSERT_TRUE(wait_state("badhost", "error", 10s).has_value());
  EXPECT_NE(camera("badhost")["last_error"].get<std::string>().find(
                "cannot resolve camera host 'camera.invalid'"),
            std::string::npos);
  ASSERT_TRUE(wait_state("nopath", "not_found", 10s).has_value());
  EXPECT_NE(camera("nopath")["last_error"].get<std::string>().find("404"), std::string::npos);
}

TEST_F(IngestIntegration, StoppedCameraGoesOfflineIsStoredAndComesBack) {
  ASSERT_TRUE(wait_state("cam3", "online", 10s).has_value());
  ASSERT_EQ(command("stop cam3"), "ok stopped cam3");
  const auto took = wait_state("cam3", "offline", std::chrono::milliseconds(2 * kStallMs + 1000));
  ASSERT_TRUE(took.has_value()) << camera("cam3").dump();
  // Others ride through.
  EXPECT_EQ(state("cam1"), "online");
  std::this_thread::sleep_for(2s);
  ASSERT_EQ(command("start cam3"), "ok started cam3");
  EXPECT_TRUE(wait_state("cam3", "online", 15s).has_value()) << camera("cam3").dump();
  std::this_thread::sleep_for(300ms);
  const auto rows = stored_states("cam3", "camera");
  ASSERT_GE(rows.size(), 4u);
  EXPECT_EQ(rows[0], "connecting");
  EXPECT_EQ(rows[1], "online");
  EXPECT_NE(std::find(rows.begin(), rows.end(), "offline"), rows.end());
  EXPECT_EQ(rows.back(), "online");
  EXPECT_GE(camera("cam3")["streams"][0]["reconnects"].get<int>(), 1);
}

TEST_F(IngestIntegration, CorruptTruncatedAndStalledStreamsAreErrorsAndOthersUnaffected) {
  for (const char* id : {"cam6", "cam7", "cam8"})
    ASSERT_TRUE(wait_state(id, "online", 10s).has_value()) << id;
  ASSERT_EQ(command("fault cam6 corrupt"), "ok fault cam6 corrupt");
  ASSERT_EQ(command("fault cam7 truncate"), "ok fault cam7 truncate");
  ASSERT_EQ(command("fault cam8 stall"), "ok fault cam8 stall");
  for (const char* id : {"cam6", "cam7"}) {
    EXPECT_TRUE(wait_state(id, "error", 15s).has_value()) << id << ": " << camera(id).dump();
  }
  EXPECT_NE(camera("cam6")["last_error"].get<std::string>().find("corrupt"), std::string::npos);
  // A stalled camera is an error only until the next attempt, which a stalling camera often
  // does not answer (then it is offline): look for the error in the stored history.
  bool stalled = false;
  for (int i = 0; i < 75 && !stalled; ++i) {
    for (const auto& e : stored_errors("cam8"))
      stalled = stalled || e.find("stalled") != std::string::npos;
    if (!stalled) std::this_thread::sleep_for(200ms);
  }
  EXPECT_TRUE(stalled) << camera("cam8").dump();
  // The healthy cameras kept their full rate while three others misbehaved.
  const auto c1 = camera("cam1");
  EXPECT_EQ(c1["state"], "online");
  EXPECT_NEAR(c1["streams"][1]["fps_decoded"].get<double>(), 25.0, 2.5);
  EXPECT_EQ(c1["streams"][1]["decode_errors"].get<int>(), 0);
  for (const char* id : {"cam6", "cam7", "cam8"}) command(std::string("fault ") + id + " none");
  for (const char* id : {"cam6", "cam7", "cam8"}) {
    EXPECT_TRUE(wait_state(id, "online", 40s).has_value()) << id << ": " << camera(id).dump();
  }
  EXPECT_TRUE(server_->running());
}

// A camera that loses RTP packets on its way out: the server counts them, says what is wrong with
// the link, records every picture as it came and marks in the index how many arrived damaged.
TEST_F(IngestIntegration, LostRtpPacketsAreCountedAndTheirPicturesMarkedInTheRecordings) {
  ASSERT_TRUE(wait_state("cam3", "online", 10s).has_value());
  const auto from = std::chrono::steady_clock::now();
  ASSERT_EQ(command("fault cam3 rtploss"), "ok fault cam3 rtploss");
  json main = json::object();
  for (int i = 0; i < 100; ++i) {  // a link sample every ~2 s
    std::this_thread::sleep_for(100ms);
    const json cam = camera("cam3");  // kept: the loop below reads into it
    for (const auto& s : cam.value("streams", json::array())) {
      if (s["kind"] == "main") main = s;
    }
    if (main.value("rtp_lost", 0) > 0 &&
        main.value("link", json::object()).dump().find("RTP") != std::string::npos) {
      break;
    }
  }
  EXPECT_GT(main.value("rtp_lost", 0), 0) << main.dump();
  EXPECT_NE(main.value("link", json::object()).dump().find("RTP packet(s) lost"), std::string::npos)
      << main.dump();
  // Main-stream segments since the fault began: damaged frames in the open one (indexed at each
  // synced fragment) or in finished ones, and the finished ones' frames.
  std::string answer;
  const auto marked = [&](bool finished) {
    const auto ago =
        std::chrono::duration_cast<std::chrono::seconds>(std::chrono::steady_clock::now() - from)
            .count();
    const auto r = http_get(
        port_, "/api/cameras/cam3/recordings?from=now-" + std::to_string(ago + 5) + "s&to=now");
    answer = r.body;
    std::pair<std::int64_t, std::int64_t> out{0, 0};
    const json body = json::parse(r.body, nullptr, false);
    if (r.status != 200 || !body.is_object()) return out;
    for (const auto& seg : body["segments"]) {
      if (seg["stream"] != "main" || (finished && seg["state"] == "open")) continue;
      out.first += seg.value("damaged_frames", std::int64_t{0});
      out.second += seg.value("frames", std::int64_t{0});
    }
    return out;
  };
  bool while_written = false;
  for (int i = 0; i < 50 && !while_written; ++i) {
    while_written = marked(false).first > 0;
    if (!while_written) std::this_thread::sleep_for(200ms);
  }
  EXPECT_TRUE(while_written) << "not indexed while the segment is written: " << answer;
  ASSERT_EQ(command("fault cam3 none"), "ok fault cam3 none");
  // The segment ends (and is indexed whole) when the camera comes back after a stop and the
  // recorder sees the silence.
  ASSERT_EQ(command("stop cam3"), "ok stopped cam3");
  ASSERT_TRUE(wait_state("cam3", "offline", 20s).has_value()) << camera("cam3").dump();
  ASSERT_EQ(command("start cam3"), "ok started cam3");
  std::pair<std::int64_t, std::int64_t> done{0, 0};
  for (int i = 0; i < 200 && done.first == 0; ++i) {
    std::this_thread::sleep_for(200ms);
    done = marked(true);
  }
  EXPECT_GT(done.first, 0) << answer.substr(0, 2000);
  EXPECT_LT(done.first, done.second);  // one packet in 40: most pictures came whole
  EXPECT_TRUE(wait_state("cam3", "online", 40s).has_value()) << camera("cam3").dump();
}

TEST_F(IngestIntegration, ProbeMeasuresCodecSizeFpsBitrateAndGop) {
  ChildProcess probe(
      {binary_path("matthan"), "probe", base_ + "/cam2/sub", "--json", "--seconds", "5"},
      dir_ + "/probe.stderr");
  std::string out;
  while (auto line = probe.read_line(30s)) out += *line;
  ASSERT_EQ(probe.signal_and_wait(0, 10s), 0) << read_file(dir_ + "/probe.stderr");
  const auto j = json::parse(out);
  EXPECT_EQ(j["codec"], "h264");
  EXPECT_EQ(j["width"], 640);
  EXPECT_EQ(j["height"], 360);
  EXPECT_NEAR(j["fps"].get<double>(), 25.0, 1.0);
  EXPECT_NEAR(j["gop_frames"].get<double>(), 50.0, 1.0);  // camsim's 2 s GOP
  EXPECT_NEAR(j["gop_seconds"].get<double>(), 2.0, 0.1);
  EXPECT_GT(j["bitrate_bps"].get<double>(), 200'000.0);
  EXPECT_LT(j["bitrate_bps"].get<double>(), 2'000'000.0);
}

TEST_F(IngestIntegration, StatusPageIsServedInVietnamese) {
  // The page is Vietnamese by default; its strings come from translation files with the same
  // keys in both languages.
  const auto page = http_get(port_, "/");
  EXPECT_EQ(page.status, 200);
  EXPECT_NE(page.body.find("<html lang=\"vi\">"), std::string::npos);
  EXPECT_NE(page.body.find("/app.js"), std::string::npos);
  const auto vi = nlohmann::json::parse(http_get(port_, "/i18n.vi.json").body, nullptr, false);
  const auto en = nlohmann::json::parse(http_get(port_, "/i18n.en.json").body, nullptr, false);
  ASSERT_TRUE(vi.is_object());
  ASSERT_TRUE(en.is_object());
  EXPECT_EQ(vi["nav.live"], "Trực tiếp");
  EXPECT_EQ(en["nav.live"], "Live");
  EXPECT_EQ(vi.size(), en.size());
  for (const auto& [key, value] : vi.items()) {
    EXPECT_TRUE(en.contains(key)) << key << " has no English";
    EXPECT_FALSE(value.get<std::string>().empty()) << key;
  }
  const auto script = http_get(port_, "/app.js");
  EXPECT_EQ(script.status, 200);
  EXPECT_NE(script.body.find("/api/cameras"), std::string::npos);
}

TEST_F(IngestIntegration, MalformedHttpGetsAClearError) {
  const auto raw = http_raw(port_, "GARBAGE\r\n\r\n");
  EXPECT_EQ(raw.rfind("HTTP/1.1 400", 0), 0u) << raw;
  EXPECT_EQ(http_get(port_, "/api/cameras/nope").status, 404);
  EXPECT_EQ(http_get(port_, "/healthz").status, 200);
}

TEST_F(IngestIntegration, PasswordsAppearNowhere) {
  const auto api = http_get(port_, "/api/cameras").body;
  const auto log = read_file(dir_ + "/var/matthan.log") + read_file(dir_ + "/server.stderr");
  ASSERT_FALSE(api.empty());
  ASSERT_FALSE(log.empty());
  for (const char* secret : {kGoodPassword, kWrongPassword}) {
    EXPECT_EQ(api.find(secret), std::string::npos) << secret;
    EXPECT_EQ(log.find(secret), std::string::npos) << secret;
  }
  EXPECT_NE(api.find("admin:***@"), std::string::npos);
}

TEST_F(IngestIntegration, SigtermStopsCleanlyWithin5s) {
  const auto t0 = std::chrono::steady_clock::now();
  const int code = server_->signal_and_wait(SIGTERM, 5s);
  const auto took = std::chrono::steady_clock::now() - t0;
  EXPECT_EQ(code, 0);
  EXPECT_LT(took, 5s);
  sqlite3* db = nullptr;
  sqlite3_open_v2((dir_ + "/var/matthan.db").c_str(), &db, SQLITE_OPEN_READONLY, nullptr);
  sqlite3_stmt* st = nullptr;
  sqlite3_prepare_v2(db, "SELECT clean_stop, last_heartbeat_us > start_us FROM server_run", -1, &st,
                     nullptr);
  ASSERT_EQ(sqlite3_step(st), SQLITE_ROW);
  EXPECT_EQ(sqlite3_column_int(st, 0), 1);
  EXPECT_EQ(sqlite3_column_int(st, 1), 1);
  sqlite3_finalize(st);
  sqlite3_close(db);
}

}  // namespace
}  // namespace matthan::test
