// Motion detector and event tracker on synthetic frames.
#include <gtest/gtest.h>

#include <atomic>
#include <cmath>
#include <expected>
#include <optional>
#include <random>
#include <thread>

#include "matthan/analytics/event_tracker.hpp"
#include "matthan/analytics/motion_detector.hpp"
#include "matthan/camsim/frame_code.hpp"
#include "matthan/camsim/renderer.hpp"
#include "matthan/camsim/scenario.hpp"

namespace matthan::analytics {
namespace {

// A textured, noisy 640x360 scene with an optional dark square and a brightness offset.
LumaFrame scene(int n, int square_x, int offset, unsigned seed = 7) {
  LumaFrame f;
  f.camera_id = "t";
  f.width = 640;
  f.height = 360;
  f.stride = 640;
  f.wall_us = 1'000'000'000'000 + static_cast<std::int64_t>(n) * 200'000;  // 5 fps
  f.luma.resize(640 * 360);
  std::mt19937 rng(seed + static_cast<unsigned>(n));
  std::normal_distribution<double> noise(0, 3);
  for (int y = 0; y < 360; ++y) {
    for (int x = 0; x < 640; ++x) {
      double v = 90 + 40 * ((x / 40 + y / 40) % 2) + noise(rng) + offset;
      if (square_x >= 0 && x >= square_x && x < square_x + 40 && y >= 200 && y < 300) v = 30;
      f.luma[static_cast<std::size_t>(y) * 640 + x] =
          static_cast<std::uint8_t>(std::clamp(v, 0.0, 255.0));
    }
  }
  return f;
}

TEST(MotionDetector, NoiseAloneIsNotMotion) {
  MotionDetector d;
  int frames_with_blobs = 0;
  for (int n = 0; n < 60; ++n)
    frames_with_blobs += d.process(scene(n, -1, 0)).blobs.empty() ? 0 : 1;
  EXPECT_EQ(frames_with_blobs, 0);
}

TEST(MotionDetector, MovingObjectIsFoundWhereItIs) {
  MotionDetector d;
  for (int n = 0; n < 20; ++n) d.process(scene(n, -1, 0));
  for (int n = 20; n < 30; ++n) {
    const int x = 100 + (n - 20) * 30;
    const auto r = d.process(scene(n, x, 0));
    if (n == 20) {
      // Persistence: a first sighting is not yet an object (a raindrop would be gone next frame).
      EXPECT_TRUE(r.blobs.empty());
      EXPECT_EQ(r.new_blobs, 1);
      continue;
    }
    ASSERT_FALSE(r.blobs.empty()) << n;
    bool near = false;
    for (const auto& b : r.blobs) {
      const double cx = (b.box.x + b.box.w / 2) * 640;
      const double cy = (b.box.y + b.box.h / 2) * 360;
      near = near || (std::abs(cx - (x + 20)) < 40 && std::abs(cy - 250) < 40);
    }
    EXPECT_TRUE(near) << n;
    EXPECT_FALSE(r.global_change);
  }
}

TEST(MotionDetector, LightSwitchRecalibratesInsteadOfAlarming) {
  MotionDetector d;
  for (int n = 0; n < 20; ++n) d.process(scene(n, -1, 0));
  const auto step = d.process(scene(20, -1, 60));  // the lights come on
  EXPECT_TRUE(step.global_change);
  EXPECT_TRUE(step.blobs.empty());
  int frames_with_blobs = 0;
  for (int n = 21; n < 60; ++n)
    frames_with_blobs += d.process(scene(n, -1, 60)).blobs.empty() ? 0 : 1;
  EXPECT_EQ(frames_with_blobs, 0);
  // And it still sees things afterwards.
  d.process(scene(60, 300, 60));
  EXPECT_FALSE(d.process(scene(61, 310, 60)).blobs.empty());
}

TEST(MotionDetector, MaskedRegionIsIgnored) {
  MotionSettings s;
  s.masks = {{{0.0, 0.5}, {0.5, 0.5}, {0.5, 1.0}, {0.0, 1.0}}};  // lower left quarter
  MotionDetector d(s);
  for (int n = 0; n < 20; ++n) d.process(scene(n, -1, 0));
  for (int n = 20; n < 25; ++n) EXPECT_TRUE(d.process(scene(n, 50 + n * 5, 0)).blobs.empty()) << n;
  d.process(scene(25, 450, 0));
  EXPECT_FALSE(d.process(scene(26, 460, 0)).blobs.empty());
}

struct Recorder : EventSink {
  std::vector<std::pair<EventPhase, Event>> got;
  void on_event(EventPhase phase, const Event& event) override { got.emplace_back(phase, event); }
};

MotionResult moving(double score) {
  MotionResult r;
  r.blobs.push_back({{0.1, 0.2, 0.1, 0.3}, score});
  r.score = score;
  return r;
}

TEST(EventTracker, HysteresisStartsAfterPersistenceAndEndsAfterGap) {
  Recorder rec;
  TrackerSettings s;
  s.min_frames = 3;
  s.gap_s = 2;
  EventTracker t({"cam1", "xa", "ap", {}, {}, {}}, s, &rec);
  const std::int64_t t0 = 1'000'000'000'000;
  // A single blip is not an event.
  t.update(t0, moving(0.01));
  t.update(t0 + 200'000, {});
  EXPECT_TRUE(rec.got.empty());
  // Three frames in a row are.
  for (int i = 0; i < 3; ++i) t.update(t0 + 1'000'000 + i * 200'000, moving(0.01 + i * 0.01));
  ASSERT_EQ(rec.got.size(), 1u);
  EXPECT_EQ(rec.got[0].first, EventPhase::start);
  EXPECT_EQ(rec.got[0].second.start_us, t0 + 1'000'000);  // the first frame of the streak
  EXPECT_EQ(rec.got[0].second.camera_id, "cam1");
  EXPECT_EQ(rec.got[0].second.id.size(), 26u);
  // A short pause does not end it; a bigger object later updates the peak.
  t.update(t0 + 1'800'000, {});
  t.update(t0 + 3'000'000, moving(0.2));
  ASSERT_EQ(rec.got.size(), 2u);
  EXPECT_EQ(rec.got[1].first, EventPhase::update);
  EXPECT_DOUBLE_EQ(rec.got[1].second.peak_score, 0.2);
  // Two seconds of quiet end it at the last moving frame.
  t.update(t0 + 4'000'000, {});
  t.update(t0 + 5'000'001, {});
  ASSERT_EQ(rec.got.size(), 3u);
  EXPECT_EQ(rec.got[2].first, EventPhase::end);
  EXPECT_EQ(rec.got[2].second.end_us, t0 + 3'000'001);
  EXPECT_EQ(rec.got[2].second.id, rec.got[0].second.id);
  EXPECT_FALSE(t.active());
}

}  // namespace
}  // namespace matthan::analytics

#include <opencv2/imgproc.hpp>

#include "matthan/analytics/tamper_detector.hpp"

namespace matthan::analytics {
namespace {

struct TamperRun {
  Recorder rec;
  TamperDetector det{{"cam1", "xa", "ap", {}, {}, {}}, TamperSettings{}, &rec};
  std::int64_t t = 1'000'000'000'000;
  // 320x180 textured frames at 5 fps; `kind`: 0 normal, 1 covered, 2 defocused.
  void run(int frames, int kind) {
    for (int n = 0; n < frames; ++n) {
      cv::Mat img(180, 320, CV_8U);
      cv::RNG rng(static_cast<std::uint64_t>(t));
      for (int y = 0; y < 180; ++y) {
        for (int x = 0; x < 320; ++x)
          img.at<std::uint8_t>(y, x) = static_cast<std::uint8_t>(80 + 60 * ((x / 12 + y / 9) % 2));
      }
      if (kind == 1) img.setTo(10);
      if (kind == 2) cv::GaussianBlur(img, img, {0, 0}, 4.0);
      if (kind == 3) {  // the camera was knocked: the view is shifted and turned a little
        const cv::Mat m = cv::getRotationMatrix2D({160, 90}, 4.0, 1.0) +
                          (cv::Mat_<double>(2, 3) << 0, 0, 17, 0, 0, 7);
        cv::warpAffine(img, img, m, img.size(), cv::INTER_LINEAR, cv::BORDER_REFLECT);
      }
      cv::Mat noise(180, 320, CV_16S);
      rng.fill(noise, cv::RNG::NORMAL, 0, 2);
      cv::add(img, noise, img, cv::noArray(), CV_8U);
      det.update(t, img.data, 320, 180);
      t += 200'000;
    }
  }
};

TEST(TamperDetector, CoveredLensHeldFiveSecondsIsOneEvent) {
  TamperRun r;
  r.run(50, 0);
  r.run(20, 1);  // 4 s: not yet
  EXPECT_TRUE(r.rec.got.empty());
  r.run(10, 1);  // past 5 s
  ASSERT_EQ(r.rec.got.size(), 1u);
  EXPECT_EQ(r.rec.got[0].second.type, "tamper");
  EXPECT_EQ(r.rec.got[0].second.label, "covered");
  r.run(20, 0);  // uncovered for 4 s: ends 2 s after it cleared
  ASSERT_EQ(r.rec.got.size(), 2u);
  EXPECT_EQ(r.rec.got[1].first, EventPhase::end);
  EXPECT_NEAR(static_cast<double>(*r.rec.got[1].second.end_us - r.rec.got[0].second.start_us),
              6'000'000.0, 400'000.0);
}

TEST(TamperDetector, DefocusAgainstLearnedBaselineAndNotForAShortBlur) {
  TamperRun r;
  r.run(50, 0);
  r.run(15, 2);  // 3 s of blur: an autofocus hunt, not tamper
  r.run(10, 0);
  EXPECT_TRUE(r.rec.got.empty());
  r.run(30, 2);
  ASSERT_EQ(r.rec.got.size(), 1u);
  EXPECT_EQ(r.rec.got[0].second.label, "defocused");
}

TEST(TamperDetector, MovedViewIsAnEventAndANewViewIsLearntAfterAMinute) {
  TamperRun r;
  r.run(50, 0);
  r.run(30, 3);  // 6 s pointing elsewhere
  ASSERT_EQ(r.rec.got.size(), 1u);
  EXPECT_EQ(r.rec.got[0].second.label, "moved");
  // Left there: after 60 s the new view is the view, and the event ends.
  r.run(300, 3);
  ASSERT_EQ(r.rec.got.size(), 2u);
  EXPECT_EQ(r.rec.got[1].first, EventPhase::end);
}

// One simulator camera rendered at 640x360 (the analysis stream's size), its frame-index strip
// burned in as the simulator serves it, as a grey picture.
class SimulatedCamera {
 public:
  // `actors`: the scenario's actor lines, e.g. "{kind: shake, start_s: 8, duration_s: 5}".
  // `texture`: the simulator draws its background's fine texture from OpenCV's global
  // generator; set here, so a test sees the same picture whichever tests ran before it.
  SimulatedCamera(int seed, const std::string& background, const std::vector<std::string>& actors,
                  std::uint64_t texture = 0xffffffff)
      : scenario_(camsim::parse_scenario(yaml(seed, background, actors))) {
    cv::theRNG().state = texture;
    if (scenario_) renderer_.emplace(*scenario_, scenario_->cameras.front());
  }
  bool ok() const { return renderer_.has_value(); }
  cv::Mat grey(int n) {
    cv::Mat bgr = renderer_->render(n), out;
    camsim::burn_frame_code(bgr.data, static_cast<int>(bgr.step), 3, bgr.cols, bgr.rows,
                            static_cast<std::uint32_t>(n));
    cv::cvtColor(bgr, out, cv::COLOR_BGR2GRAY);
    return out;
  }

 private:
  static std::string yaml(int seed, const std::string& background,
                          const std::vector<std::string>& actors) {
    std::string y = "seed: " + std::to_string(seed) +
                    "\ncameras:\n  - id: sim\n    background: " + background +
                    "\n    main: {width: 640, height: 360}\n    actors:\n";
    for (const auto& a : actors) y += "      - " + a + "\n";
    return y;
  }
  std::expected<camsim::Scenario, std::string> scenario_;
  std::optional<camsim::SceneRenderer> renderer_;
};

// The camera's own overlay does not turn with it: its high-contrast edges stay where they were
// and, compared over the whole picture, made a turned camera look unmoved. The simulator's
// houses knocked aside at 20 s (tests/scenarios/eval/moved.yaml), with its frame-index strip.
TEST(TamperDetector, AMovedViewIsFoundUnderTheCamerasOwnOverlay) {
  SimulatedCamera camera(1, "houses", {"{kind: move, start_s: 20, duration_s: 30, strength: 1}"});
  ASSERT_TRUE(camera.ok());
  Recorder rec;
  TamperDetector det{{"moved", "", "", {}, {}, {}}, TamperSettings{}, &rec};
  for (int k = 0; k < 150; ++k) {  // 30 s at 5 fps
    cv::Mat small;
    cv::resize(camera.grey(k * 5), small, {320, 180}, 0, 0, cv::INTER_AREA);
    det.update(1'000'000'000'000 + k * 200'000LL, small.data, small.cols, small.rows);
    if (k == 99) {
      EXPECT_TRUE(rec.got.empty());  // 20 s with the changing strip: no tamper
    }
  }
  ASSERT_EQ(rec.got.size(), 1u);
  EXPECT_EQ(rec.got[0].second.label, "moved");
}

TEST(TamperDetector, CoveredThenDefocusedAreTwoEvents) {
  TamperRun r;
  r.run(50, 0);
  r.run(30, 1);
  r.run(30, 2);
  ASSERT_EQ(r.rec.got.size(), 3u);
  EXPECT_EQ(r.rec.got[0].second.label, "covered");
  EXPECT_EQ(r.rec.got[1].first, EventPhase::end);
  EXPECT_EQ(r.rec.got[2].second.label, "defocused");
}

}  // namespace
}  // namespace matthan::analytics

#include "matthan/analytics/person_classifier.hpp"

namespace matthan::analytics {
namespace {

TEST(PersonClassifier, RateLimitPerCameraAndBoundedQueue) {
  std::atomic<int> calls{0};
  // A crop with a clear silhouette is not needed here: the budget is what is tested.
  PersonClassifier c([&](const std::string&, const std::string&) { ++calls; }, 2, 1'000'000);
  auto job = [](const std::string& cam) {
    PersonJob j;
    j.camera_id = cam;
    j.event_id = "e";
    j.width = 200;
    j.height = 300;
    j.luma.assign(200 * 300, 128);
    j.target_height_px = 200;
    return j;
  };
  EXPECT_TRUE(c.submit(job("a"), 0));
  EXPECT_FALSE(c.submit(job("a"), 500'000));  // same camera within a second
  EXPECT_TRUE(c.submit(job("a"), 1'000'000));
  int accepted = 0;
  for (int i = 0; i < 20; ++i) accepted += c.submit(job("cam" + std::to_string(i)), 0) ? 1 : 0;
  const auto expected_runs = static_cast<std::uint64_t>(2 + accepted);
  for (int i = 0; i < 500 && c.stats().runs < expected_runs; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  const auto s = c.stats();
  EXPECT_EQ(s.runs, expected_runs);
  EXPECT_EQ(s.dropped, static_cast<std::uint64_t>(20 - accepted));  // the budget drops, never lags
  EXPECT_EQ(s.people, 0u);                                          // a grey crop holds no person
  EXPECT_EQ(calls.load(), 0);
}

}  // namespace
}  // namespace matthan::analytics

#include "matthan/analytics/engine.hpp"

namespace matthan::analytics {
namespace {

int minute_2330(std::int64_t) {
  return 23 * 60 + 30;
}
int minute_1000(std::int64_t) {
  return 10 * 60;
}

// Zones: the square moves along y 200..300 (the lower half). A zone over the right half only
// alarms once the square is there, names itself in the event and applies its own minimum size.
TEST(Zones, OnlyMotionInsideADetectionZoneRaisesAnEventNamingTheZone) {
  Recorder rec;
  CameraInfo cam{"t", "xa", "ap", {}, {}, {}};
  Zone gate;
  gate.name = "cong";
  gate.polygon = {{0.5, 0.4}, {1.0, 0.4}, {1.0, 1.0}, {0.5, 1.0}};
  cam.zones = {gate};
  TrackerSettings ts;
  ts.minute_of_day = &minute_2330;
  Engine engine({cam}, {}, ts, {}, &rec, "", Engine::People::off);
  for (int n = 0; n < 20; ++n) engine.analyze(scene(n, -1, 0));
  // Left half: moving, but outside the zone.
  for (int n = 20; n < 30; ++n) engine.analyze(scene(n, 20 + (n - 20) * 10, 0));
  EXPECT_TRUE(rec.got.empty());
  // Right half: inside.
  for (int n = 30; n < 40; ++n) engine.analyze(scene(n, 400 + (n - 30) * 10, 0));
  ASSERT_FALSE(rec.got.empty());
  EXPECT_EQ(rec.got[0].first, EventPhase::start);
  EXPECT_EQ(rec.got[0].second.zones, std::vector<std::string>{"cong"});
  EXPECT_TRUE(rec.got[0].second.armed);  // no schedule: always armed
}

TEST(Zones, AZoneMinimumAreaDropsSmallerObjects) {
  Recorder rec;
  CameraInfo cam{"t", "xa", "ap", {}, {}, {}};
  Zone z;
  z.name = "san";
  z.polygon = {{0, 0}, {1, 0}, {1, 1}, {0, 1}};
  z.min_area = 0.05;  // the square is ~1.7 % of the frame
  cam.zones = {z};
  Engine engine({cam}, {}, {}, {}, &rec, "", Engine::People::off);
  for (int n = 0; n < 20; ++n) engine.analyze(scene(n, -1, 0));
  for (int n = 20; n < 35; ++n) engine.analyze(scene(n, 100 + (n - 20) * 10, 0));
  EXPECT_TRUE(rec.got.empty());
}

// Something new moves: the engine asks for the frames between the regular ones until the
// event starts, so persistence is confirmed 0.3 s after the first sighting instead of 0.4 s (an
// early frame counts half a frame: the persistence asked for is still 1.5 regular intervals
// after the new one); then it stops asking.
TEST(Engine, ANewObjectIsConfirmedAtTwiceTheRate) {
  Recorder rec;
  Engine engine({{"t", "xa", "ap", {}, {}, {}}}, {}, {}, {}, &rec, "", Engine::People::off);
  for (int n = 0; n < 20; ++n) {
    engine.analyze(scene(n, -1, 0));
    EXPECT_FALSE(engine.wants_sooner("t")) << n;  // a quiet scene: the regular rate
  }
  engine.analyze(scene(20, 100, 0));  // the square appears: new, not yet an object
  EXPECT_TRUE(engine.wants_sooner("t"));
  auto half = scene(20, 105, 0);
  half.wall_us += 100'000;
  half.early = true;
  engine.analyze(half);  // 0.1 s on: it persists (half a frame of two)
  EXPECT_TRUE(engine.wants_sooner("t"));
  engine.analyze(scene(21, 110, 0));  // 0.2 s: one and a half
  EXPECT_TRUE(engine.wants_sooner("t"));
  EXPECT_TRUE(rec.got.empty());
  auto half2 = scene(21, 115, 0);
  half2.wall_us += 100'000;
  half2.early = true;
  engine.analyze(half2);  // 0.3 s after it appeared: two, the event starts
  ASSERT_EQ(rec.got.size(), 1u);
  EXPECT_EQ(rec.got[0].first, EventPhase::start);
  EXPECT_EQ(rec.got[0].second.start_us, half.wall_us);
  EXPECT_FALSE(engine.wants_sooner("t"));  // an open event: the regular rate again
  EXPECT_FALSE(engine.wants_sooner("other"));
}

TEST(Schedule, ArmedHoursWrapMidnightAndMarkEvents) {
  Schedule night;
  std::pair<int, int> r;
  std::string why;
  ASSERT_TRUE(parse_time_range("22:00-05:00", &r, &why));
  night.ranges = {r};
  EXPECT_TRUE(night.armed_at_minute(23 * 60));
  EXPECT_TRUE(night.armed_at_minute(4 * 60 + 59));
  EXPECT_FALSE(night.armed_at_minute(5 * 60));
  EXPECT_FALSE(night.armed_at_minute(12 * 60));
  EXPECT_EQ(night.to_string(), "22:00-05:00");
  EXPECT_FALSE(parse_time_range("25:00-05:00", &r, &why));
  EXPECT_FALSE(parse_time_range("22:00-22:00", &r, &why));
  EXPECT_FALSE(parse_time_range("22h-5h", &r, &why));

  // The same motion by day is stored unarmed; by night armed.
  for (auto [minute, armed] : {std::pair{&minute_1000, false}, std::pair{&minute_2330, true}}) {
    Recorder rec;
    TrackerSettings ts;
    ts.minute_of_day = minute;
    EventTracker t({"cam1", "xa", "ap", {}, {}, night}, ts, &rec);
    for (int i = 0; i < 3; ++i) t.update(1'000'000 + i * 200'000, moving(0.05));
    ASSERT_EQ(rec.got.size(), 1u);
    EXPECT_EQ(rec.got[0].second.armed, armed);
  }
}

}  // namespace
}  // namespace matthan::analytics

namespace matthan::analytics {
namespace {

// Per-stage tests on synthetic frames: each nuisance is rendered on a textured 640x360 scene;
// with the stage on it raises no blob, with the stage off it does (so the stage is what helps).
struct Synth {
  cv::Mat base;  // 640x360 texture: blobs of varied grey, like a real scene's detail
  explicit Synth(unsigned seed = 3) {
    base = cv::Mat(360, 640, CV_8U, cv::Scalar(110));
    cv::RNG rng(seed);
    for (int i = 0; i < 400; ++i) {
      cv::circle(base, {rng.uniform(0, 640), rng.uniform(0, 360)}, rng.uniform(3, 14),
                 cv::Scalar(rng.uniform(40, 200)), cv::FILLED);
    }
    cv::GaussianBlur(base, base, {3, 3}, 0);
  }
  static LumaFrame frame(const cv::Mat& img, int n) {
    cv::Mat noisy;
    cv::Mat noise(img.size(), CV_16S);
    cv::RNG rng(static_cast<std::uint64_t>(n) * 7 + 1);
    rng.fill(noise, cv::RNG::NORMAL, 0, 2.5);
    cv::add(img, noise, noisy, cv::noArray(), CV_8U);
    LumaFrame f;
    f.camera_id = "t";
    f.width = img.cols;
    f.height = img.rows;
    f.stride = img.cols;
    f.wall_us = 1'000'000'000'000 + static_cast<std::int64_t>(n) * 200'000;
    f.luma.assign(noisy.data, noisy.data + noisy.total());
    return f;
  }
};

// Frames with blobs while `nuisance(img, n)` draws on the scene from frame 30 to 80.
template <typename F>
int frames_with_blobs(MotionSettings settings, F nuisance) {
  Synth s;
  MotionDetector d(settings);
  int count = 0;
  for (int n = 0; n < 80; ++n) {
    cv::Mat img = s.base.clone();
    if (n >= 30) nuisance(img, n);
    const auto r = d.process(Synth::frame(img, n));
    if (n >= 30) count += r.blobs.empty() ? 0 : 1;
  }
  return count;
}

TEST(MotionStages, RainIsFilteredBySpeckleAndPersistence) {
  auto rain = [](cv::Mat& img, int n) {
    cv::RNG rng(static_cast<std::uint64_t>(n) * 31);
    for (int k = 0; k < 150; ++k) {
      const cv::Point p(rng.uniform(0, 640), rng.uniform(0, 360));
      cv::line(img, p, p + cv::Point(2, 9), cv::Scalar(230), 1);
    }
  };
  MotionSettings on;
  EXPECT_EQ(frames_with_blobs(on, rain), 0);
  MotionSettings off;
  off.speckle_stage = false;
  off.track_stage = false;
  EXPECT_GT(frames_with_blobs(off, rain), 10);
}

TEST(MotionStages, SwayingFoliageIsLearntAndIgnored) {
  // A bush whose leaves swing back and forth all the time.
  auto foliage = [](cv::Mat& img, int n) {
    const int dx = static_cast<int>(8 * std::sin(n * 1.3));
    for (int k = 0; k < 6; ++k) {
      cv::circle(img, {460 + 25 * k + dx, 120 + 15 * (k % 3)}, 14, cv::Scalar(40 + 25 * k),
                 cv::FILLED);
    }
  };
  // Swaying from the start (as at a camera's first connection): learnt during the warm-up and
  // ignored after it.
  auto count = [&](MotionSettings settings) {
    Synth s;
    MotionDetector d(settings);
    int blobs = 0;
    for (int n = 0; n < 120; ++n) {
      cv::Mat img = s.base.clone();
      foliage(img, n);
      const auto r = d.process(Synth::frame(img, n));
      if (n >= 30) blobs += r.blobs.empty() ? 0 : 1;
    }
    return blobs;
  };
  MotionSettings on;
  EXPECT_EQ(count(on), 0);
  MotionSettings off;
  off.periodic_stage = false;
  EXPECT_GT(count(off), 30);
}

TEST(MotionStages, ACameraShakeIsNotMotion) {
  auto shake = [](cv::Mat& img, int n) {
    cv::RNG rng(static_cast<std::uint64_t>(n) * 17);
    const cv::Mat m =
        (cv::Mat_<double>(2, 3) << 1, 0, rng.uniform(-5.0, 5.0), 0, 1, rng.uniform(-5.0, 5.0));
    cv::warpAffine(img, img, m, img.size(), cv::INTER_LINEAR, cv::BORDER_REPLICATE);
  };
  MotionSettings on;
  EXPECT_EQ(frames_with_blobs(on, shake), 0);
  MotionSettings off;
  off.shake_stage = false;
  EXPECT_GT(frames_with_blobs(off, shake), 10);
}

// Cameras burn their clock into the picture and few users mask it. An overlay does not shake
// with the pole, so a shift never explains its change: the grid cells it covers are left out
// of the shake test, or the gust's frames that barely moved would be motion. The scene is the
// simulator's market with its pole shaken (bench/compare/nuisance.yaml), the overlay its
// frame-index strip, which changes in place on every frame as a DVR's clock with tenths does;
// analysed at 10 fps of its 25.
TEST(MotionStages, ACameraShakeUnderTheCamerasOwnOverlayIsNotMotion) {
  // Frames with blobs outside the gusts and within them.
  auto run = [&](MotionSettings settings, std::uint64_t texture) {
    SimulatedCamera camera(11, "market",
                           {"{kind: shake, start_s: 8, duration_s: 5, strength: 0.6}",
                            "{kind: shake, start_s: 28, duration_s: 5, strength: 1}"},
                           texture);
    EXPECT_TRUE(camera.ok());
    MotionDetector d(settings);
    std::pair<int, int> blobs{0, 0};
    for (int k = 0; k < 350 && camera.ok(); ++k) {
      const int n = k * 5 / 2;
      const cv::Mat grey = camera.grey(n);
      LumaFrame f;
      f.camera_id = "shake";
      f.width = grey.cols;
      f.height = grey.rows;
      f.stride = static_cast<int>(grey.step);
      f.wall_us = 1'000'000'000'000 + static_cast<std::int64_t>(k) * 100'000;
      f.luma.assign(grey.data, grey.data + grey.total());
      const double t = n / 25.0;
      const bool gust = (t >= 8 && t < 13) || (t >= 28 && t < 33);
      const bool moving = !d.process(f).blobs.empty();
      if (t >= 3) (gust ? blobs.second : blobs.first) += moving ? 1 : 0;
    }
    return blobs;
  };
  // Summed over four textures of the scene: which gust frames stay unexplained depends on the
  // fine texture (measured per texture: 11 -> 2, 9 -> 3, 20 -> 1, 6 -> 2; 46 -> 8 in all).
  std::pair<int, int> on{0, 0}, before{0, 0};
  for (const std::uint64_t texture : {1, 2, 3, 4}) {
    const auto a = run(MotionSettings{}, texture);
    MotionSettings whole;  // the whole picture compared, as before: the overlay hides the shake
    whole.shake_ignore_cells = 0;
    const auto b = run(whole, texture);
    on = {on.first + a.first, on.second + a.second};
    before = {before.first + b.first, before.second + b.second};
  }
  EXPECT_EQ(on.first, 0);  // the overlay alone is not motion
  EXPECT_GT(before.second, 20);
  EXPECT_LT(4 * on.second, before.second) << on.second << " of " << before.second;
}

// The shift search (phase correlation) is the detector's dearest step: while a large object
// crosses, it runs about once a second instead of on every frame, and a shake that starts
// during the crossing is still found on its first frame.
TEST(MotionStages, TheShakeTestIsNotRepeatedOnABusySceneButStillCatchesAShake) {
  auto run = [](std::int64_t retest_us) {
    Synth s;
    MotionSettings settings;
    settings.shake_retest_us = retest_us;
    MotionDetector d(settings);
    cv::Mat card(100, 250, CV_8U);
    cv::RNG rng(5);
    rng.fill(card, cv::RNG::UNIFORM, 0, 255);
    struct Counts {
      int tested_crossing = 0, tested_shaking = 0, shake_frames = 0, first_shake = -1;
    } c;
    for (int n = 0; n < 90; ++n) {
      cv::Mat img = s.base.clone();
      if (n >= 30) card.copyTo(img(cv::Rect(20 + 4 * (n - 30), 40, card.cols, card.rows)));
      if (n >= 60) {  // the pole shakes while the object goes on crossing
        cv::RNG r(static_cast<std::uint64_t>(n) * 17);
        const cv::Mat m =
            (cv::Mat_<double>(2, 3) << 1, 0, r.uniform(-5.0, 5.0), 0, 1, r.uniform(-5.0, 5.0));
        cv::warpAffine(img, img, m, img.size(), cv::INTER_LINEAR, cv::BORDER_REPLICATE);
      }
      const auto r = d.process(Synth::frame(img, n));
      (n < 60 ? c.tested_crossing : c.tested_shaking) += r.shake_tested ? 1 : 0;
      if (r.shake) {
        ++c.shake_frames;
        if (c.first_shake < 0) c.first_shake = n;
      }
    }
    return c;
  };
  const auto every = run(0);  // the test on every frame that qualifies
  const auto lately = run(MotionSettings{}.shake_retest_us);
  EXPECT_GE(every.tested_crossing, 15);  // the crossing alone qualifies on most frames...
  EXPECT_LE(lately.tested_crossing, 8);  // ...and is tested about once a second (5 fps)
  EXPECT_EQ(every.first_shake, 60);
  EXPECT_EQ(lately.first_shake, 60);
  // Within the gust every frame is asked again: the same frames found shaken.
  EXPECT_EQ(lately.tested_shaking, every.tested_shaking);
  EXPECT_EQ(lately.shake_frames, every.shake_frames);
  EXPECT_GE(every.shake_frames, 10);
}

TEST(MotionStages, AHeadlightSweepingTheSceneIsLightNotAnObject) {
  cv::Mat glow(240, 240, CV_8U);
  for (int y = 0; y < 240; ++y) {
    for (int x = 0; x < 240; ++x) {
      const double d2 = ((x - 120) * (x - 120) + (y - 120) * (y - 120)) / (0.18 * 120 * 120);
      glow.at<std::uint8_t>(y, x) = static_cast<std::uint8_t>(70 * std::exp(-d2));
    }
  }
  auto headlight = [&](cv::Mat& img, int n) {
    const cv::Rect where(40 + (n - 30) * 10, 100, 240, 240);
    const cv::Rect clipped = where & cv::Rect(0, 0, 640, 360);
    cv::Mat roi = img(clipped);
    cv::add(roi, glow(clipped - where.tl()), roi);
  };
  MotionSettings on;
  EXPECT_EQ(frames_with_blobs(on, headlight), 0);
  MotionSettings off;
  off.texture_stage = false;
  EXPECT_GT(frames_with_blobs(off, headlight), 10);
}

// Dusk: the light fades and the gain normalisation scales the picture back up, but the clock the
// camera burns into its picture does not fade. The background learnt the label at the gains of
// the seconds before, so the scaled label differs from it: a blob exactly as it was the frame
// before, which the illumination test drops while exposure moves. (Before this,
// `matthan-eval --unmasked` raised one false event per dusk and seed.)
TEST(MotionStages, ACamerasOwnClockIsNotMotionWhileTheLightFades) {
  // To 40 % in 30 s at 5 fps, as the evaluation's dusk. (A fade this fast also trips the global
  // change test now and then: the background restarts, 2 s of learning without alarms.)
  auto light = [](int n) { return 1.0 - 0.6 * std::clamp((n - 30) / 150.0, 0.0, 1.0); };
  auto label = [](cv::Mat& img) {
    cv::rectangle(img, {8, 8, 300, 34}, cv::Scalar(40), cv::FILLED);
    cv::putText(img, "02-12-2026 18:04:00 CAM 07", {14, 32}, cv::FONT_HERSHEY_SIMPLEX, 0.6,
                cv::Scalar(220), 2);
  };
  struct Counts {
    int blob_frames = 0;    // from frame 30 on
    int walker_frames = 0;  // the walker in view and the detector not learning a new scene
    int walker_found = 0;   // of those, with a blob where the walker is
  };
  auto dusk = [&](MotionSettings settings, bool walker) {
    Synth s;
    MotionDetector d(settings);
    Counts c;
    bool was_learning = true;
    for (int n = 0; n < 200; ++n) {
      cv::Mat img = s.base.clone();
      const int wx = 60 + (n - 100) * 8;
      const bool in_view = walker && n >= 100 && n < 170;
      if (in_view) cv::rectangle(img, {wx, 180, 28, 90}, cv::Scalar(20), cv::FILLED);
      img.convertTo(img, CV_8U, light(n));
      label(img);
      const auto r = d.process(Synth::frame(img, n));
      const bool learning = r.recalibrating || r.global_change;
      if (n >= 30) c.blob_frames += r.blobs.empty() ? 0 : 1;
      // The first frame after learning is a first sighting (persistence): not yet an object.
      if (in_view && !learning && !was_learning) {
        ++c.walker_frames;
        for (const auto& b : r.blobs) {
          const double x = (wx + 14) / 640.0;  // the walker's middle inside the blob
          if (b.box.x <= x && x <= b.box.x + b.box.w && b.box.w < 0.25) {
            ++c.walker_found;
            break;
          }
        }
      }
      was_learning = learning;
    }
    return c;
  };
  MotionSettings on;
  EXPECT_EQ(dusk(on, false).blob_frames, 0);
  MotionSettings off;
  off.texture_stage = false;
  EXPECT_GT(dusk(off, false).blob_frames, 5);
  // A walker crossing while the light fades is found on every frame it can be.
  const auto w = dusk(on, true);
  EXPECT_GT(w.walker_frames, 30);
  EXPECT_EQ(w.walker_found, w.walker_frames);
}

TEST(MotionStages, AFlickerIsNotAnObjectButAWalkerIs) {
  // A patch that blinks somewhere new every frame: never twice in the same place.
  auto flicker = [](cv::Mat& img, int n) {
    cv::RNG rng(static_cast<std::uint64_t>(n) * 5);
    cv::rectangle(img, {rng.uniform(0, 600), rng.uniform(30, 320), 30, 30}, cv::Scalar(250),
                  cv::FILLED);
  };
  MotionSettings on;
  EXPECT_EQ(frames_with_blobs(on, flicker), 0);
  MotionSettings off;
  off.track_stage = false;
  EXPECT_GT(frames_with_blobs(off, flicker), 30);
  // A dark walker on the same scene is found with every stage on.
  auto walker = [](cv::Mat& img, int n) {
    cv::rectangle(img, {60 + (n - 30) * 8, 180, 28, 90}, cv::Scalar(20), cv::FILLED);
  };
  EXPECT_GT(frames_with_blobs(on, walker), 40);
}

}  // namespace
}  // namespace matthan::analytics
