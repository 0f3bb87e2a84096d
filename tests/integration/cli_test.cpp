// The CLI as an operator uses it: check-config names file, line and key of every error.
#include <gtest/gtest.h>
#include <signal.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "child_process.hpp"

#ifndef MATTHAN_SOURCE_DIR
#error "MATTHAN_SOURCE_DIR must be defined"
#endif

namespace matthan::test {
namespace {

using namespace std::chrono_literals;

struct Run {
  int code;
  std::string out;
  std::string err;
};

Run run(const std::vector<std::string>& args, const std::string& dir) {
  std::vector<std::string> argv{binary_path("matthan")};
  argv.insert(argv.end(), args.begin(), args.end());
  ChildProcess p(argv, dir + "/stderr.txt");
  std::string out;
  while (auto line = p.read_line(20s)) out += *line + "\n";
  const int code = p.signal_and_wait(0, 20s);
  return {code, out, read_file(dir + "/stderr.txt")};
}

TEST(Cli, CheckConfigReportsEveryErrorWithFileLineAndKey) {
  const auto dir = temp_dir("matthan-cli");
  std::ofstream(dir + "/bad.yaml") << "node_id: n1\n"
                                      "cameras:\n"
                                      "  - id: gate\n"
                                      "    brand: sony\n"
                                      "    host: 10.0.0.2\n"
                                      "  - id: market\n"
                                      "    main_url: rtsp://10.0.0.3/live\n"
                                      "    pasword: typo\n";
  const auto bad = run({"check-config", dir + "/bad.yaml"}, dir);
  EXPECT_EQ(bad.code, 1);
  EXPECT_NE(bad.err.find(dir + "/bad.yaml:4: cameras[0].brand: unknown brand 'sony'"),
            std::string::npos)
      << bad.err;
  EXPECT_NE(bad.err.find(dir + "/bad.yaml:8: cameras[1].pasword: unknown key"), std::string::npos)
      << bad.err;
  EXPECT_NE(bad.err.find("2 error(s)"), std::string::npos) << bad.err;

  std::ofstream(dir + "/good.yaml")
      << "node_id: n1\ncameras:\n  - {id: gate, brand: dahua, host: 10.0.0.2}\n";
  const auto good = run({"check-config", dir + "/good.yaml"}, dir);
  EXPECT_EQ(good.code, 0) << good.err;
  EXPECT_NE(good.out.find("ok (1 camera(s), node n1"), std::string::npos);
  std::filesystem::remove_all(dir);
}

TEST(Cli, ExampleConfigIsValid) {
  const auto dir = temp_dir("matthan-cli");
  setenv("CAM_CONG_AP_1_PASSWORD", "x", 1);
  setenv("CAM_CHO_PASSWORD", "y", 1);
  setenv("TELEGRAM_BOT_TOKEN", "123:abc", 1);
  setenv("ZALO_OA_TOKEN", "z", 1);
  const auto r =
      run({"check-config", std::string(MATTHAN_SOURCE_DIR) + "/deploy/matthan.example.yaml"}, dir);
  EXPECT_EQ(r.code, 0) << r.err;
  // The summary shows what alarms when.
  EXPECT_NE(r.out.find("camera cong-ap-1: armed 22:00-05:00, 1 mask(s), 2 zone(s)"),
            std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("zone san-kho: 4 points, min_area (analytics.min_area), armed 00:00-24:00"),
            std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("alert cong-an-xa: zalo, armed hours only"), std::string::npos) << r.out;
  // Secrets are not printed.
  EXPECT_EQ(r.out.find("123:abc"), std::string::npos);
  std::filesystem::remove_all(dir);
}

// 10 s of a textured grey scene with noise; a dark box crosses from 4 s to 7.5 s (after the
// detector's 3 s warm-up).
void make_box_clip(const std::string& path) {
  const auto dir = std::filesystem::path(path).parent_path().string();
  ChildProcess ffmpeg(
      {"/usr/bin/ffmpeg",
       "-v",
       "error",
       "-f",
       "lavfi",
       "-i",
       "color=c=0x707070:s=640x360:d=10:r=25,geq=lum='112+30*sin(X/5)*sin(Y/7)':cb=128:cr=128",
       "-f",
       "lavfi",
       "-i",
       "color=c=0x202020:s=40x100:d=10:r=25",
       "-filter_complex",
       "[0][1]overlay=x='if(between(t,4,7.5),(t-4)*150,-200)':y=200,noise=alls=6:allf=t",
       "-c:v",
       "libx264",
       "-g",
       "50",
       "-pix_fmt",
       "yuv420p",
       "-y",
       path},
      dir + "/ffmpeg.log");
  ASSERT_EQ(ffmpeg.signal_and_wait(0, 60s), 0) << read_file(dir + "/ffmpeg.log");
}

TEST(Cli, TuneReplaysAClipWithCandidateSettings) {
  const auto dir = temp_dir("matthan-cli");
  make_box_clip(dir + "/clip.mp4");
  const auto r = run(
      {"tune", "--clip", dir + "/clip.mp4", "--json", "--set", "people=false", "--set", "gap_s=1"},
      dir);
  ASSERT_EQ(r.code, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["frames_decoded"], 250);
  // 5 fps, and the frames between that confirmed the box sooner when it appeared.
  EXPECT_EQ(j["frames_analysed"].get<int>() - j["frames_sooner"].get<int>(), 50);
  EXPECT_GE(j["frames_sooner"].get<int>(), 1);
  EXPECT_LE(j["frames_sooner"].get<int>(), 4);
  ASSERT_EQ(j["events"].size(), 1u) << r.out;
  EXPECT_EQ(j["events"][0]["type"], "motion");
  EXPECT_NEAR(j["events"][0]["start_s"].get<double>(), 4.2, 0.5);
  EXPECT_NEAR(j["events"][0]["end_s"].get<double>(), 7.5, 0.6);
  // A candidate setting changes the outcome: a threshold above the box's contrast sees nothing.
  const auto blind =
      run({"tune", "--clip", dir + "/clip.mp4", "--json", "--set", "threshold_min=95"}, dir);
  ASSERT_EQ(blind.code, 0) << blind.err;
  EXPECT_TRUE(nlohmann::json::parse(blind.out)["events"].empty()) << blind.out;
  const auto bad = run({"tune", "--clip", dir + "/clip.mp4", "--set", "min_frames=0"}, dir);
  EXPECT_EQ(bad.code, 1);
  EXPECT_NE(bad.err.find("analytics.min_frames"), std::string::npos) << bad.err;
  std::filesystem::remove_all(dir);
}

TEST(Cli, TuneOverTheApiReplaysAClipFromTheClipsFolder) {
  const auto dir = temp_dir("matthan-cli");
  std::filesystem::create_directories(dir + "/var/clips");
  make_box_clip(dir + "/var/clips/box.mp4");
  std::ofstream(dir + "/tune.yaml")
      << "server: {listen: '127.0.0.1:0', data_dir: '" << dir << "/var'}\n"
      << "analytics: {zmq_endpoint: '', people: false}\n"
      << "cameras:\n  - {id: gate, main_url: 'rtsp://127.0.0.1:9/none', analysis_fps: 5}\n";
  ChildProcess server({binary_path("matthan"), "run", "--config", dir + "/tune.yaml"},
                      dir + "/server.log");
  const auto listening = server.wait_for_line("LISTENING ", 20s);
  ASSERT_TRUE(listening.has_value()) << read_file(dir + "/server.log");
  const int port = std::atoi(listening->substr(listening->rfind(':') + 1).c_str());
  EXPECT_EQ(http_get(port, "/api/cameras/gate/tune?clip=box.mp4").status, 401);  // no session
  ASSERT_EQ(login_admin(port, dir + "/tune.yaml"), "");
  const auto r = http_get(port, "/api/cameras/gate/tune?clip=box.mp4&gap_s=1", 60s);
  ASSERT_EQ(r.status, 200) << r.body;
  const auto j = nlohmann::json::parse(r.body);
  EXPECT_EQ(j["clip"], "box.mp4");  // not the server's path
  ASSERT_EQ(j["events"].size(), 1u) << r.body;
  EXPECT_NEAR(j["events"][0]["start_s"].get<double>(), 4.2, 0.5);
  // A candidate setting changes the outcome.
  const auto blind = http_get(port, "/api/cameras/gate/tune?clip=box.mp4&threshold_min=95", 60s);
  ASSERT_EQ(blind.status, 200) << blind.body;
  EXPECT_TRUE(nlohmann::json::parse(blind.body)["events"].empty()) << blind.body;
  // Bad requests say what is wrong; no file outside the clips folder is read.
  EXPECT_EQ(http_get(port, "/api/cameras/gate/tune?clip=../matthan.db").status, 400);
  EXPECT_EQ(http_get(port, "/api/cameras/nope/tune?clip=box.mp4").status, 404);
  const auto bad = http_get(port, "/api/cameras/gate/tune?clip=box.mp4&min_frames=0");
  EXPECT_EQ(bad.status, 400);
  EXPECT_NE(bad.body.find("min_frames"), std::string::npos) << bad.body;
  const auto unknown = http_get(port, "/api/cameras/gate/tune?clip=box.mp4&password=x");
  EXPECT_EQ(unknown.status, 400);
  EXPECT_NE(unknown.body.find("cannot be tuned"), std::string::npos) << unknown.body;
  EXPECT_EQ(http_get(port, "/api/cameras/gate/tune?clip=missing.mp4").status, 400);
  server.signal_and_wait(SIGTERM, 10s);
  std::filesystem::remove_all(dir);
}

TEST(Cli, RunRefusesABadConfigAndANonLoopbackListen) {
  const auto dir = temp_dir("matthan-cli");
  std::ofstream(dir + "/bad.yaml") << "cameras: 5\n";
  EXPECT_EQ(run({"run", "--config", dir + "/bad.yaml"}, dir).code, 1);
  std::ofstream(dir + "/open.yaml")
      << "server: {listen: '0.0.0.0:8080', data_dir: '" << dir << "/var'}\n";
  const auto open = run({"run", "--config", dir + "/open.yaml"}, dir);
  EXPECT_EQ(open.code, 1);
  EXPECT_NE(open.err.find("not a loopback address"), std::string::npos) << open.err;
  EXPECT_EQ(run({"frobnicate"}, dir).code, 2);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace matthan::test
