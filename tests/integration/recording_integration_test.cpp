// Recording end to end: the real server records the simulator's H.264 and H.265 main streams
// over RTSP into segments that decode cleanly, hold exactly the frames indexed, and together
// contain every frame the simulator sent, in order (checked with the burned-in frame indices,
// not with the server's own index).
#include <gtest/gtest.h>
#include <signal.h>
#include <sqlite3.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <random>
#include <sstream>
#include <thread>
#include <tuple>

#include "child_process.hpp"
#include "matthan/camsim/frame_code.hpp"
#include "matthan/ingest/clip_reader.hpp"

#ifndef MATTHAN_SOURCE_DIR
#error "MATTHAN_SOURCE_DIR must be defined"
#endif

namespace matthan::test {
namespace {

using namespace std::chrono_literals;

struct Row {
  std::string camera, path, state, codec;
  std::int64_t start_us = 0, end_us = 0, frames = 0, bytes = 0;
};

std::vector<Row> segments(const std::string& db_path) {
  sqlite3* db = nullptr;
  sqlite3_open_v2(db_path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr);
  sqlite3_stmt* st = nullptr;
  sqlite3_prepare_v2(db,
                     "SELECT camera_id, path, state, codec, start_us, end_us, frames, bytes"
                     " FROM segment ORDER BY camera_id, start_us",
                     -1, &st, nullptr);
  std::vector<Row> out;
  auto text = [&](int c) {
    return std::string(reinterpret_cast<const char*>(sqlite3_column_text(st, c)));
  };
  while (sqlite3_step(st) == SQLITE_ROW) {
    out.push_back({text(0), text(1), text(2), text(3), sqlite3_column_int64(st, 4),
                   sqlite3_column_int64(st, 5), sqlite3_column_int64(st, 6),
                   sqlite3_column_int64(st, 7)});
  }
  sqlite3_finalize(st);
  sqlite3_close(db);
  return out;
}

// When the server's log (stderr) says the camera's main stream came online, µs UTC.
std::optional<std::int64_t> online_at(const std::string& log, const std::string& camera) {
  std::istringstream in(read_file(log));
  const std::string what = "camera " + camera + " main: online";
  for (std::string line; std::getline(in, line);) {
    std::tm tm{};
    int us = 0;
    if (line.find(what) == std::string::npos ||
        std::sscanf(line.c_str(), "%d-%d-%dT%d:%d:%d.%dZ", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
                    &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &us) != 7) {
      continue;
    }
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    return std::int64_t{timegm(&tm)} * 1'000'000 + us;
  }
  return std::nullopt;
}

// The simulator serving tests/scenarios/recording.yaml (H.264 and H.265 cameras).
std::unique_ptr<ChildProcess> start_camsim(const std::string& dir) {
  return std::make_unique<ChildProcess>(
      std::vector<std::string>{binary_path("matthan-camsim"), "--scenario",
                               std::string(MATTHAN_SOURCE_DIR) + "/tests/scenarios/recording.yaml",
                               "--cache", dir + "/../matthan-it-cache"},
      dir + "/camsim.log");
}

TEST(RecordingIntegration, SegmentsHoldEveryFrameTheCameraSentInOrder) {
  const std::string dir = temp_dir("matthan-rec-it");
  const auto camsim = start_camsim(dir);
  const auto line = camsim->wait_for_line("CAMSIM ", 300s);
  ASSERT_TRUE(line.has_value()) << read_file(dir + "/camsim.log");
  const std::string base = line->substr(7);
  {
    std::ofstream cfg(dir + "/matthan.yaml");
    cfg << "node_id: rec-node\nserver: {listen: '127.0.0.1:0', data_dir: '" << dir << "/var'}\n"
        << "analytics: {zmq_endpoint: '', people: false}\n"
        << "recording: {segment_s: 4}\ncameras:\n";
    for (const char* id : {"rec-h264", "rec-h265"}) {
      cfg << "  - {id: " << id << ", main_url: '" << base << "/" << id << "/main', sub_url: '"
          << base << "/" << id << "/sub'}\n";
    }
  }
  ChildProcess server({binary_path("matthan"), "run", "--config", dir + "/matthan.yaml"},
                      dir + "/server.log");
  ASSERT_TRUE(server.wait_for_line("LISTENING ", 20s).has_value())
      << read_file(dir + "/server.log");
  std::this_thread::sleep_for(15s);
  EXPECT_EQ(server.signal_and_wait(SIGTERM, 15s), 0) << read_file(dir + "/var/matthan.log");

  const auto rows = segments(dir + "/var/matthan.db");
  for (const std::string cam : {"rec-h264", "rec-h265"}) {
    SCOPED_TRACE(cam);
    std::vector<Row> mine;
    for (const auto& r : rows) {
      if (r.camera == cam) mine.push_back(r);
    }
    // 15 s cut every 4 s at keyframes (2 s GOP): at least 3 segments, all closed.
    ASSERT_GE(mine.size(), 3u);
    std::int64_t total = 0;
    std::optional<std::uint32_t> previous_last;
    for (std::size_t k = 0; k < mine.size(); ++k) {
      const auto& r = mine[k];
      SCOPED_TRACE(r.path);
      EXPECT_EQ(r.state, "complete");
      EXPECT_EQ(r.codec, cam == "rec-h264" ? "h264" : "h265");
      EXPECT_EQ(r.bytes, static_cast<std::int64_t>(std::filesystem::file_size(r.path)));
      if (k > 0) {
        // One unbroken connection: each segment starts where the last ended (±1 frame of
        // smoothing), never overlapping.
        EXPECT_NEAR(static_cast<double>(r.start_us - mine[k - 1].end_us), 0.0, 45'000.0);
      }
      // Decode every frame through the ingest decoder and read the simulator's frame index.
      std::vector<std::uint32_t> codes;
      auto read = ingest::read_clip(r.path, cam, 0, 0, [&](const LumaFrame& f) {
        const auto c = camsim::read_frame_code(f.pixels(), f.stride, f.width, f.height);
        codes.push_back(c.value_or(0xFFFFFFFF));
      });
      ASSERT_TRUE(read.has_value()) << read.error();
      EXPECT_EQ(static_cast<std::int64_t>(codes.size()), r.frames);
      // The indexed interval is the decoded duration, within a frame (25 fps).
      EXPECT_NEAR(static_cast<double>(r.end_us - r.start_us), r.frames * 40'000.0, 40'000.0);
      total += r.frames;
      // Every frame, in order: the index steps by one (modulo the 250-frame loop), also across
      // the boundary from the previous segment.
      int breaks = 0;
      for (std::size_t i = 0; i < codes.size(); ++i) {
        const std::optional<std::uint32_t> before =
            i > 0 ? std::optional<std::uint32_t>(codes[i - 1]) : previous_last;
        if (before && codes[i] != (*before + 1) % 250) ++breaks;
      }
      std::string listing;
      for (std::size_t i = 0; i < std::min<std::size_t>(codes.size(), 8); ++i)
        listing += std::to_string(codes[i]) + " ";
      EXPECT_EQ(breaks, 0) << "frame indices jump inside or before this segment: " << listing;
      if (!codes.empty()) previous_last = codes.back();
    }
    // ~15 s at 25 fps minus connection set-up and the first GOP.
    EXPECT_GE(total, 250);
  }
  if (!HasFailure()) std::filesystem::remove_all(dir);
}

// kill -9 while recording: on restart the segment the crash cut short is finished from its file
// (up to its last complete fragment), a file the index never heard of is indexed, nothing is
// left `open`, and the database is intact.
TEST(RecordingIntegration, ACrashLeavesNothingOpenAndLosesOnlyTheLastFragment) {
  const std::string dir = temp_dir("matthan-rec-crash");
  const auto camsim = start_camsim(dir);
  const auto line = camsim->wait_for_line("CAMSIM ", 300s);
  ASSERT_TRUE(line.has_value()) << read_file(dir + "/camsim.log");
  {
    std::ofstream cfg(dir + "/matthan.yaml");
    cfg << "node_id: rec-node\nserver: {listen: '127.0.0.1:0', data_dir: '" << dir << "/var'}\n"
        << "analytics: {zmq_endpoint: '', people: false}\nrecording: {segment_s: 60}\n"
        << "cameras:\n  - {id: rec-h264, main_url: '" << line->substr(7)
        << "/rec-h264/main', sub_url: '" << line->substr(7) << "/rec-h264/sub'}\n";
  }
  const std::vector<std::string> argv{binary_path("matthan"), "run", "--config",
                                      dir + "/matthan.yaml"};
  {
    ChildProcess server(argv, dir + "/server1.log");
    ASSERT_TRUE(server.wait_for_line("LISTENING ", 20s).has_value());
    std::this_thread::sleep_for(7s);
    server.signal_and_wait(SIGKILL, 5s);
  }
  auto before = segments(dir + "/var/matthan.db");
  ASSERT_EQ(before.size(), 1u);
  EXPECT_EQ(before[0].state, "open");  // the crash left it so
  // A segment file whose row was never committed (the crash came in between).
  const auto orphan = std::filesystem::path(before[0].path).parent_path() / "000001.mp4";
  std::filesystem::copy_file(before[0].path, orphan);
  {
    ChildProcess server(argv, dir + "/server2.log");
    ASSERT_TRUE(server.wait_for_line("LISTENING ", 20s).has_value());
    std::this_thread::sleep_for(4s);
    EXPECT_EQ(server.signal_and_wait(SIGTERM, 15s), 0);
  }
  const auto rows = segments(dir + "/var/matthan.db");
  int recovered = 0, complete = 0;
  for (const auto& r : rows) {
    SCOPED_TRACE(r.path);
    EXPECT_NE(r.state, "open");
    if (r.state == "recovered") {
      ++recovered;
      // Indexed up to the last complete fragment: every indexed frame decodes, and what was
      // lost is at most about a fragment (7 s recorded, 1 s fragments).
      int decoded = 0;
      auto read = ingest::read_clip(r.path, "x", 0, 0, [&](const LumaFrame&) { ++decoded; });
      ASSERT_TRUE(read.has_value()) << read.error();
      EXPECT_EQ(decoded, r.frames);
      EXPECT_GE(r.frames, 25 * 4);  // at least 4 of the ~6 s after connecting
      EXPECT_GT(r.end_us, r.start_us);
    }
    if (r.state == "complete") ++complete;
  }
  EXPECT_EQ(recovered, 2);  // the cut segment and the orphan
  EXPECT_GE(complete, 1);   // the second run's segment
  sqlite3* db = nullptr;
  sqlite3_open_v2((dir + "/var/matthan.db").c_str(), &db, SQLITE_OPEN_READONLY, nullptr);
  sqlite3_stmt* st = nullptr;
  sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &st, nullptr);
  ASSERT_EQ(sqlite3_step(st), SQLITE_ROW);
  EXPECT_STREQ(reinterpret_cast<const char*>(sqlite3_column_text(st, 0)), "ok");
  sqlite3_finalize(st);
  sqlite3_close(db);
  EXPECT_NE(read_file(dir + "/var/matthan.log").find("recovered"), std::string::npos);
  if (!HasFailure()) std::filesystem::remove_all(dir);
}

// A camera that goes away for 5 s: its recording has exactly one gap, where the outage was, and
// the daily rollup adds up (recorded + gap = the time from the first frame to the last).
TEST(RecordingIntegration, AnOutageIsTheOnlyGap) {
  const std::string dir = temp_dir("matthan-rec-outage");
  const auto camsim = start_camsim(dir);
  const auto line = camsim->wait_for_line("CAMSIM ", 300s);
  ASSERT_TRUE(line.has_value()) << read_file(dir + "/camsim.log");
  {
    std::ofstream cfg(dir + "/matthan.yaml");
    cfg << "node_id: rec-node\nserver: {listen: '127.0.0.1:0', data_dir: '" << dir << "/var'}\n"
        << "analytics: {zmq_endpoint: '', people: false}\nrecording: {segment_s: 4}\n"
        << "cameras:\n  - {id: rec-h264, main_url: '" << line->substr(7)
        << "/rec-h264/main', stall_timeout_ms: 1000}\n";
  }
  auto wall = [] {
    return std::chrono::duration_cast<std::chrono::microseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
  };
  ChildProcess server({binary_path("matthan"), "run", "--config", dir + "/matthan.yaml"},
                      dir + "/server.log");
  ASSERT_TRUE(server.wait_for_line("LISTENING ", 20s).has_value());
  std::this_thread::sleep_for(7s);
  const std::int64_t stopped = wall();
  camsim->write_line("stop rec-h264");
  std::this_thread::sleep_for(5s);
  const std::int64_t restarted = wall();
  camsim->write_line("start rec-h264");
  std::this_thread::sleep_for(10s);
  EXPECT_EQ(server.signal_and_wait(SIGTERM, 15s), 0);

  const std::string db_path = dir + "/var/matthan.db";
  sqlite3* db = nullptr;
  sqlite3_open_v2(db_path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr);
  sqlite3_stmt* st = nullptr;
  sqlite3_prepare_v2(db, "SELECT start_us, end_us, reason FROM gap WHERE camera_id = 'rec-h264'",
                     -1, &st, nullptr);
  std::vector<std::tuple<std::int64_t, std::int64_t, std::string>> gaps;
  while (sqlite3_step(st) == SQLITE_ROW) {
    gaps.emplace_back(sqlite3_column_int64(st, 0), sqlite3_column_int64(st, 1),
                      reinterpret_cast<const char*>(sqlite3_column_text(st, 2)));
  }
  sqlite3_finalize(st);
  ASSERT_EQ(gaps.size(), 1u) << "the outage is the only gap";
  const auto [gap_start, gap_end, reason] = gaps[0];
  EXPECT_EQ(reason, "stream_break");
  // It starts when the camera stopped (the last frame before it) and ends when the camera's
  // first frames after it were recorded: after the restart, within a reconnect and a GOP.
  EXPECT_GE(gap_start, stopped - 1'500'000);
  EXPECT_LE(gap_start, stopped + 500'000);
  EXPECT_GE(gap_end, restarted - 2'100'000);
  EXPECT_LE(gap_end, restarted + 8'000'000);
  // The rollup adds up: recorded + gap = first frame to last.
  sqlite3_prepare_v2(db,
                     "SELECT SUM(recorded_us), SUM(gap_us), SUM(gaps), SUM(segments),"
                     " (SELECT MAX(end_us) - MIN(start_us) FROM segment) FROM rollup_day"
                     " WHERE camera_id = 'rec-h264'",
                     -1, &st, nullptr);
  ASSERT_EQ(sqlite3_step(st), SQLITE_ROW);
  const auto recorded = sqlite3_column_int64(st, 0);
  const auto gap_us = sqlite3_column_int64(st, 1);
  EXPECT_EQ(sqlite3_column_int64(st, 2), 1);
  EXPECT_EQ(gap_us, gap_end - gap_start);
  EXPECT_NEAR(static_cast<double>(recorded + gap_us),
              static_cast<double>(sqlite3_column_int64(st, 4)), 200'000.0);
  EXPECT_EQ(sqlite3_column_int64(st, 3), static_cast<std::int64_t>(segments(db_path).size()));
  sqlite3_finalize(st);
  sqlite3_close(db);
  if (!HasFailure()) std::filesystem::remove_all(dir);
}

// A flapping camera (stopped and started again and again; MATTHAN_FLAPS times, 8 in CI, 100 in
// bench): one reconnect and one gap per outage, each where the outage was; the other camera
// records on without a gap; the server's file descriptors and threads do not grow, and its
// malloc arenas stay within the limit it sets itself.
TEST(RecordingIntegration, AFlappingCameraReconnectsEveryTimeAndLeaksNothing) {
  const int flaps = std::getenv("MATTHAN_FLAPS") ? std::atoi(std::getenv("MATTHAN_FLAPS")) : 8;
  const std::string dir = temp_dir("matthan-rec-flap");
  const auto camsim = start_camsim(dir);
  const auto line = camsim->wait_for_line("CAMSIM ", 300s);
  ASSERT_TRUE(line.has_value()) << read_file(dir + "/camsim.log");
  {
    std::ofstream cfg(dir + "/matthan.yaml");
    cfg << "node_id: rec-node\nserver: {listen: '127.0.0.1:0', data_dir: '" << dir << "/var'}\n"
        << "analytics: {zmq_endpoint: '', people: false}\nrecording: {segment_s: 4}\ncameras:\n";
    for (const char* id : {"rec-h264", "rec-h265"}) {
      cfg << "  - {id: " << id << ", main_url: '" << line->substr(7) << "/" << id
          << "/main', stall_timeout_ms: 1000}\n";
    }
  }
  const std::string db_path = dir + "/var/matthan.db";
  // Rows of a query, polled from the live database (WAL: readers do not block the writer).
  auto count = [&](const std::string& sql) {
    sqlite3* db = nullptr;
    sqlite3_open_v2(db_path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr);
    sqlite3_busy_timeout(db, 2000);
    sqlite3_stmt* st = nullptr;
    sqlite3_prepare_v2(db, sql.c_str(), -1, &st, nullptr);
    const std::int64_t n = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : -1;
    sqlite3_finalize(st);
    sqlite3_close(db);
    return n;
  };
  const std::string onlines =
      "SELECT COUNT(*) FROM camera_state_change WHERE camera_id = 'rec-h264' AND stream = 'main'"
      " AND state = 'online'";
  auto wait_online = [&](std::int64_t times) {
    for (int i = 0; i < 300 && count(onlines) < times; ++i) std::this_thread::sleep_for(100ms);
    return count(onlines) >= times;
  };
  auto entries = [](const std::string& path) {
    std::size_t n = 0;
    for ([[maybe_unused]] const auto& e : std::filesystem::directory_iterator(path)) ++n;
    return n;
  };
  auto wall = [] {
    return std::chrono::duration_cast<std::chrono::microseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
  };
  // glibc's malloc arenas besides the main one, from the maps: each reserves 64 MiB aligned to
  // 64 MiB, read-write where it is in use and inaccessible after that. Without the server's limit
  // every new thread takes one (up to 16 on 2 cores), and their fragmentation is what the soak
  // saw creep (docs/design/hardening.md, "Allocator").
  auto arenas = [](const std::string& maps_path) {
    constexpr std::uint64_t heap = 64ull << 20;
    struct Mapping {
      std::uint64_t start, end;
      std::string perms;
    };
    std::vector<Mapping> anon;  // in address order, as the kernel lists them
    std::ifstream maps(maps_path);
    for (std::string entry; std::getline(maps, entry);) {
      std::istringstream fields(entry);
      std::string range, perms, offset, device, inode, path;
      fields >> range >> perms >> offset >> device >> inode >> path;
      if (!path.empty()) continue;
      const auto dash = range.find('-');
      anon.push_back({std::stoull(range.substr(0, dash), nullptr, 16),
                      std::stoull(range.substr(dash + 1), nullptr, 16), perms});
    }
    std::size_t n = 0;
    for (std::size_t i = 0; i < anon.size(); ++i) {
      if (anon[i].start % heap != 0 || anon[i].perms.rfind("rw", 0) != 0) continue;
      std::uint64_t size = anon[i].end - anon[i].start;
      if (i + 1 < anon.size() && anon[i + 1].start == anon[i].end &&
          anon[i + 1].perms.rfind("---", 0) == 0)
        size += anon[i + 1].end - anon[i + 1].start;
      if (size == heap) ++n;
    }
    return n;
  };
  ChildProcess server({binary_path("matthan"), "run", "--config", dir + "/matthan.yaml"},
                      dir + "/server.log");
  ASSERT_TRUE(server.wait_for_line("LISTENING ", 20s).has_value());
  ASSERT_TRUE(wait_online(1)) << read_file(dir + "/server.log");
  std::this_thread::sleep_for(3s);
  const std::string proc = "/proc/" + std::to_string(server.pid());
  const auto fds_before = entries(proc + "/fd"), threads_before = entries(proc + "/task");
  std::vector<std::pair<std::int64_t, std::int64_t>> outages;  // stop, start
  for (int i = 0; i < flaps; ++i) {
    const auto stopped = wall();
    camsim->write_line("stop rec-h264");
    std::this_thread::sleep_for(2500ms);
    outages.emplace_back(stopped, wall());
    camsim->write_line("start rec-h264");
    ASSERT_TRUE(wait_online(i + 2)) << "reconnect " << i + 1;
    std::this_thread::sleep_for(2500ms);  // a keyframe (GOP 2 s) reaches the recorder
  }
  std::this_thread::sleep_for(2s);
  const auto fds_after = entries(proc + "/fd"), threads_after = entries(proc + "/task");
  const auto arenas_after = arenas(proc + "/maps");
  EXPECT_EQ(server.signal_and_wait(SIGTERM, 15s), 0);

  EXPECT_EQ(count(onlines), flaps + 1);
  EXPECT_LE(fds_after, fds_before + 2) << "file descriptors grew";
  EXPECT_LE(threads_after, threads_before + 1) << "threads grew";
  // M_ARENA_MAX 4 counts the main arena (app/main.cpp); run the test with
  // GLIBC_TUNABLES=glibc.malloc.arena_max=16 to see this fail.
  EXPECT_LE(arenas_after, 3u) << "malloc arenas besides the main one, with " << threads_after
                              << " threads";
  EXPECT_EQ(count("SELECT COUNT(*) FROM gap WHERE camera_id = 'rec-h265'"), 0)
      << "the other camera was touched";
  sqlite3* db = nullptr;
  sqlite3_open_v2(db_path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr);
  sqlite3_stmt* st = nullptr;
  sqlite3_prepare_v2(db,
                     "SELECT start_us, end_us FROM gap WHERE camera_id = 'rec-h264' AND stream ="
                     " 'main' ORDER BY start_us",
                     -1, &st, nullptr);
  std::vector<std::pair<std::int64_t, std::int64_t>> gaps;
  while (sqlite3_step(st) == SQLITE_ROW)
    gaps.emplace_back(sqlite3_column_int64(st, 0), sqlite3_column_int64(st, 1));
  sqlite3_finalize(st);
  sqlite3_close(db);
  ASSERT_EQ(gaps.size(), outages.size()) << "one gap per outage";
  for (std::size_t i = 0; i < gaps.size(); ++i) {
    SCOPED_TRACE("outage " + std::to_string(i + 1));
    // As in AnOutageIsTheOnlyGap: from the last frame before the stop to the first frames
    // recorded after the restart (within a reconnect and a GOP).
    EXPECT_GE(gaps[i].first, outages[i].first - 1'500'000);
    EXPECT_LE(gaps[i].first, outages[i].first + 500'000);
    EXPECT_GE(gaps[i].second, outages[i].second - 2'100'000);
    EXPECT_LE(gaps[i].second, outages[i].second + 8'000'000);
  }
  if (!HasFailure()) std::filesystem::remove_all(dir);
}

// kill -9 at twenty random moments while recording four cameras (H.264 and H.265). After each
// restart the database is intact, nothing is left open, every segment decodes, the downtime is
// indexed as a gap, and the footage the server had received before each kill but lost is at
// most 2 s per camera — measured with the simulator's burned-in frame indices.
TEST(RecordingIntegration, TwentyKillsLoseAtMostTwoSecondsPerCameraEach) {
  const std::string dir = temp_dir("matthan-rec-kills");
  ChildProcess camsim({binary_path("matthan-camsim"), "--scenario",
                       std::string(MATTHAN_SOURCE_DIR) + "/tests/scenarios/crash.yaml", "--cache",
                       dir + "/../matthan-it-cache"},
                      dir + "/camsim.log");
  const auto line = camsim.wait_for_line("CAMSIM ", 300s);
  ASSERT_TRUE(line.has_value()) << read_file(dir + "/camsim.log");
  const std::vector<std::string> cams{"crash-1", "crash-2", "crash-3", "crash-4"};
  {
    std::ofstream cfg(dir + "/matthan.yaml");
    cfg << "node_id: kill-node\nserver: {listen: '127.0.0.1:0', data_dir: '" << dir << "/var'}\n"
        << "analytics: {zmq_endpoint: '', people: false}\nrecording: {segment_s: 60}\ncameras:\n";
    for (const auto& id : cams) {
      cfg << "  - {id: " << id << ", main_url: '" << line->substr(7) << "/" << id << "/main'}\n";
    }
  }
  const std::vector<std::string> argv{binary_path("matthan"), "run", "--config",
                                      dir + "/matthan.yaml"};
  std::mt19937 rng(20261129);  // random moments, the same in every run of the test
  std::uniform_int_distribution<int> wait_ms(3000, 7000);
  std::vector<std::int64_t> kills, launches;
  const auto now_us = [] {
    return std::chrono::duration_cast<std::chrono::microseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
  };
  for (int i = 0; i < 20; ++i) {
    launches.push_back(now_us());
    ChildProcess server(argv, dir + "/server" + std::to_string(i) + ".log");
    ASSERT_TRUE(server.wait_for_line("LISTENING ", 20s).has_value())
        << read_file(dir + "/var/matthan.log");
    std::this_thread::sleep_for(std::chrono::milliseconds(wait_ms(rng)));
    kills.push_back(now_us());
    server.signal_and_wait(SIGKILL, 5s);
  }
  launches.push_back(now_us());
  {
    ChildProcess server(argv, dir + "/server-last.log");
    ASSERT_TRUE(server.wait_for_line("LISTENING ", 20s).has_value());
    std::this_thread::sleep_for(5s);
    EXPECT_EQ(server.signal_and_wait(SIGTERM, 15s), 0);
  }
  const std::string db_path = dir + "/var/matthan.db";
  sqlite3* db = nullptr;
  sqlite3_open_v2(db_path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr);
  auto scalar_text = [&](const std::string& sql) {
    sqlite3_stmt* st = nullptr;
    sqlite3_prepare_v2(db, sql.c_str(), -1, &st, nullptr);
    std::string out = sqlite3_step(st) == SQLITE_ROW
                          ? reinterpret_cast<const char*>(sqlite3_column_text(st, 0))
                          : "";
    sqlite3_finalize(st);
    return out;
  };
  EXPECT_EQ(scalar_text("PRAGMA integrity_check"), "ok");
  EXPECT_EQ(scalar_text("SELECT COUNT(*) FROM segment WHERE state = 'open'"), "0");
  const auto rows = segments(db_path);
  double worst_loss_s = 0;
  int empty_runs = 0;
  for (const auto& cam : cams) {
    SCOPED_TRACE(cam);
    std::vector<Row> mine;
    for (const auto& r : rows) {
      if (r.camera == cam) mine.push_back(r);
    }
    ASSERT_GE(mine.size(), 10u);
    // Every segment decodes; the burned-in indices give each frame's sending time: the
    // simulator's loop phase comes from the frames' server times (index × 40 ms + phase). A
    // kill within about 1.5 s of the camera coming online comes before the first fragment (1 s,
    // then the read and write batches): that file holds the header alone, no frame, and is
    // indexed as such; what it would have held counts as lost below.
    struct Decoded {
      Row row;
      std::vector<std::uint32_t> codes;
    };
    std::vector<Decoded> decoded;
    std::vector<double> phases;
    for (const auto& r : mine) {
      SCOPED_TRACE(r.path);
      if (r.frames == 0) {
        EXPECT_EQ(r.state, "unreadable");
        EXPECT_EQ(read_file(r.path).find("moof"), std::string::npos) << "a fragment not indexed";
        EXPECT_EQ(r.end_us, r.start_us);
        continue;
      }
      EXPECT_EQ(std::system(
                    ("ffmpeg -v error -xerror -i '" + r.path + "' -f null - 2>/dev/null").c_str()),
                0);
      Decoded d{r, {}};
      auto read = ingest::read_clip(r.path, cam, 0, 0, [&](const LumaFrame& f) {
        d.codes.push_back(
            camsim::read_frame_code(f.pixels(), f.stride, f.width, f.height).value_or(0xFFFFFFFF));
      });
      ASSERT_TRUE(read.has_value()) << read.error();
      EXPECT_EQ(static_cast<std::int64_t>(d.codes.size()), r.frames);
      for (std::size_t i = 0; i < d.codes.size(); ++i) {
        const double t = static_cast<double>(r.start_us) + 40'000.0 * static_cast<double>(i);
        phases.push_back(std::fmod(t - 40'000.0 * d.codes[i], 10e6));
      }
      decoded.push_back(std::move(d));
    }
    ASSERT_FALSE(phases.empty());
    // The median on the circle: offsets from the first phase, wrapped into ±5 s.
    const double ref = phases.front();
    std::vector<double> offsets;
    for (const double p : phases) offsets.push_back(std::remainder(p - ref, 10e6));
    std::nth_element(offsets.begin(), offsets.begin() + static_cast<long>(offsets.size() / 2),
                     offsets.end());
    const double phase = ref + offsets[offsets.size() / 2];
    for (std::size_t k = 0; k < kills.size(); ++k) {
      const std::int64_t kill = kills[k];
      // The last frame on disk before the kill, and when the simulator sent it.
      const Decoded* last = nullptr;
      for (const auto& d : decoded) {
        if (d.row.start_us < kill && !d.codes.empty()) last = &d;
      }
      ASSERT_NE(last, nullptr);
      double loss_s = 0;
      if (last->row.start_us >= launches[k]) {
        double sent = phase + 40'000.0 * last->codes.back();
        while (sent + 10e6 <= static_cast<double>(kill) + 500'000) sent += 10e6;
        while (sent > static_cast<double>(kill) + 500'000) sent -= 10e6;
        loss_s = (static_cast<double>(kill) - sent) / 1e6;
      } else {
        // This run stored no frame: all it received is lost, from its first picture (the
        // camera is online once that came) to the kill.
        const auto online = online_at(dir + "/server" + std::to_string(k) + ".log", cam);
        ASSERT_TRUE(online.has_value()) << "run " << k << " stored nothing and never came online";
        loss_s = static_cast<double>(kill - *online) / 1e6;
        ++empty_runs;
      }
      worst_loss_s = std::max(worst_loss_s, loss_s);
      EXPECT_LE(loss_s, 2.0) << "kill at " << kill << ": footage lost";
      // The downtime is a recorded gap. `kill` was read just before the signal was sent, and
      // the last frame on disk lasts its 40 ms; no frame of the next run can come before it was
      // launched (which can be as soon as 0.15 s later, with a keyframe right then).
      const std::string after = std::to_string(std::max(kill + 50'000, launches[k + 1]));
      const std::string gaps =
          scalar_text("SELECT COUNT(*) FROM gap WHERE camera_id = '" + cam +
                      "' AND start_us <= " + after + " AND end_us >= " + after);
      EXPECT_EQ(gaps, "1") << "no gap indexed over the kill at " << kill;
    }
  }
  sqlite3_close(db);
  std::printf(
      "worst loss per camera per kill: %.2f s (20 kills, 4 cameras; %d camera-runs killed"
      " before their first fragment)\n",
      worst_loss_s, empty_runs);
  if (!HasFailure()) std::filesystem::remove_all(dir);
}

// The system clock of the server process (Debian's libfaketime: never the machine's own clock)
// is set back an hour, then forward ten minutes, while two cameras record. Server time never
// runs backwards: no segment overlaps another or has a negative duration; both steps are
// logged, counted in /healthz and stored, and an export manifest over the footage names them.
TEST(RecordingIntegration, ClockStepsLeaveNoOverlapAndAreFlagged) {
  const std::string lib = "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1";
  if (!std::filesystem::exists(lib)) GTEST_SKIP() << "Debian's faketime is not installed";
  const std::string dir = temp_dir("matthan-clock");
  ChildProcess camsim({binary_path("matthan-camsim"), "--scenario",
                       std::string(MATTHAN_SOURCE_DIR) + "/tests/scenarios/crash.yaml", "--cache",
                       dir + "/../matthan-it-cache"},
                      dir + "/camsim.log");
  const auto line = camsim.wait_for_line("CAMSIM ", 300s);
  ASSERT_TRUE(line.has_value()) << read_file(dir + "/camsim.log");
  const std::vector<std::string> cams{"crash-1", "crash-2"};
  const std::string cfg = dir + "/matthan.yaml";
  {
    std::ofstream out(cfg);
    out << "node_id: clock-node\nserver: {listen: '127.0.0.1:0', data_dir: '" << dir << "/var'}\n"
        << "analytics: {zmq_endpoint: '', people: false}\nrecording: {segment_s: 3}\ncameras:\n";
    for (const auto& id : cams) {
      out << "  - {id: " << id << ", main_url: '" << line->substr(7) << "/" << id << "/main'}\n";
    }
  }
  const std::string offset_file = dir + "/faketime.rc";
  auto set_offset = [&](const std::string& offset) {
    std::ofstream(offset_file) << offset << "\n";
  };
  set_offset("+0");
  ChildProcess server(
      {"/usr/bin/env", "LD_PRELOAD=" + lib, "FAKETIME_TIMESTAMP_FILE=" + offset_file,
       "FAKETIME_CACHE_DURATION=1", "FAKETIME_DONT_FAKE_MONOTONIC=1", binary_path("matthan"), "run",
       "--config", cfg},
      dir + "/server.log");
  const auto listening = server.wait_for_line("LISTENING ", 20s);
  ASSERT_TRUE(listening.has_value()) << read_file(dir + "/var/matthan.log");
  const int port = std::atoi(listening->substr(listening->rfind(':') + 1).c_str());
  ASSERT_EQ(login_admin(port, cfg), "");
  std::this_thread::sleep_for(7s);
  set_offset("-3600");  // set back an hour
  std::this_thread::sleep_for(8s);
  set_offset("+600");  // then ten minutes ahead of real time
  std::this_thread::sleep_for(7s);
  const auto health = nlohmann::json::parse(http_get(port, "/healthz").body);
  EXPECT_GE(health["clock"]["steps"].get<int>(), 2) << health.dump();
  // The cameras' own timestamps never jumped, whatever the clock did: no jump counted against
  // their link. (Other link issues, a late frame on a busy machine, are not this test's.)
  const auto list = nlohmann::json::parse(http_get(port, "/api/cameras").body, nullptr, false);
  ASSERT_TRUE(list.contains("cameras")) << list.dump();
  for (const auto& c : list["cameras"]) {
    for (const auto& s : c["streams"]) {
      EXPECT_EQ(s["timestamp_jumps"].get<int>(), 0) << c.dump();
      EXPECT_EQ(s["link"]["issues"].dump().find("timestamp"), std::string::npos) << c.dump();
    }
  }
  EXPECT_EQ(server.signal_and_wait(SIGTERM, 20s), 0);
  EXPECT_EQ(read_file(dir + "/var/matthan.log").find("media timestamps jumped"), std::string::npos);

  const std::string db_path = dir + "/var/matthan.db";
  const auto rows = segments(db_path);
  for (const auto& cam : cams) {
    SCOPED_TRACE(cam);
    std::vector<Row> mine;
    for (const auto& r : rows) {
      if (r.camera == cam) mine.push_back(r);
    }
    ASSERT_GE(mine.size(), 5u);
    for (std::size_t i = 0; i < mine.size(); ++i) {
      SCOPED_TRACE(mine[i].path);
      EXPECT_GT(mine[i].end_us, mine[i].start_us);
      EXPECT_GT(mine[i].frames, 0);
      if (i > 0) {
        EXPECT_GE(mine[i].start_us, mine[i - 1].end_us) << "overlaps the segment before";
      }
    }
  }
  sqlite3* db = nullptr;
  sqlite3_open_v2(db_path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr);
  sqlite3_stmt* st = nullptr;
  sqlite3_prepare_v2(db, "SELECT delta_us FROM clock_event WHERE kind = 'jump' ORDER BY at_us", -1,
                     &st, nullptr);
  std::vector<double> deltas;
  while (sqlite3_step(st) == SQLITE_ROW) deltas.push_back(sqlite3_column_int64(st, 0) / 1e6);
  sqlite3_finalize(st);
  sqlite3_close(db);
  ASSERT_EQ(deltas.size(), 2u);
  EXPECT_NEAR(deltas[0], -3600, 3);
  EXPECT_NEAR(deltas[1], 600, 3);
  EXPECT_NE(read_file(dir + "/var/matthan.log").find("the system clock stepped by -3600"),
            std::string::npos);
  // An export over the footage carries the steps in its (signed) manifest.
  std::int64_t from = INT64_MAX, to = 0;
  for (const auto& r : rows) {
    if (r.camera == "crash-1") {
      from = std::min(from, r.start_us);
      to = std::max(to, r.end_us);
    }
  }
  auto iso = [](std::int64_t us) {
    const std::time_t t = static_cast<std::time_t>(us / 1'000'000);
    std::tm tm{};
    gmtime_r(&t, &tm);
    char buf[32];
    std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return std::string(buf);
  };
  const std::string out = dir + "/export";
  const int rc =
      std::system((binary_path("matthan") + " export --config '" + cfg +
                   "' --camera crash-1 --from " + iso(from) + " --to " + iso(to + 1'000'000) +
                   " --reason 'clock test' --out '" + out + "' > '" + dir + "/export.log' 2>&1")
                      .c_str());
  ASSERT_EQ(rc, 0) << read_file(dir + "/export.log");
  const auto manifest = nlohmann::json::parse(read_file(out + "/manifest.json"));
  const auto& steps = manifest["server_time"]["clock_steps"];
  ASSERT_EQ(steps.size(), 2u) << manifest["server_time"].dump();
  EXPECT_NEAR(steps[0]["delta_s"].get<double>(), -3600, 3);
  EXPECT_NEAR(steps[1]["delta_s"].get<double>(), 600, 3);
  // ...and its clip, over both steps, plays without a single error.
  int clips = 0;
  for (const auto& f : std::filesystem::directory_iterator(out)) {
    if (f.path().extension() != ".mp4") continue;
    ++clips;
    EXPECT_EQ(
        std::system(("ffmpeg -v error -xerror -i '" + f.path().string() + "' -f null - 2>/dev/null")
                        .c_str()),
        0)
        << f.path();
  }
  EXPECT_GE(clips, 1);
  if (!HasFailure()) std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace matthan::test
