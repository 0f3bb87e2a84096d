// The recorder's segment writer on real encoded video (the simulator's H.264 and H.265 loops):
// segments start at keyframes, decode cleanly with ffmpeg, hold exactly the frames indexed, and
// a segment cut short (a crash) still decodes up to its last complete fragment.
#include <gtest/gtest.h>
#include <sqlite3.h>

#include <expected>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "child_process.hpp"
#include "matthan/camsim/encoded_loop.hpp"
#include "matthan/storage/database.hpp"
#include "matthan/storage/live_muxer.hpp"
#include "matthan/storage/reconcile.hpp"
#include "matthan/storage/recorder.hpp"
#include "matthan/storage/segment_index.hpp"
#include "matthan/storage/segment_writer.hpp"

namespace matthan::storage {
namespace {

using namespace std::chrono_literals;

// The parameter sets in front of a keyframe (Annex B): what a camera's SDP carries.
std::vector<std::uint8_t> parameter_sets(const std::vector<std::uint8_t>& au, bool h265) {
  for (std::size_t i = 0; i + 4 < au.size(); ++i) {
    if (au[i] == 0 && au[i + 1] == 0 && au[i + 2] == 1) {
      const int type = h265 ? (au[i + 3] >> 1) & 0x3f : au[i + 3] & 0x1f;
      const bool vcl = h265 ? type < 32 : (type >= 1 && type <= 5);
      if (vcl) {
        const std::size_t start = i > 0 && au[i - 1] == 0 ? i - 1 : i;
        return {au.begin(), au.begin() + static_cast<std::ptrdiff_t>(start)};
      }
      i += 2;
    }
  }
  return {};
}

struct Probe {
  int code = -1;
  std::string out;
};

Probe run(const std::vector<std::string>& argv, const std::string& dir) {
  test::ChildProcess p(argv, dir + "/tool.log");
  Probe r;
  for (auto line = p.read_line(30s); line; line = p.read_line(30s)) r.out += *line + "\n";
  r.code = p.signal_and_wait(0, 30s);
  return r;
}

// A 4 s simulator loop (640x360 main stream) and the parameters a camera would announce for it.
struct TestLoop {
  camsim::CameraLoops loops;
  std::shared_ptr<StreamParams> params;
};

std::expected<TestLoop, std::string> four_second_loop(const std::string& id,
                                                      camsim::SceneCodec codec) {
  camsim::Scenario sc;
  sc.duration_s = 4;
  camsim::CameraSpec cam;
  cam.id = id;
  cam.codec = codec;
  cam.main = {640, 360, 1000};
  cam.sub = {320, 180, 300};
  sc.cameras = {cam};
  auto loops = camsim::prepare_camera(sc, sc.cameras[0], "/tmp/matthan-it-cache");
  if (!loops) return std::unexpected(loops.error());
  const bool h265 = codec == camsim::SceneCodec::h265;
  auto params = std::make_shared<StreamParams>();
  params->camera_id = id;
  params->codec = h265 ? Codec::h265 : Codec::h264;
  params->width = 640;
  params->height = 360;
  params->extradata = parameter_sets(loops->main->units.front().data, h265);
  return TestLoop{std::move(*loops), std::move(params)};
}

// ffmpeg decodes the file without a single error (`-xerror`); else what it said.
::testing::AssertionResult decodes_cleanly(const std::string& path, const std::string& dir) {
  const auto r =
      run({"/usr/bin/ffmpeg", "-v", "error", "-xerror", "-i", path, "-f", "null", "-"}, dir);
  if (r.code == 0) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << path << ": " << test::read_file(dir + "/tool.log");
}

class SegmentWriterTest : public ::testing::TestWithParam<camsim::SceneCodec> {};

TEST_P(SegmentWriterTest, SegmentsDecodeAndHoldWhatWasIndexed) {
  const bool h265 = GetParam() == camsim::SceneCodec::h265;
  camsim::Scenario sc;
  sc.duration_s = 8;
  camsim::CameraSpec cam;
  cam.id = h265 ? "rec265" : "rec264";
  cam.codec = GetParam();
  cam.main = {640, 360, 1000};
  cam.sub = {320, 180, 300};
  camsim::Actor walker;
  walker.start_s = 1;
  walker.duration_s = 6;
  cam.actors = {walker};
  sc.cameras = {cam};
  auto loops = camsim::prepare_camera(sc, sc.cameras[0], "/tmp/matthan-it-cache");
  ASSERT_TRUE(loops.has_value()) << loops.error();
  const auto& units = loops->main->units;
  ASSERT_TRUE(units.front().keyframe);

  auto params = std::make_shared<StreamParams>();
  params->camera_id = cam.id;
  params->codec = h265 ? Codec::h265 : Codec::h264;
  params->width = 640;
  params->height = 360;
  params->extradata = parameter_sets(units.front().data, h265);
  ASSERT_FALSE(params->extradata.empty());

  const std::string dir = test::temp_dir("matthan-rec");
  std::vector<SegmentInfo> closed;
  SegmentWriterSettings settings;
  settings.root = dir + "/recordings";
  settings.segment_s = 4;
  {
    SegmentWriter w(settings, cam.id, StreamKind::main,
                    [&](const SegmentInfo& s) { closed.push_back(s); });
    // Joined mid-GOP, as after a connection: packets before the first keyframe are skipped.
    const std::int64_t base_us = 1'795'900'000'000'000;
    const int total = 2 * static_cast<int>(units.size());  // two loops: 16 s
    for (int i = 10; i < total; ++i) {
      const auto& u = units[static_cast<std::size_t>(i) % units.size()];
      EncodedPacket p;
      p.params = params;
      p.dts = p.pts = static_cast<std::int64_t>(i) * 3600;
      p.duration = 3600;
      p.wall_us = base_us + static_cast<std::int64_t>(i) * 40'000;
      p.keyframe = u.keyframe;
      p.data = u.data;
      ASSERT_TRUE(w.write(p).has_value());
    }
    EXPECT_EQ(w.skipped(), 40);  // frames 10..49 precede the keyframe at 2 s
  }
  // 14 s of frames from the keyframe at 2 s, cut at the keyframes after every 4 s.
  ASSERT_EQ(closed.size(), 4u);
  std::int64_t frames = 0;
  for (std::size_t k = 0; k < closed.size(); ++k) {
    const auto& s = closed[k];
    SCOPED_TRACE(s.path);
    EXPECT_TRUE(s.path.find("/recordings/" + cam.id + "/2026-11-") != std::string::npos);
    EXPECT_EQ(s.codec, h265 ? "h265" : "h264");
    EXPECT_GE(s.keyframes, 1);
    EXPECT_EQ(s.bytes, static_cast<std::int64_t>(std::filesystem::file_size(s.path)));
    EXPECT_EQ(s.end_us - s.start_us, s.frames * 40'000);  // [start, end) covers every frame
    if (k > 0) {
      EXPECT_EQ(s.start_us, closed[k - 1].end_us);  // no gap, no overlap
    }
    frames += s.frames;
    EXPECT_TRUE(decodes_cleanly(s.path, dir));  // without a single error...
    // ...into exactly the frames indexed.
    const auto counted =
        run({"/usr/bin/ffprobe", "-v", "error", "-count_frames", "-select_streams", "v:0",
             "-show_entries", "stream=nb_read_frames,codec_name", "-of", "csv=p=0", s.path},
            dir);
    ASSERT_EQ(counted.code, 0) << test::read_file(dir + "/tool.log");
    EXPECT_NE(counted.out.find(std::to_string(s.frames)), std::string::npos) << counted.out;
    EXPECT_NE(counted.out.find(h265 ? "hevc" : "h264"), std::string::npos) << counted.out;
  }
  EXPECT_EQ(frames, 2 * static_cast<std::int64_t>(units.size()) - 50);

  // A crash halfway through a segment: what was written up to the last whole fragment decodes.
  const std::string cut = dir + "/cut.mp4";
  std::filesystem::copy_file(closed[1].path, cut);
  std::filesystem::resize_file(cut, closed[1].bytes * 6 / 10);
  const auto partial = run({"/usr/bin/ffprobe", "-v", "quiet", "-count_frames", "-select_streams",
                            "v:0", "-show_entries", "stream=nb_read_frames", "-of", "csv=p=0", cut},
                           dir);
  const int survived = std::atoi(partial.out.c_str());
  EXPECT_GE(survived, closed[1].frames * 4 / 10) << partial.out;  // at most ~1 s + a bit lost
  EXPECT_LT(survived, closed[1].frames);

  // Start-up reconciliation finishes the open row of such a file and cuts its torn last
  // fragment: afterwards it decodes without a single error (`-xerror`), all whole fragments
  // kept, and the row counts exactly the frames the file holds.
  const std::string torn = dir + "/recordings/" + cam.id + "/2026-11-29/101500.mp4";
  std::filesystem::create_directories(std::filesystem::path(torn).parent_path());
  std::filesystem::copy_file(cut, torn);
  auto db = Database::open(dir + "/index.db");
  ASSERT_TRUE(db.has_value()) << db.error();
  (*db)->write([&](sqlite3* conn) {
    insert_segment_row(conn, {"n1", cam.id, "main", torn, h265 ? "h265" : "h264", 1}, "start");
  });
  (*db)->flush();
  const auto report = reconcile_segments(**db, "n1", dir + "/recordings");
  EXPECT_EQ(report.recovered, 1);
  EXPECT_LT(std::filesystem::file_size(torn), std::filesystem::file_size(cut));
  EXPECT_TRUE(decodes_cleanly(torn, dir));
  const auto kept = run({"/usr/bin/ffprobe", "-v", "error", "-count_frames", "-select_streams",
                         "v:0", "-show_entries", "stream=nb_read_frames", "-of", "csv=p=0", torn},
                        dir);
  const int whole = std::atoi(kept.out.c_str());
  EXPECT_GE(whole, survived - 25 - 3);  // the torn fragment held at most fragment_s (1 s)
  const auto row_frames = (*db)->read([&](sqlite3* conn) {
    sqlite3_stmt* st = nullptr;
    sqlite3_prepare_v2(conn, "SELECT frames, state FROM segment WHERE path = ?1", -1, &st, nullptr);
    sqlite3_bind_text(st, 1, torn.c_str(), -1, SQLITE_TRANSIENT);
    std::int64_t n = -1;
    if (sqlite3_step(st) == SQLITE_ROW) n = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return n;
  });
  EXPECT_EQ(row_frames, whole);
  db->reset();
  std::filesystem::remove_all(dir);
}

// A camera's timestamps leap ahead (the session re-anchored its clock on them) and later go
// back, while server time runs on: the segment after a 30 s outage still starts where its
// first frame arrived (the leap does not pull it back over the gap), lasts as long as its
// frames took to arrive, and plays straight through. Frames that arrived damaged are counted.
TEST_P(SegmentWriterTest, TimestampJumpsNeitherMoveASegmentBackNorStretchIt) {
  const bool h265 = GetParam() == camsim::SceneCodec::h265;
  const std::string id = h265 ? "jump265" : "jump264";
  const auto loop = four_second_loop(id, GetParam());
  ASSERT_TRUE(loop.has_value()) << loop.error();
  const auto& units = loop->loops.main->units;
  const auto& params = loop->params;
  ASSERT_GE(units.size(), 100u);
  ASSERT_TRUE(units.front().keyframe);

  const std::string dir = test::temp_dir("matthan-jump");
  std::vector<SegmentInfo> closed;
  SegmentWriterSettings settings;
  settings.root = dir + "/recordings";
  std::int64_t reported = 0;  // what the index would have before the segment ends
  {
    SegmentWriter w(settings, id, StreamKind::main,
                    [&](const SegmentInfo& s) { closed.push_back(s); });
    w.set_on_damaged([&](const SegmentInfo& s) { reported = s.damaged; });
    const std::int64_t base_us = 1'795'900'000'000'000;
    auto feed = [&](std::size_t unit, std::int64_t dts, std::int64_t wall_us,
                    bool damaged = false) {
      EncodedPacket p;
      p.damaged = damaged;
      p.params = params;
      p.dts = p.pts = dts;
      p.duration = 3600;
      p.wall_us = wall_us;
      p.keyframe = units[unit].keyframe;
      p.data = units[unit].data;
      ASSERT_TRUE(w.write(p).has_value());
    };
    for (int i = 0; i < 50; ++i) feed(static_cast<std::size_t>(i), i * 3600, base_us + i * 40'000);
    w.close();  // the camera went away for 30 s
    const std::int64_t back_us = base_us + 50 * 40'000 + 30'000'000;
    std::int64_t dts = 5'000'000;
    for (int i = 0; i < 100; ++i) {
      if (i == 50) dts += 20 * 90000;  // 20 s ahead of the 40 ms that passed
      if (i == 75) dts -= 10 * 90000;  // and then 10 s back
      feed(static_cast<std::size_t>(i), dts, back_us + i * 40'000, i % 10 == 3);  // pieces lost
      dts += 3600;
    }
  }
  ASSERT_EQ(closed.size(), 2u);
  const auto& a = closed[0];
  const auto& b = closed[1];
  EXPECT_EQ(a.end_us - a.start_us, 50 * 40'000);
  EXPECT_EQ(b.start_us - a.end_us, 30'000'000);  // the outage, indexed whole
  EXPECT_EQ(b.end_us - b.start_us, 100 * 40'000);
  EXPECT_EQ(b.frames, 100);
  EXPECT_EQ(b.retimed, 2);
  EXPECT_EQ(a.damaged, 0);
  EXPECT_EQ(b.damaged, 10);  // counted for the index; recorded as they came
  EXPECT_GE(reported, 7);    // ...at every fragment too: the 3 s of it synced held 8
  EXPECT_TRUE(decodes_cleanly(b.path, dir));
  const auto probed =
      run({"/usr/bin/ffprobe", "-v", "error", "-count_frames", "-select_streams", "v:0",
           "-show_entries", "stream=nb_read_frames:format=duration", "-of", "default=nw=1", b.path},
          dir);
  ASSERT_EQ(probed.code, 0) << test::read_file(dir + "/tool.log");
  EXPECT_NE(probed.out.find("nb_read_frames=100"), std::string::npos) << probed.out;
  const auto at = probed.out.find("duration=");
  ASSERT_NE(at, std::string::npos) << probed.out;
  EXPECT_NEAR(std::atof(probed.out.c_str() + at + 9), 4.0, 0.05) << probed.out;
  std::filesystem::remove_all(dir);
}

// The live view's muxer on the same loops: the init segment and its fragments, joined, are an MP4
// that ffprobe reads frame for frame, and the MSE codec string names the profile and level that
// ffprobe finds in the stream (a wrong one and the browser refuses the stream).
TEST_P(SegmentWriterTest, LiveFragmentsPlayAndNameTheirCodec) {
  const bool h265 = GetParam() == camsim::SceneCodec::h265;
  const auto loop = four_second_loop(h265 ? "live265" : "live264", GetParam());
  ASSERT_TRUE(loop.has_value()) << loop.error();
  const auto& units = loop->loops.main->units;
  const auto& params = loop->params;

  FragmentMuxer muxer;
  std::string file;
  int fragments = 0;
  for (std::size_t i = 0; i < units.size(); ++i) {
    EncodedPacket p;
    p.params = params;
    p.dts = p.pts = static_cast<std::int64_t>(i) * 3600;
    p.duration = 3600;
    p.wall_us = 1'795'900'000'000'000 + static_cast<std::int64_t>(i) * 40'000;
    p.keyframe = units[i].keyframe;
    p.data = units[i].data;
    auto out = muxer.push(p);
    ASSERT_TRUE(out.has_value()) << out.error();
    ASSERT_TRUE(out->has_value());  // the loop starts at a keyframe
    if (i == 0) {
      EXPECT_TRUE((*out)->keyframe);
      EXPECT_TRUE((*out)->new_init);
      ASSERT_TRUE(muxer.init());
      file = *muxer.init();
    }
    file += (*out)->bytes;
    ++fragments;
  }
  const std::string dir = test::temp_dir("matthan-live");
  const std::string path = dir + "/live.mp4";
  std::ofstream(path, std::ios::binary) << file;
  const auto probe =
      run({"/usr/bin/ffprobe", "-v", "error", "-count_frames", "-select_streams", "v:0",
           "-show_entries", "stream=nb_read_frames,profile,level", "-of", "default=nw=1", path},
          dir);
  ASSERT_EQ(probe.code, 0) << test::read_file(dir + "/tool.log");
  EXPECT_NE(probe.out.find("nb_read_frames=" + std::to_string(fragments)), std::string::npos)
      << probe.out;
  const auto field = [&](const std::string& name) {
    const auto at = probe.out.find(name + "=");
    if (at == std::string::npos) return std::string();
    const auto end = probe.out.find('\n', at);
    return probe.out.substr(at + name.size() + 1, end - at - name.size() - 1);
  };
  const int level = std::atoi(field("level").c_str());
  const std::string mime = muxer.mime();
  SCOPED_TRACE(mime + " / " + probe.out);
  if (h265) {
    ASSERT_EQ(field("profile"), "Main");
    // hvc1.<profile 1>.<compatibility>.<tier L|H><level>[.<constraints>]
    EXPECT_NE(mime.find("codecs=\"hvc1.1."), std::string::npos);
    EXPECT_TRUE(mime.find(".L" + std::to_string(level)) != std::string::npos ||
                mime.find(".H" + std::to_string(level)) != std::string::npos);
  } else {
    const std::map<std::string, int> idc{
        {"Constrained Baseline", 66}, {"Baseline", 66}, {"Main", 77}, {"High", 100}};
    ASSERT_TRUE(idc.contains(field("profile")));
    char want[16];
    std::snprintf(want, sizeof want, "avc1.%02x", idc.at(field("profile")));
    EXPECT_NE(mime.find(want), std::string::npos);
    std::snprintf(want, sizeof want, "%02x\"", level);
    EXPECT_NE(mime.find(want), std::string::npos);
  }
  std::filesystem::remove_all(dir);
}

// Someone watching a camera for hours: the muxer is started afresh every so many fragments (at a
// keyframe), which drops FFmpeg's growing fragment index, and the viewer's stream goes on as one:
// no new init segment, every frame there, the timeline unbroken across the renewals.
TEST_P(SegmentWriterTest, ALongLiveViewRenewsItsMuxerWithoutABreak) {
  const auto loop = four_second_loop(
      GetParam() == camsim::SceneCodec::h265 ? "renew265" : "renew264", GetParam());
  ASSERT_TRUE(loop.has_value()) << loop.error();
  const auto& units = loop->loops.main->units;
  FragmentMuxer muxer(60);  // renewed at the first keyframe after 60 fragments
  std::string file;
  int fragments = 0;
  int new_inits = 0;
  const int total = 3 * static_cast<int>(units.size());
  for (int i = 0; i < total; ++i) {
    const auto& unit = units[static_cast<std::size_t>(i) % units.size()];
    EncodedPacket p;
    p.params = loop->params;
    p.dts = p.pts = static_cast<std::int64_t>(i) * 3600;
    p.duration = 3600;
    p.keyframe = unit.keyframe;
    p.data = unit.data;
    auto out = muxer.push(p);
    ASSERT_TRUE(out.has_value()) << out.error();
    ASSERT_TRUE(out->has_value());
    if ((*out)->new_init) {
      ++new_inits;
      file += *muxer.init();
    }
    file += (*out)->bytes;
    ++fragments;
  }
  EXPECT_EQ(new_inits, 1);  // the first fragment's only
  // 100-frame loop, keyframes every 50: renewed at frames 100 and 200.
  EXPECT_EQ(muxer.renewals(), 2u);
  const std::string dir = test::temp_dir("matthan-live-renew");
  const std::string path = dir + "/live.mp4";
  std::ofstream(path, std::ios::binary) << file;
  const auto probe = run({"/usr/bin/ffprobe", "-v", "error", "-select_streams", "v:0",
                          "-show_entries", "packet=pts_time", "-of", "csv=p=0", path},
                         dir);
  ASSERT_EQ(probe.code, 0) << test::read_file(dir + "/tool.log");
  std::vector<double> times;
  std::istringstream lines(probe.out);
  for (std::string line; std::getline(lines, line);) {
    if (!line.empty()) times.push_back(std::stod(line));
  }
  ASSERT_EQ(static_cast<int>(times.size()), fragments);
  for (std::size_t i = 0; i < times.size(); ++i) {
    EXPECT_NEAR(times[i], 0.04 * static_cast<double>(i), 0.0015) << "frame " << i;
  }
  std::filesystem::remove_all(dir);
}

// The recorder cuts a segment at a silence of more than 2 s, measured on arrival, that is also a
// hole of more than 2 s in the media time. Over a lossy link the smoothed server time can leap
// by a second more than the silence (it trails arrival, then re-anchors at once), and a link can
// hold frames back for seconds and then deliver them whole: a cut there loses the frames up to
// the next keyframe. A real silence still cuts, and is indexed as a gap.
TEST(RecorderTest, ASilenceIsMeasuredOnArrivalNotOnTheSmoothedTime) {
  const auto loop = four_second_loop("silence264", camsim::SceneCodec::h264);
  ASSERT_TRUE(loop.has_value()) << loop.error();
  const auto& units = loop->loops.main->units;
  ASSERT_GE(units.size(), 100u);
  std::size_t second_key = 0;
  for (std::size_t i = 1; i < units.size() && second_key == 0; ++i) {
    if (units[i].keyframe) second_key = i;
  }
  ASSERT_GT(second_key, 20u) << "a keyframe to resume at after the silence";
  const std::size_t at = second_key - 10;  // the silence falls mid-GOP

  const std::string dir = test::temp_dir("matthan-silence");
  auto db = Database::open(dir + "/m.db");
  ASSERT_TRUE(db) << db.error();
  // silence_us: what arrival saw; leap_us: what the smoothed time made of it; hole_us: the
  // frames' media time that never came (0: they all came, late).
  auto record = [&](const std::string& camera, std::int64_t silence_us, std::int64_t leap_us,
                    std::int64_t hole_us) {
    RecorderSettings settings;
    settings.writer.root = dir + "/recordings";
    Recorder rec(**db, "n", camera, StreamKind::main, settings);
    PacketFanout fanout;
    rec.attach(fanout);
    std::int64_t arrival = 5'000'000, wall = 1'795'900'000'000'000;
    for (std::size_t i = 0; i < 100; ++i) {
      auto p = std::make_shared<EncodedPacket>();
      p->params = loop->params;
      p->dts = p->pts = static_cast<std::int64_t>(i) * 3600 + (i >= at ? hole_us * 9 / 100 : 0);
      p->duration = 3600;
      arrival += i == at ? silence_us : 40'000;
      wall += i == at ? leap_us : 40'000;
      p->arrival_us = arrival;
      p->wall_us = wall;
      p->keyframe = units[i].keyframe;
      p->data = units[i].data;
      fanout.publish(std::move(p));
    }
    fanout.stop();
    rec.close();
    (*db)->flush();
    return (*db)->read([&](sqlite3* conn) {
      std::vector<std::pair<std::int64_t, std::string>> segments;  // frames, gap reason before
      sqlite3_stmt* st = nullptr;
      sqlite3_prepare_v2(conn,
                         "SELECT s.frames, COALESCE((SELECT g.reason FROM gap g WHERE"
                         " g.camera_id = s.camera_id AND g.end_us = s.start_us), '') FROM segment s"
                         " WHERE s.camera_id = ?1 ORDER BY s.start_us",
                         -1, &st, nullptr);
      sqlite3_bind_text(st, 1, camera.c_str(), -1, SQLITE_TRANSIENT);
      while (sqlite3_step(st) == SQLITE_ROW) {
        segments.emplace_back(sqlite3_column_int64(st, 0),
                              reinterpret_cast<const char*>(sqlite3_column_text(st, 1)));
      }
      sqlite3_finalize(st);
      return segments;
    });
  };
  // 1.4 s without a packet that the smoothed time makes 2.4 s: one segment, every frame.
  const auto lossy = record("lossy", 1'400'000, 2'400'000, 1'360'000);
  ASSERT_EQ(lossy.size(), 1u);
  EXPECT_EQ(lossy[0].first, 100);
  // 2.6 s without a packet, then the frames that follow on from the last (a slow link held
  // them; Faults.BadLink lost 14 frames to a cut here): one segment, every frame.
  const auto late = record("late", 2'600'000, 2'600'000, 0);
  ASSERT_EQ(late.size(), 1u);
  EXPECT_EQ(late[0].first, 100);
  // 2.4 s without a packet and 2.4 s of frames that never came: cut, the rest from the next
  // keyframe, the hole a stream_break gap.
  const auto broken = record("broken", 2'400'000, 2'400'000, 2'360'000);
  ASSERT_EQ(broken.size(), 2u);
  EXPECT_EQ(broken[0].first, static_cast<std::int64_t>(at));
  EXPECT_EQ(broken[1].first, static_cast<std::int64_t>(100 - second_key));
  EXPECT_EQ(broken[1].second, "stream_break");
  std::filesystem::remove_all(dir);
}

// A lossy link: the camera side sheds whole frames (holes of 1.3 s in media time) and the link
// delays the rest unevenly, so the frame after a hole can arrive 0.24 s after the one before it.
// That is no clock jump: the segment keeps each frame's media time and its span is the time its
// frames cover (Faults.BadLink's index once showed 13.6 s for 26.6 s of frames).
TEST(SegmentWriterLossy, HolesOfShedFramesAreNotSqueezed) {
  const auto loop = four_second_loop("lossy264", camsim::SceneCodec::h264);
  ASSERT_TRUE(loop.has_value()) << loop.error();
  const auto& units = loop->loops.main->units;
  ASSERT_GE(units.size(), 100u);
  const std::string dir = test::temp_dir("matthan-lossy");
  std::vector<SegmentInfo> closed;
  SegmentWriterSettings settings;
  settings.root = dir + "/recordings";
  {
    SegmentWriter w(settings, "lossy264", StreamKind::main,
                    [&](const SegmentInfo& s) { closed.push_back(s); });
    const std::int64_t base_us = 1'795'900'000'000'000;
    for (int i = 0; i < 100; ++i) {
      const std::int64_t media_us =
          i * 40'000 + (i >= 30 ? 1'300'000 : 0) + (i >= 60 ? 1'300'000 : 0);
      const std::int64_t delay_us = i == 29 || i == 59   ? 1'200'000
                                    : i == 30 || i == 60 ? 100'000
                                                         : 300'000;
      EncodedPacket p;
      p.params = loop->params;
      p.dts = p.pts = media_us * 9 / 100;  // 90 kHz
      p.duration = 3600;
      p.wall_us = base_us + media_us + delay_us;
      p.keyframe = units[static_cast<std::size_t>(i)].keyframe;
      p.data = units[static_cast<std::size_t>(i)].data;
      ASSERT_TRUE(w.write(p).has_value());
    }
  }
  ASSERT_EQ(closed.size(), 1u);
  EXPECT_EQ(closed[0].retimed, 0);
  EXPECT_EQ(closed[0].frames, 100);
  // 99 frame intervals, two holes, one frame's duration.
  EXPECT_NEAR(static_cast<double>(closed[0].end_us - closed[0].start_us), 6'600'000, 50'000);
  EXPECT_TRUE(decodes_cleanly(closed[0].path, dir));
  std::filesystem::remove_all(dir);
}

INSTANTIATE_TEST_SUITE_P(Codecs, SegmentWriterTest,
                         ::testing::Values(camsim::SceneCodec::h264, camsim::SceneCodec::h265),
                         [](const ::testing::TestParamInfo<camsim::SceneCodec>& param_info) {
                           return std::string(
                               param_info.param == camsim::SceneCodec::h265 ? "H265" : "H264");
                         });

}  // namespace
}  // namespace matthan::storage
