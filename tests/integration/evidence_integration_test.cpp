// Recording evidence end to end, with the real simulator, server and CLI: clips cut at the right
// frames (checked with the simulator's burned-in frame indices), HTTP Range with the same bytes
// every time, H.265 cameras played from their H.264 sub stream, signed exports that verify with
// `matthan verify-export` and plain `sha256sum -c` and fail when one byte changes, backup and
// restore into an empty data dir, and retention that keeps held footage on a full disk.
#include <gtest/gtest.h>
#include <signal.h>
#include <sqlite3.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/wait.h>

#include <cstdio>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>

#include "child_process.hpp"
#include "matthan/camsim/frame_code.hpp"
#include "matthan/ingest/clip_reader.hpp"

#ifndef MATTHAN_SOURCE_DIR
#error "MATTHAN_SOURCE_DIR must be defined"
#endif

namespace matthan::test {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;
namespace fs = std::filesystem;

struct Cmd {
  int rc = -1;
  std::string out;  // stdout and stderr
};

Cmd run(const std::string& command) {
  Cmd c;
  std::FILE* p = ::popen((command + " 2>&1").c_str(), "r");
  if (p == nullptr) return c;
  char buf[4096];
  std::size_t n = 0;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) c.out.append(buf, n);
  const int status = ::pclose(p);
  c.rc = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return c;
}

std::string q(const std::string& s) {
  return "'" + s + "'";
}

std::string iso(std::int64_t us) {
  const std::time_t t = static_cast<std::time_t>(us / 1'000'000);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[40];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  char frac[16];
  std::snprintf(frac, sizeof frac, ".%06lldZ", static_cast<long long>(us % 1'000'000));
  return std::string(buf) + frac;
}

struct Seg {
  std::string camera, stream, path, state;
  std::int64_t start_us = 0, end_us = 0, frames = 0;
};

std::vector<Seg> segments(const std::string& db_path) {
  sqlite3* db = nullptr;
  sqlite3_open_v2(db_path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr);
  sqlite3_busy_timeout(db, 5000);
  sqlite3_stmt* st = nullptr;
  sqlite3_prepare_v2(db,
                     "SELECT camera_id, stream, path, state, start_us, end_us, frames FROM segment"
                     " ORDER BY camera_id, stream, start_us",
                     -1, &st, nullptr);
  std::vector<Seg> out;
  auto text = [&](int c) {
    return std::string(reinterpret_cast<const char*>(sqlite3_column_text(st, c)));
  };
  while (sqlite3_step(st) == SQLITE_ROW) {
    out.push_back({text(0), text(1), text(2), text(3), sqlite3_column_int64(st, 4),
                   sqlite3_column_int64(st, 5), sqlite3_column_int64(st, 6)});
  }
  sqlite3_finalize(st);
  sqlite3_close(db);
  return out;
}

int count_rows(const std::string& db_path, const std::string& sql) {
  sqlite3* db = nullptr;
  sqlite3_open_v2(db_path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr);
  sqlite3_busy_timeout(db, 5000);
  sqlite3_stmt* st = nullptr;
  int n = -1;
  if (sqlite3_prepare_v2(db, sql.c_str(), -1, &st, nullptr) == SQLITE_OK &&
      sqlite3_step(st) == SQLITE_ROW)
    n = sqlite3_column_int(st, 0);
  sqlite3_finalize(st);
  sqlite3_close(db);
  return n;
}

// The simulator's burned-in frame indices of a video file, in decode order.
std::vector<std::uint32_t> frame_codes(const std::string& path) {
  std::vector<std::uint32_t> codes;
  auto read = ingest::read_clip(path, "x", 0, 0, [&](const LumaFrame& f) {
    codes.push_back(
        camsim::read_frame_code(f.pixels(), f.stride, f.width, f.height).value_or(0xFFFFFFFF));
  });
  EXPECT_TRUE(read.has_value()) << path << ": " << (read ? "" : read.error());
  return codes;
}

struct RawHttp {
  int status = 0;
  std::map<std::string, std::string> headers;  // lower-case names
  std::string body;
};

RawHttp get(int port, const std::string& path, const std::string& extra_headers = "") {
  const std::string raw =
      http_raw(port,
               "GET " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\n" + extra_headers +
                   default_headers() + "Connection: close\r\n\r\n",
               30s);
  RawHttp r;
  const auto end = raw.find("\r\n\r\n");
  if (end == std::string::npos) return r;
  r.status = std::atoi(raw.substr(9, 3).c_str());
  std::size_t at = raw.find("\r\n") + 2;
  while (at < end) {
    const auto eol = raw.find("\r\n", at);
    const auto line = raw.substr(at, eol - at);
    const auto colon = line.find(':');
    std::string name = line.substr(0, colon);
    for (auto& ch : name) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    r.headers[name] = line.substr(colon + 2);
    at = eol + 2;
  }
  r.body = raw.substr(end + 4);
  return r;
}

void write_file(const std::string& path, const std::string& data) {
  std::ofstream(path, std::ios::binary) << data;
}

std::unique_ptr<ChildProcess> start_camsim(const std::string& dir, std::string* base) {
  auto camsim = std::make_unique<ChildProcess>(
      std::vector<std::string>{binary_path("matthan-camsim"), "--scenario",
                               std::string(MATTHAN_SOURCE_DIR) + "/tests/scenarios/recording.yaml",
                               "--cache", dir + "/../matthan-it-cache"},
      dir + "/camsim.log");
  const auto line = camsim->wait_for_line("CAMSIM ", 300s);
  if (line) *base = line->substr(7);
  return camsim;
}

