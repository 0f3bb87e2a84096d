// One stream session in-process against the simulator: main-stream packets reach a packet
// subscriber undecoded with their stream parameters, the analysis stream is decoded and handed
// on at the analysis rate only, and a client that joins mid-GOP is not counted as broken.
#include "matthan/ingest/stream_session.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <mutex>
#include <thread>

#include "child_process.hpp"

namespace matthan::ingest {
namespace {

using namespace std::chrono_literals;

struct CountingSink : FrameSink {
  std::atomic<int> frames{0};
  std::atomic<int> width{0};
  void on_frame(LumaFramePtr frame) override {
    ++frames;
    width = frame->width;
  }
};

TEST(StreamSession, PacketsFramesAndMidGopJoin) {
  const auto dir = test::temp_dir("matthan-ss");
  test::ChildProcess camsim({test::binary_path("matthan-camsim"), "--cameras", "1", "--duration",
                             "6", "--seed", "5", "--cache", dir + "/../matthan-it-cache"},
                            dir + "/camsim.log");
  auto line = camsim.wait_for_line("CAMSIM ", 180s);
  ASSERT_TRUE(line.has_value()) << test::read_file(dir + "/camsim.log");
  const std::string base = line->substr(7);
  SystemClock clock;

  // The record stream: not decoded, every packet to the subscriber.
  StreamOptions main_opts;
  main_opts.camera_id = "cam1";
  main_opts.kind = StreamKind::main;
  main_opts.url = base + "/cam1/main";
  StreamSession main(main_opts, clock, {});
  std::mutex m;
  std::vector<EncodedPacketPtr> packets;
  main.packets().subscribe("recorder", DropPolicy::never, 0, 64 << 20,
                           [&](const EncodedPacketPtr& p) {
                             std::lock_guard lock(m);
                             packets.push_back(p);
                           });

  // The analysis stream, joined by a second client while the first is streaming (mid-GOP).
  CountingSink first_sink, late_sink;
  StreamOptions sub_opts;
  sub_opts.camera_id = "cam1";
  sub_opts.kind = StreamKind::sub;
  sub_opts.url = base + "/cam1/sub";
  sub_opts.decode = true;
  sub_opts.analysis_fps = 5;
  sub_opts.frame_sink = &first_sink;
  StreamSession first(sub_opts, clock, {});
  main.start();
  first.start();
  std::this_thread::sleep_for(2900ms);  // not a multiple of the 2 s GOP
  sub_opts.frame_sink = &late_sink;
  StreamSession late(sub_opts, clock, {});
  late.start();
  std::this_thread::sleep_for(6s);
  const auto late_stats = late.stats();
  const auto first_stats = first.stats();
  late.stop();
  first.stop();
  main.stop();

  EXPECT_EQ(late_stats.state, StreamState::online) << late_stats.last_error;
  EXPECT_EQ(late_stats.decode_errors, 0u);
  EXPECT_GT(late_stats.frames_decoded, 100u);
  EXPECT_EQ(first_stats.decode_errors, 0u);
  // Decoded at 25 fps, handed on at 5 fps: ~5 of every 25 frames reach the sink.
  const double ratio =
      static_cast<double>(first_stats.frames_to_analysis) / first_stats.frames_decoded;
  EXPECT_NEAR(ratio, 0.2, 0.03) << first_stats.frames_to_analysis << "/"
                                << first_stats.frames_decoded;
  EXPECT_EQ(first_sink.frames.load(), static_cast<int>(first_stats.frames_to_analysis));
  EXPECT_EQ(first_sink.width.load(), 640);

  std::lock_guard lock(m);
  ASSERT_GT(packets.size(), 150u);
  const auto& params = *packets.front()->params;
  EXPECT_EQ(params.codec, Codec::h264);
  EXPECT_EQ(params.width, 1280);
  EXPECT_EQ(params.camera_id, "cam1");
  EXPECT_TRUE(packets.front()->keyframe);  // the recorder starts on a keyframe
  int keyframes = 0;
  std::int64_t last_wall = 0;
  for (const auto& p : packets) {
    keyframes += p->keyframe ? 1 : 0;
    if (p->params->is_video) {
      EXPECT_GT(p->wall_us, last_wall);  // server time never goes back
      last_wall = p->wall_us;
    }
    EXPECT_FALSE(p->data.empty());
  }
  EXPECT_GE(keyframes, 4);  // 2 s GOP over ~9 s
  EXPECT_LE(keyframes, 6);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace matthan::ingest
