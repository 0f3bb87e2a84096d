#include "matthan/analytics/analysis_pool.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <thread>

namespace matthan::analytics {
namespace {

LumaFramePtr frame(const std::string& cam, std::uint8_t value, std::int64_t seq) {
  auto f = std::make_shared<LumaFrame>();
  f->camera_id = cam;
  f->width = 64;
  f->height = 36;
  f->stride = 64;
  f->sequence = seq;
  f->luma.assign(64 * 36, value);
  return f;
}

TEST(AnalysisPool, SlowAnalysisDropsOldFramesInsteadOfQueueing) {
  SystemClock clock;
  std::atomic<bool> release{false};
  std::atomic<int> seen{0};
  std::atomic<std::int64_t> last_seq{0};
  std::atomic<bool> busy{false};
  AnalysisPool pool(1, 2, clock, [&](const LumaFrame& f) {
    busy = true;
    while (!release) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    ++seen;
    last_seq = f.sequence;
  });
  pool.on_frame(frame("cam1", 100, 1));
  while (!busy) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  for (int i = 2; i <= 20; ++i) pool.on_frame(frame("cam1", 100, i));
  release = true;
  for (int i = 0; i < 200 && pool.stats("cam1").frames_analysed < 3; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  const auto s = pool.stats("cam1");
  // One frame was taken by the worker, two wait (depth 2); the other 17 were dropped.
  EXPECT_EQ(s.frames_analysed, 3u);
  EXPECT_EQ(s.frames_dropped, 17u);
  EXPECT_EQ(last_seq.load(), 20);  // the newest frame is never the one dropped
  EXPECT_NEAR(s.mean_luma, 100.0, 0.01);
}

TEST(AnalysisPool, CamerasDoNotStarveEachOther) {
  SystemClock clock;
  AnalysisPool pool(2, 2, clock);
  for (int i = 0; i < 50; ++i) {
    pool.on_frame(frame("a", 10, i));
    pool.on_frame(frame("b", 200, i));
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_GT(pool.stats("a").frames_analysed, 10u);
  EXPECT_GT(pool.stats("b").frames_analysed, 10u);
  EXPECT_NEAR(pool.stats("b").mean_luma, 200.0, 0.01);
}

// The analysis asks for frames sooner; the pool passes that on to the demux only while the
// camera has no frame waiting (a pool that is behind takes no extra frames).
TEST(AnalysisPool, SoonerOnlyWhileTheCameraIsNotBehind) {
  SystemClock clock;
  std::atomic<bool> release{false};
  std::atomic<bool> busy{false};
  std::atomic<bool> asks{true};
  AnalysisPool pool(
      1, 2, clock,
      [&](const LumaFrame&) {
        busy = true;
        while (!release) std::this_thread::sleep_for(std::chrono::milliseconds(1));
      },
      [&](const std::string& id) { return asks && id == "cam1"; });
  EXPECT_TRUE(pool.wants_sooner("cam1"));
  EXPECT_FALSE(pool.wants_sooner("cam2"));
  pool.on_frame(frame("cam1", 100, 1));
  while (!busy) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  EXPECT_TRUE(pool.wants_sooner("cam1"));  // one in the works, none waiting
  pool.on_frame(frame("cam1", 100, 2));
  EXPECT_FALSE(pool.wants_sooner("cam1"));  // one waiting: behind
  release = true;
  for (int i = 0; i < 200 && pool.stats("cam1").frames_analysed < 2; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  EXPECT_TRUE(pool.wants_sooner("cam1"));
  asks = false;
  EXPECT_FALSE(pool.wants_sooner("cam1"));
  AnalysisPool plain(1, 2, clock);
  EXPECT_FALSE(plain.wants_sooner("cam1"));
}

}  // namespace
}  // namespace matthan::analytics