void write_config(const std::string& path, const std::string& data_dir, const std::string& base,
                  const std::string& recording) {
  std::ofstream cfg(path);
  cfg << "node_id: ev-node\nserver: {listen: '127.0.0.1:0', data_dir: '" << data_dir
      << "', time_zone: Asia/Ho_Chi_Minh}\nanalytics: {zmq_endpoint: '', people: false}\n"
      << "recording: " << recording << "\ncameras:\n";
  for (const char* id : {"rec-h264", "rec-h265"}) {
    cfg << "  - {id: " << id << ", name: 'Cổng " << id << "', commune: xa-an-phu, main_url: '"
        << base << "/" << id << "/main', sub_url: '" << base << "/" << id << "/sub'}\n";
  }
}

int port_of(ChildProcess& server) {
  const auto line = server.wait_for_line("LISTENING ", 20s);
  if (!line) return 0;
  return std::atoi(line->substr(line->rfind(':') + 1).c_str());
}

TEST(EvidenceIntegration, ClipsExportsVerifyAndSurviveARestore) {
  const std::string dir = temp_dir("matthan-evidence-it");
  std::string base;
  const auto camsim = start_camsim(dir, &base);
  ASSERT_FALSE(base.empty()) << read_file(dir + "/camsim.log");
  const std::string cfg = dir + "/matthan.yaml";
  write_config(cfg, dir + "/var", base, "{segment_s: 4, sub_stream: true}");
  const std::string bin = binary_path("matthan");
  const std::string db = dir + "/var/matthan.db";
  auto server = std::make_unique<ChildProcess>(
      std::vector<std::string>{bin, "run", "--config", cfg}, dir + "/server.log");
  const int port = port_of(*server);
  ASSERT_GT(port, 0) << read_file(dir + "/server.log");
  ASSERT_EQ(login_admin(port, cfg), "");
  std::this_thread::sleep_for(15s);

  // Server time of every frame of rec-h264's complete main segments, by burned-in index.
  std::vector<Seg> mine;
  for (const auto& s : segments(db)) {
    if (s.camera == "rec-h264" && s.stream == "main" && s.state == "complete") mine.push_back(s);
  }
  ASSERT_GE(mine.size(), 2u);
  std::vector<std::pair<std::int64_t, std::uint32_t>> timeline;  // (server time, frame index)
  for (const auto& s : mine) {
    const auto codes = frame_codes(s.path);
    const double step =
        static_cast<double>(s.end_us - s.start_us) / static_cast<double>(codes.size());
    for (std::size_t i = 0; i < codes.size(); ++i)
      timeline.emplace_back(s.start_us + static_cast<std::int64_t>(step * static_cast<double>(i)),
                            codes[i]);
  }
  // A range starting mid-GOP inside the second segment, ending before the last complete one ends.
  const std::int64_t from = mine[1].start_us + 1'300'000;
  const std::int64_t to = std::min(from + 3'000'000, mine.back().end_us - 200'000);
  auto time_of = [&](std::uint32_t code) -> std::int64_t {
    std::int64_t best = -1;  // the occurrence nearest the range (codes repeat every 10 s loop)
    for (const auto& [t, c] : timeline) {
      if (c == code && (best < 0 || std::llabs(t - from) < std::llabs(best - from))) best = t;
    }
    return best;
  };

  // --- Clip: starts at the keyframe before the range, ends at its end, every frame in order.
  const std::string clip_path =
      "/api/cameras/rec-h264/clip.mp4?from=" + iso(from) + "&to=" + iso(to);
  auto clip = get(port, clip_path);
  ASSERT_EQ(clip.status, 200) << clip.body.substr(0, 300);
  EXPECT_EQ(clip.headers["content-type"], "video/mp4");
  EXPECT_EQ(clip.headers["accept-ranges"], "bytes");
  write_file(dir + "/clip.mp4", clip.body);
  EXPECT_EQ(run("ffmpeg -v error -xerror -i " + q(dir + "/clip.mp4") + " -f null -").rc, 0);
  const auto codes = frame_codes(dir + "/clip.mp4");
  ASSERT_GE(codes.size(), 75u);
  for (std::size_t i = 1; i < codes.size(); ++i) EXPECT_EQ(codes[i], (codes[i - 1] + 1) % 250) << i;
  const auto first_t = time_of(codes.front());
  const auto last_t = time_of(codes.back());
  EXPECT_LE(first_t, from + 1000);                // pre-roll from the keyframe...
  EXPECT_GE(first_t, from - 2'000'000 - 40'000);  // ...within one GOP (2 s)
  // Nothing after the range. The times here are estimates (a segment's span shared evenly by
  // its frames), a few ms off the real ones: a frame 40 ms past the end still fails.
  EXPECT_LT(last_t, to + 20'000);
  EXPECT_GE(last_t, to - 2 * 40'000);  // nothing of it missing
  // Range: the bytes of the whole answer; the same after the cache is dropped (deterministic).
  auto part = get(port, clip_path, "Range: bytes=1000-1999\r\n");
  EXPECT_EQ(part.status, 206);
  EXPECT_EQ(part.headers["content-range"], "bytes 1000-1999/" + std::to_string(clip.body.size()));
  EXPECT_EQ(part.body, clip.body.substr(1000, 1000));
  EXPECT_EQ(get(port, clip_path, "Range: bytes=99999999-\r\n").status, 416);
  for (const char* bad : {"bytes=--5", "bytes=1-2x", "bytes=x-3", "bytes=-0", "bytes=5-3"}) {
    EXPECT_EQ(get(port, clip_path, std::string("Range: ") + bad + "\r\n").status, 416) << bad;
  }
  // An end past the file is clamped to it.
  auto tail = get(port, clip_path, "Range: bytes=100-99999999999\r\n");
  EXPECT_EQ(tail.status, 206);
  EXPECT_EQ(tail.headers["content-range"], "bytes 100-" + std::to_string(clip.body.size() - 1) +
                                               "/" + std::to_string(clip.body.size()));
  EXPECT_EQ(
      http_post(
          port, "/api/holds",
          json{
              {"cameras", json::array()}, {"from", iso(from)}, {"to", iso(to)}, {"reason", "empty"}}
              .dump())
          .status,
      400);
  fs::remove_all(dir + "/var/cache");
  EXPECT_TRUE(get(port, clip_path).body == clip.body) << "a re-muxed clip differs";
  EXPECT_EQ(get(port, "/api/cameras/rec-h264/clip.mp4?from=" + iso(to) + "&to=" + iso(from)).status,
            400);
  EXPECT_EQ(get(port, "/api/cameras/nope/clip.mp4?from=" + iso(from) + "&to=" + iso(to)).status,
            404);
  // H.265 main: the browser gets the H.264 sub stream unless it asks for main.
  const auto h265_path = "/api/cameras/rec-h265/clip.mp4?from=" + iso(from) + "&to=" + iso(to);
  auto auto_clip = get(port, h265_path);
  ASSERT_EQ(auto_clip.status, 200);
  EXPECT_EQ(auto_clip.headers["x-matthan-stream"], "sub");
  write_file(dir + "/h265-auto.mp4", auto_clip.body);
  EXPECT_EQ(run("ffprobe -v error -select_streams v -show_entries stream=codec_name -of csv=p=0 " +
                q(dir + "/h265-auto.mp4"))
                .out,
            "h264\n");
  write_file(dir + "/h265-main.mp4", get(port, h265_path + "&stream=main").body);
  EXPECT_EQ(run("ffprobe -v error -select_streams v -show_entries stream=codec_name -of csv=p=0 " +
                q(dir + "/h265-main.mp4"))
                .out,
            "hevc\n");
  // Without an H.264 sub stream: the main stream converted (bounded), every frame kept.
  auto converted = get(port, h265_path + "&stream=main&transcode=1");
  ASSERT_EQ(converted.status, 200) << converted.body.substr(0, 300);
  EXPECT_EQ(converted.headers["x-matthan-transcoded"], "h265-to-h264");
  write_file(dir + "/h265-h264.mp4", converted.body);
  EXPECT_EQ(run("ffprobe -v error -select_streams v -show_entries stream=codec_name,height -of "
                "csv=p=0 " +
                q(dir + "/h265-h264.mp4"))
                .out,
            "h264,720\n");
  // Every frame but at most one (a frame is sometimes missing at the end: see the issue note).
  EXPECT_NEAR(static_cast<double>(frame_codes(dir + "/h265-h264.mp4").size()),
              static_cast<double>(frame_codes(dir + "/h265-main.mp4").size()), 1.0);
  EXPECT_EQ(json::parse(http_get(port, "/api/storage").body)["transcoder"]["runs"], 1);

  // --- Export with the CLI while the server records.
  const std::string out = dir + "/export";
  const auto exported =
      run(bin + " export --config " + q(cfg) + " --camera rec-h264,rec-h265 --from " + iso(from) +
          " --to " + iso(to) +
          " --reason 'Vụ trộm xe máy' --unit 'Công an xã An Phú' --officer 'Nguyễn Văn A' --out " +
          q(out));
  ASSERT_EQ(exported.rc, 0) << exported.out;
  EXPECT_NE(exported.out.find("100%"), std::string::npos) << "no progress shown";
  EXPECT_EQ(run("cd " + q(out) + " && sha256sum -c SHA256SUMS").rc, 0);
  json manifest = json::parse(read_file(out + "/manifest.json"));
  EXPECT_EQ(manifest["reason"], "Vụ trộm xe máy");
  // The audit chain's head at the export, so the log can later be shown unchanged since.
  EXPECT_GT(manifest["audit_chain_head"]["seq"].get<std::int64_t>(), 0) << manifest.dump();
  EXPECT_EQ(manifest["audit_chain_head"]["hash"].get<std::string>().size(), 64u);
  EXPECT_EQ(manifest["requested"]["from"], iso(from));
  ASSERT_EQ(manifest["cameras"].size(), 2u);
  for (const auto& c : manifest["cameras"]) {
    SCOPED_TRACE(c["id"].get<std::string>());
    const std::string file = out + "/" + c["file"].get<std::string>();
    EXPECT_EQ(run("ffmpeg -v error -xerror -i " + q(file) + " -f null -").rc, 0);
    EXPECT_EQ(
        run("ffprobe -v error -select_streams s -show_entries stream=codec_name -of csv=p=0 " +
            q(file))
            .out,
        "mov_text\n");
    EXPECT_LE(c["first_frame"].get<std::string>(), iso(from));
    EXPECT_FALSE(c["covered"].empty());
    EXPECT_TRUE(c["gaps"].empty()) << c["gaps"].dump();
  }
  // The time track shows the server's local time (UTC+7) of the first frame.
  const auto srt =
      run("ffmpeg -v error -i " + q(out + "/rec-h264.mp4") + " -map 0:s:0 -f srt -").out;
  const std::time_t first_local = static_cast<std::time_t>(first_t / 1'000'000 + 7 * 3600);
  std::tm tm{};
  gmtime_r(&first_local, &tm);
  char expect[40];
  std::strftime(expect, sizeof expect, "%Y-%m-%d %H:%M:%S +0700", &tm);
  EXPECT_NE(srt.find(expect), std::string::npos) << expect << " not in\n" << srt.substr(0, 300);
  // Verify: OK; one flipped byte → FAIL naming the file; restored → OK.
  auto verified = run(bin + " verify-export " + q(out) + " --config " + q(cfg));
  EXPECT_EQ(verified.rc, 0) << verified.out;
  EXPECT_NE(verified.out.find("OK: export"), std::string::npos);
  const std::string victim = out + "/rec-h265.mp4";
  std::string bytes = read_file(victim);
  bytes[bytes.size() / 2] = static_cast<char>(bytes[bytes.size() / 2] ^ 0x01);
  write_file(victim, bytes);
  verified = run(bin + " verify-export " + q(out));
  EXPECT_EQ(verified.rc, 1);
  EXPECT_NE(verified.out.find("FAIL  rec-h265.mp4"), std::string::npos) << verified.out;
  EXPECT_NE(run("cd " + q(out) + " && sha256sum -c SHA256SUMS").rc, 0);
  bytes[bytes.size() / 2] = static_cast<char>(bytes[bytes.size() / 2] ^ 0x01);
  write_file(victim, bytes);
  // An edited manifest (even with its hash line fixed) fails on the signature.
  const std::string manifest_text = read_file(out + "/manifest.json");
  std::string forged = manifest_text;
  forged.replace(forged.find("Vụ trộm"), std::string("Vụ trộm").size(), "Vụ cướp");
  write_file(out + "/manifest.json", forged);
  verified = run(bin + " verify-export " + q(out));
  EXPECT_EQ(verified.rc, 1);
  EXPECT_NE(verified.out.find("FAIL  manifest.json.sig"), std::string::npos) << verified.out;
  // A crafted manifest (no key, wrong types) is a FAIL, not a crash.
  write_file(out + "/manifest.json", R"({"cameras": [{"file": 5}], "signing_key": 3})");
  verified = run(bin + " verify-export " + q(out));
  EXPECT_EQ(verified.rc, 1) << verified.out;
  EXPECT_NE(verified.out.find("FAIL"), std::string::npos) << verified.out;
  write_file(out + "/manifest.json", manifest_text);
  EXPECT_EQ(run(bin + " verify-export " + q(out)).rc, 0);

  // --- matthan tune over stored recordings: the person walking through rec-h264's scene.
  const auto tuned =
      run(bin + " tune --config " + q(cfg) + " --camera rec-h264 --from " +
          iso(mine.front().start_us) + " --to " + iso(mine.back().end_us) + " --json");
  ASSERT_EQ(tuned.rc, 0) << tuned.out;
  const auto tune_json = json::parse(tuned.out.substr(tuned.out.find('{')));
  EXPECT_GE(tune_json["frames_analysed"].get<int>(), 40);
  EXPECT_GE(tune_json["events"].size(), 1u) << tuned.out;

  // --- The API: the hold the export made, the job, the key, the audit chain.
  const std::string id = manifest["export_id"];
  const auto holds = json::parse(http_get(port, "/api/holds").body)["holds"];
  bool held = false;
  for (const auto& h : holds) held = held || (h["export_id"] == id && h["from"] == iso(from));
  EXPECT_TRUE(held) << holds.dump();
  const auto job = json::parse(http_get(port, "/api/exports/" + id).body);
  EXPECT_EQ(job["state"], "done");
  EXPECT_EQ(job["progress"], 1.0);
  EXPECT_EQ(job["requesting_unit"], "Công an xã An Phú");
  const auto key = json::parse(http_get(port, "/api/node/key").body);
  EXPECT_EQ(key["fingerprint"], manifest["signing_key"]["fingerprint"]);
  const auto audit = json::parse(http_get(port, "/api/audit").body);
  EXPECT_TRUE(audit["chain_ok"].get<bool>());
  std::set<std::string> actions;
  for (const auto& a : audit["entries"]) actions.insert(a["action"]);
  for (const char* a : {"export", "hold", "clip_view"}) EXPECT_TRUE(actions.contains(a)) << a;
  // The printable extraction record (biên bản): the files' and the manifest's hashes and the
  // node key's fingerprint, as pdftotext reads them out of the PDF.
  {
    const auto record =
        http_request(port, "GET", "/api/exports/" + id + "/record?format=pdf", default_headers());
    ASSERT_EQ(record.status, 200) << record.body;
    ASSERT_EQ(record.body.substr(0, 5), "%PDF-");
    std::ofstream(dir + "/record.pdf", std::ios::binary) << record.body;
    const auto text = run("pdftotext -layout " + q(dir + "/record.pdf") + " -").out;
    EXPECT_NE(text.find("BIÊN BẢN TRÍCH XUẤT DỮ LIỆU CAMERA"), std::string::npos) << text;
    EXPECT_NE(text.find("Công an xã An Phú"), std::string::npos) << text;
    for (const auto& c : manifest["cameras"]) {
      if (c.contains("sha256")) {
        EXPECT_NE(text.find(c["sha256"].get<std::string>()), std::string::npos) << text;
      }
    }
    EXPECT_NE(text.find(job["manifest_sha256"].get<std::string>()), std::string::npos) << text;
    EXPECT_NE(text.find(manifest["signing_key"]["fingerprint"].get<std::string>()),
              std::string::npos)
        << text;
    EXPECT_NE(text.find("NGƯỜI TRÍCH XUẤT"), std::string::npos) << text;
    const auto html =
        http_request(port, "GET", "/api/exports/" + id + "/record", default_headers());
    EXPECT_EQ(html.status, 200);
    EXPECT_NE(html.body.find("<h1>BIÊN BẢN TRÍCH XUẤT DỮ LIỆU CAMERA</h1>"), std::string::npos);
  }
  // An export through the API, followed to the end by its progress.
  const auto api_export = [&](const std::string& reason) {
    const auto posted = http_raw(port, [&] {
      const std::string body = json{
          {"cameras", {"rec-h264"}},
          {"from", iso(from)},
          {"to", iso(to)},
          {"reason", reason}}.dump();
      return "POST /api/exports HTTP/1.1\r\nHost: x\r\nContent-Type: "
             "application/json\r\nContent-Length: " +
             std::to_string(body.size()) + "\r\n" + default_headers() +
             "Connection: close\r\n\r\n" + body;
    }());
    EXPECT_NE(posted.find(" 202 "), std::string::npos) << posted;
    if (posted.find(" 202 ") == std::string::npos) return std::pair<std::string, json>{};
    const std::string api_id = json::parse(posted.substr(posted.find("\r\n\r\n") + 4))["id"];
    json api_job;
    for (int i = 0; i < 100; ++i) {
      api_job = json::parse(http_get(port, "/api/exports/" + api_id).body);
      if (api_job["state"] != "running") break;
      std::this_thread::sleep_for(100ms);
    }
    return std::pair{api_id, api_job};
  };
  const auto [api_id, api_job] = api_export("API");
  ASSERT_FALSE(api_id.empty());
  EXPECT_EQ(api_job["state"], "done") << api_job.dump();
  EXPECT_EQ(run(bin + " verify-export " + q(dir + "/var/exports/" + api_id)).rc, 0);
  // Exports one after another on a long-running server: each finished export's thread is
  // reaped, so its stack is reused rather than kept mapped until shutdown.
  const auto vm_kb = [&] {
    std::ifstream status("/proc/" + std::to_string(server->pid()) + "/status");
    for (std::string line; std::getline(status, line);) {
      if (line.starts_with("VmSize:")) return std::stol(line.substr(7));
    }
    return 0L;
  };
  rlimit stack{};
  getrlimit(RLIMIT_STACK, &stack);
  const long stack_kb =
      stack.rlim_cur == RLIM_INFINITY ? 2048 : static_cast<long>(stack.rlim_cur / 1024);
  const long vm_before = vm_kb();
  for (int i = 0; i < 10; ++i) {
    EXPECT_EQ(api_export("API " + std::to_string(i)).second["state"], "done");
  }
  // Measured: +6 MB with reaping (allocator), +39 MB for six exports without it.
  EXPECT_LT(vm_kb() - vm_before, 4 * stack_kb + 8192)
      << "ten finished exports kept their threads' stacks (" << stack_kb << " KB each)";

  // --- Backup while running; restore into an empty data dir; the old export verifies there.
  const auto backup = run(bin + " backup --config " + q(cfg) + " " + q(dir + "/backup"));
  ASSERT_EQ(backup.rc, 0) << backup.out;
  EXPECT_EQ(server->signal_and_wait(SIGTERM, 20s), 0);
  server.reset();
  const std::string cfg2 = dir + "/restored.yaml";
  write_config(cfg2, dir + "/var2", base, "{segment_s: 4}");
  const auto restored = run(bin + " restore --config " + q(cfg2) + " " + q(dir + "/backup"));
  ASSERT_EQ(restored.rc, 0) << restored.out;
  verified = run(bin + " verify-export " + q(out) + " --config " + q(cfg2));
  EXPECT_EQ(verified.rc, 0) << verified.out;
  EXPECT_NE(verified.out.find("this node's key"), std::string::npos);
  EXPECT_EQ(
      count_rows(dir + "/var2/matthan.db",
                 "SELECT COUNT(*) FROM export_job WHERE state = 'done' AND id = '" + id + "'"),
      1);
  EXPECT_EQ(
      count_rows(dir + "/var2/matthan.db", "SELECT COUNT(*) FROM audit WHERE action = 'restore'"),
      1);
  // A second restore must not overwrite the node.
  EXPECT_NE(run(bin + " restore --config " + q(cfg2) + " " + q(dir + "/backup")).rc, 0);
  if (!HasFailure()) fs::remove_all(dir);
}

// Disk pressure on a real small volume (a 16 MiB tmpfs): the oldest unheld footage goes first,
// held footage stays byte for byte, and when only held footage is left the server raises
// storage_alarm and stops recording instead of deleting evidence — and resumes once a hold is
// released and space returns.
TEST(EvidenceIntegration, RetentionKeepsHeldFootageOnAFullDisk) {
  const std::string dir = temp_dir("matthan-retention-it");
  const std::string vol = dir + "/vol";
  fs::create_directories(vol);
  if (run("mount -t tmpfs -o size=16m matthan-test " + q(vol)).rc != 0) {
    GTEST_SKIP() << "cannot mount a tmpfs here (needs root)";
  }
  struct Unmount {
    std::string path;
    ~Unmount() { run("umount " + q(path)); }
  } unmount{vol};
  std::string base;
  const auto camsim = start_camsim(dir, &base);
  ASSERT_FALSE(base.empty()) << read_file(dir + "/camsim.log");
  const std::string cfg = dir + "/matthan.yaml";
  write_config(cfg, dir + "/var", base,
               "{segment_s: 2, dir: '" + vol + "', min_free_mb: 6, retention_interval_s: 1}");
  const std::string bin = binary_path("matthan");
  const std::string db = dir + "/var/matthan.db";
  ChildProcess server({bin, "run", "--config", cfg}, dir + "/server.log");
  const int port = port_of(server);
  ASSERT_GT(port, 0) << read_file(dir + "/server.log");
  ASSERT_EQ(login_admin(port, cfg), "");
  // Phase 1: hold rec-h264's second segment; wait until the first is deleted.
  std::vector<Seg> h264;
  for (int i = 0; i < 40 && h264.size() < 2; ++i) {
    std::this_thread::sleep_for(500ms);
    h264.clear();
    for (const auto& s : segments(db)) {
      if (s.camera == "rec-h264" && s.state == "complete") h264.push_back(s);
    }
  }
  ASSERT_GE(h264.size(), 2u);
  const Seg first = h264[0], held = h264[1];
  const std::string held_sha = run("sha256sum " + q(held.path)).out.substr(0, 64);
  const auto hold = run(bin + " hold --config " + q(cfg) + " --camera rec-h264 --from " +
                        iso(held.start_us + 100'000) + " --to " + iso(held.end_us - 100'000) +
                        " --reason 'Vụ việc 12/2026'");
  ASSERT_EQ(hold.rc, 0) << hold.out;
  const auto snapshot = segments(db);
  bool first_gone = false;
  for (int i = 0; i < 90 && !first_gone; ++i) {
    std::this_thread::sleep_for(1s);
    first_gone = true;
    for (const auto& s : segments(db)) first_gone = first_gone && s.path != first.path;
  }
  ASSERT_TRUE(first_gone) << "retention never freed space:\n"
                          << read_file(dir + "/var/matthan.log");
  EXPECT_FALSE(fs::exists(first.path));
  ASSERT_TRUE(fs::exists(held.path)) << "held footage was deleted";
  EXPECT_EQ(run("sha256sum " + q(held.path)).out.substr(0, 64), held_sha);
  // Oldest first: everything deleted started no later than anything unheld that is left.
  const auto now_rows = segments(db);
  std::set<std::string> present;
  for (const auto& s : now_rows) present.insert(s.path);
  std::int64_t newest_deleted = 0;
  for (const auto& s : snapshot) {
    if (!present.contains(s.path)) newest_deleted = std::max(newest_deleted, s.start_us);
  }
  for (const auto& s : now_rows) {
    if (s.path != held.path && s.state == "complete") {
      EXPECT_GE(s.start_us, newest_deleted) << s.path;
    }
  }
  EXPECT_EQ(http_get(port, "/healthz").status, 200);

  // Phase 2: hold everything; the volume fills with evidence → storage_alarm, recording stops.
  const auto all =
      run(bin + " hold --config " + q(cfg) + " --camera rec-h264 --camera rec-h265 --from " +
          iso(first.start_us - 3'600'000'000LL) + " --to " + iso(first.start_us + 3'600'000'000LL) +
          " --reason 'all'");
  ASSERT_EQ(all.rc, 0) << all.out;
  const std::string all_id = all.out.substr(0, all.out.find('\n'));
  const auto at_hold = segments(db);
  json health;
  for (int i = 0; i < 60; ++i) {
    health = json::parse(http_get(port, "/healthz").body);
    if (!health["storage_alarm"].is_null()) break;
    std::this_thread::sleep_for(1s);
  }
  ASSERT_FALSE(health["storage_alarm"].is_null()) << read_file(dir + "/var/matthan.log");
  const auto storage = json::parse(http_get(port, "/api/storage").body);
  EXPECT_TRUE(storage["recording_paused"].get<bool>()) << storage.dump();
  EXPECT_GT(storage["held_bytes"].get<std::int64_t>(), 0);
  for (const auto& s : at_hold) {
    if (s.state == "complete") {
      EXPECT_TRUE(fs::exists(s.path)) << "held " << s.path << " deleted";
    }
  }
  for (int i = 0;
       i < 20 && count_rows(db, "SELECT COUNT(*) FROM event WHERE type = 'storage_alarm'") < 1; ++i)
    std::this_thread::sleep_for(500ms);
  EXPECT_EQ(count_rows(db, "SELECT COUNT(*) FROM event WHERE type = 'storage_alarm'"), 1);
  EXPECT_NE(read_file(dir + "/var/matthan.log").find("storage alarm"), std::string::npos);

  // Phase 3: the hold is released: space returns and recording resumes by itself.
  ASSERT_EQ(run(bin + " hold --config " + q(cfg) + " --release " + all_id).rc, 0);
  for (int i = 0; i < 60; ++i) {
    health = json::parse(http_get(port, "/healthz").body);
    if (health["storage_alarm"].is_null()) break;
    std::this_thread::sleep_for(1s);
  }
  EXPECT_TRUE(health["storage_alarm"].is_null());
  // A segment that started after the alarm cleared (retention keeps deleting old ones, so a
  // row count says nothing).
  const std::int64_t cleared = std::chrono::duration_cast<std::chrono::microseconds>(
                                   std::chrono::system_clock::now().time_since_epoch())
                                   .count();
  int resumed = 0;
  for (int i = 0; i < 20 && resumed == 0; ++i) {
    std::this_thread::sleep_for(500ms);
    resumed = count_rows(
        db, "SELECT COUNT(*) FROM segment WHERE start_us > " + std::to_string(cleared - 1'000'000));
  }
  EXPECT_GE(resumed, 1) << "recording did not resume";
  EXPECT_TRUE(fs::exists(held.path));
  EXPECT_EQ(run("sha256sum " + q(held.path)).out.substr(0, 64), held_sha);
  EXPECT_EQ(server.signal_and_wait(SIGTERM, 20s), 0);
  if (!HasFailure()) fs::remove_all(dir + "/var");
}

// A disk that fills up under the recorder (another program's file, so retention cannot help) and
// then turns read-only (ext4 taking itself read-only after an error, as a failing disk does):
// no crash, the alarm says which, the cut segment decodes up to its last whole fragment and is
// indexed as such, held footage is untouched, and recording resumes by itself once space
// returns and once the disk is mounted again.
TEST(EvidenceIntegration, ADiskThatFillsOrTurnsReadOnlyUnderTheRecorder) {
  const std::string dir = temp_dir("matthan-disk-it");
  const std::string img = dir + "/disk.img", vol = dir + "/vol";
  fs::create_directories(vol);
  if (run("truncate -s 48M " + q(img) + " && mkfs.ext4 -q " + q(img)).rc != 0 ||
      run("mount -o loop,errors=remount-ro " + q(img) + " " + q(vol)).rc != 0) {
    GTEST_SKIP() << "cannot mount an ext4 image here (needs root and loop devices)";
  }
  struct Unmount {
    std::string path;
    ~Unmount() { run("umount -l " + q(path)); }
  } unmount{vol};
  std::string source = run("findmnt -n -o SOURCE " + q(vol)).out;
  source.erase(source.find_last_not_of(" \n") + 1);
  const std::string dev = fs::path(source).filename().string();  // loop0: /sys/fs/ext4/loop0
  std::string base;
  const auto camsim = start_camsim(dir, &base);
  ASSERT_FALSE(base.empty()) << read_file(dir + "/camsim.log");
  const std::string cfg = dir + "/matthan.yaml";
  // No free-space floor: the volume really runs out (the recorder keeps 2 MiB itself).
  write_config(cfg, dir + "/var", base,
               "{segment_s: 2, dir: '" + vol + "', min_free_mb: 0, retention_interval_s: 1}");
  const std::string bin = binary_path("matthan");
  const std::string db = dir + "/var/matthan.db";
  ChildProcess server({bin, "run", "--config", cfg}, dir + "/server.log");
  const int port = port_of(server);
  ASSERT_GT(port, 0) << read_file(dir + "/server.log");
  ASSERT_EQ(login_admin(port, cfg), "");
  auto complete = [&](const std::string& cam) {
    std::vector<Seg> out;
    for (const auto& s : segments(db)) {
      if (s.camera == cam && s.state == "complete") out.push_back(s);
    }
    return out;
  };
  for (int i = 0; i < 40 && complete("rec-h264").size() < 2; ++i)
    std::this_thread::sleep_for(500ms);
  ASSERT_GE(complete("rec-h264").size(), 2u);
  const Seg held = complete("rec-h264")[0];
  const std::string held_sha = run("sha256sum " + q(held.path)).out.substr(0, 64);
  ASSERT_EQ(run(bin + " hold --config " + q(cfg) + " --camera rec-h264 --from " +
                iso(held.start_us + 100'000) + " --to " + iso(held.end_us - 100'000) +
                " --reason 'Vụ việc 7/2026'")
                .rc,
            0);
  auto health = [&] { return json::parse(http_get(port, "/healthz").body); };
  auto alarm_kind = [&] {
    const auto st = json::parse(http_get(port, "/api/storage").body);
    return st.value("alarm_kind", json()).is_string() ? st["alarm_kind"].get<std::string>() : "";
  };
  auto camera = [&](const std::string& id) {
    const auto list = json::parse(http_get(port, "/api/cameras").body);
    for (const auto& c : list["cameras"]) {
      if (c["id"] == id) return c;
    }
    return json();
  };
  auto wait_for = [&](const std::function<bool()>& done, int seconds) {
    for (int i = 0; i < seconds * 2; ++i) {
      if (done()) return true;
      std::this_thread::sleep_for(500ms);
    }
    return false;
  };

  // Phase 1: another program fills the disk. Writes fail with ENOSPC.
  run("dd if=/dev/zero of=" + q(vol + "/filler") + " bs=1M 2>/dev/null; sync");
  ASSERT_TRUE(wait_for([&] { return alarm_kind() == "volume_full"; }, 30))
      << read_file(dir + "/var/matthan.log");
  EXPECT_TRUE(health()["storage_alarm"].is_string());
  // Each camera's recorder says so as soon as its next fragment fails.
  EXPECT_TRUE(wait_for(
      [&] {
        return camera("rec-h264")["recording"].value("failing", false) &&
               camera("rec-h265")["recording"].value("failing", false);
      },
      10));
  const auto cam = camera("rec-h264");
  ASSERT_TRUE(cam.is_object()) << http_get(port, "/api/cameras").body;
  EXPECT_TRUE(cam["recording"]["failing"].get<bool>()) << cam.dump();
  EXPECT_NE(cam["recording"]["last_error"].get<std::string>().find("retried every"),
            std::string::npos)
      << cam.dump();
  EXPECT_EQ(count_rows(db,
                       "SELECT COUNT(*) FROM event WHERE type = 'storage_alarm' AND label = "
                       "'volume_full'"),
            1);
  // Every file on the volume decodes without an error and holds exactly the frames indexed
  // (a segment cut short by the failed write is 'recovered': its whole fragments).
  auto check_files = [&] {
    for (const auto& s : segments(db)) {
      if (s.state == "open" || !fs::exists(s.path)) continue;
      SCOPED_TRACE(s.path + " " + s.state);
      // A segment that could not write even its first fragment holds nothing and says so.
      if (s.state == "unreadable") {
        EXPECT_EQ(s.frames, 0);
        continue;
      }
      EXPECT_EQ(run("ffmpeg -v error -xerror -i " + q(s.path) + " -f null - 2>&1").rc, 0);
      EXPECT_EQ(static_cast<std::int64_t>(frame_codes(s.path).size()), s.frames);
    }
  };
  check_files();
  EXPECT_EQ(http_get(port, "/healthz").status, 200);
  // Space returns: recording resumes by itself, the alarm clears.
  fs::remove(vol + "/filler");
  const std::int64_t freed = std::chrono::duration_cast<std::chrono::microseconds>(
                                 std::chrono::system_clock::now().time_since_epoch())
                                 .count();
  EXPECT_TRUE(wait_for([&] { return alarm_kind().empty(); }, 30))
      << read_file(dir + "/var/matthan.log");
  EXPECT_TRUE(wait_for(
      [&] {
        return count_rows(db,
                          "SELECT COUNT(*) FROM segment WHERE camera_id = 'rec-h264' AND "
                          "start_us > " +
                              std::to_string(freed)) > 0;
      },
      30))
      << "recording did not resume after space returned";
  EXPECT_NE(read_file(dir + "/var/matthan.log").find("recording resumed"), std::string::npos);

  // Phase 2: the disk turns read-only under the recorder (ext4's own reaction to an error).
  std::this_thread::sleep_for(3s);
  ASSERT_EQ(run("echo 1 > /sys/fs/ext4/" + dev + "/trigger_fs_error").rc, 0) << dev;
  ASSERT_TRUE(wait_for([&] { return alarm_kind() == "volume_read_only"; }, 30))
      << read_file(dir + "/var/matthan.log");
  EXPECT_EQ(http_get(port, "/healthz").status, 200);
  EXPECT_EQ(run("sha256sum " + q(held.path)).out.substr(0, 64), held_sha);
  // One camera goes away while its writes fail: it keeps saying so, but must not hold the
  // volume's alarm once the other camera writes again.
  ASSERT_TRUE(
      wait_for([&] { return camera("rec-h265")["recording"].value("failing", false); }, 10));
  ASSERT_TRUE(camsim->write_line("stop rec-h265"));
  ASSERT_TRUE(wait_for([&] { return camera("rec-h265")["state"] != "online"; }, 30));
  // The administrator checks and remounts the disk: recording resumes by itself.
  ASSERT_EQ(run("umount " + q(vol) + " || umount -l " + q(vol)).rc, 0);
  EXPECT_LE(run("e2fsck -fy " + q(img) + " >/dev/null 2>&1").rc, 1);
  ASSERT_EQ(run("mount -o loop,errors=remount-ro " + q(img) + " " + q(vol)).rc, 0);
  const std::int64_t remounted = std::chrono::duration_cast<std::chrono::microseconds>(
                                     std::chrono::system_clock::now().time_since_epoch())
                                     .count();
  EXPECT_TRUE(wait_for([&] { return alarm_kind().empty(); }, 30))
      << read_file(dir + "/var/matthan.log");
  EXPECT_TRUE(wait_for(
      [&] {
        return count_rows(db,
                          "SELECT COUNT(*) FROM segment WHERE camera_id = 'rec-h264' AND "
                          "state = 'complete' AND start_us > " +
                              std::to_string(remounted)) > 0;
      },
      30))
      << "recording did not resume after the remount";
  EXPECT_EQ(run("sha256sum " + q(held.path)).out.substr(0, 64), held_sha);
  EXPECT_EQ(server.signal_and_wait(SIGTERM, 20s), 0);
  check_files();
  EXPECT_EQ(count_rows(db,
                       "SELECT COUNT(*) FROM event WHERE type = 'storage_alarm' AND label = "
                       "'volume_read_only'"),
            1);
  if (!HasFailure()) fs::remove_all(dir + "/var");
}

}  // namespace
}  // namespace matthan::test
