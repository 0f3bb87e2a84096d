// Rendered people must look like people to a detector: OpenCV's HOG people detector fires on
// camsim's people (>= 80 px tall) and not on its vehicles or empty scenes.
#include <gtest/gtest.h>

#include <opencv2/imgproc.hpp>
#include <opencv2/objdetect.hpp>

#include "matthan/camsim/renderer.hpp"

namespace matthan::camsim {
namespace {

struct Hits {
  int frames = 0;
  int hit_frames = 0;
};

// Runs HOG on frames where the actor is on screen; a hit must overlap the truth box.
Hits detect(const Scenario& s, const CameraSpec& cam, const Actor& actor, bool want_overlap) {
  SceneRenderer r(s, cam);
  cv::HOGDescriptor hog;
  hog.setSVMDetector(cv::HOGDescriptor::getDefaultPeopleDetector());
  Hits hits;
  const double aspect = static_cast<double>(cam.main.width) / cam.main.height;
  for (int n = static_cast<int>(actor.start_s * s.fps) + 5;
       n < static_cast<int>((actor.start_s + actor.duration_s) * s.fps) - 5; n += 12) {
    const double t = static_cast<double>(n) / s.fps;
    cv::Rect2d truth;
    if (!SceneRenderer::actor_box(actor, t, aspect, &truth)) continue;
    const cv::Mat img = r.render(n);
    cv::Mat grey;
    cv::cvtColor(img, grey, cv::COLOR_BGR2GRAY);
    // Look around the actor (as the analytics will: motion regions only), upscaled so that an
    // 80 px person fills HOG's 128 px window.
    const cv::Rect box(static_cast<int>(truth.x * img.cols), static_cast<int>(truth.y * img.rows),
                       static_cast<int>(truth.width * img.cols),
                       static_cast<int>(truth.height * img.rows));
    const int pad = box.height / 2;
    const cv::Rect roi =
        cv::Rect(box.x - pad, box.y - pad, box.width + 2 * pad, box.height + 2 * pad) &
        cv::Rect(0, 0, img.cols, img.rows);
    cv::Mat patch;
    const double scale = 160.0 / box.height;
    cv::resize(grey(roi), patch, {}, std::max(1.0, scale), std::max(1.0, scale), cv::INTER_LINEAR);
    std::vector<cv::Rect> found;
    hog.detectMultiScale(patch, found, 0, {8, 8}, {16, 16}, 1.05, 2);
    ++hits.frames;
    bool hit = false;
    for (const auto& f : found) {
      if (!want_overlap) {
        hit = true;
        continue;
      }
      const double k = 1.0 / std::max(1.0, scale);
      const cv::Rect back(roi.x + static_cast<int>(f.x * k), roi.y + static_cast<int>(f.y * k),
                          static_cast<int>(f.width * k), static_cast<int>(f.height * k));
      const double iou = static_cast<double>((back & box).area()) / (back | box).area();
      if (iou > 0.3) hit = true;
    }
    hits.hit_frames += hit ? 1 : 0;
  }
  return hits;
}

Scenario scene_with(const Actor& a) {
  Scenario s;
  s.fps = 25;
  s.duration_s = 10;
  CameraSpec cam;
  cam.id = "hog";
  cam.main = {1280, 720, 4000};
  cam.actors = {a};
  s.cameras = {cam};
  return s;
}

TEST(PeopleRender, HogFindsPeopleOfEightyPixelsAndMore) {
  for (double height_px : {80.0, 120.0, 200.0}) {
    Actor p;
    p.kind = ActorKind::person;
    p.start_s = 1;
    p.duration_s = 8;
    p.from_x = 0.1;
    p.from_y = 0.85;
    p.to_x = 0.9;
    p.to_y = 0.8;
    p.size = height_px / 720.0;
    const auto s = scene_with(p);
    const auto hits = detect(s, s.cameras[0], p, true);
    ASSERT_GT(hits.frames, 5);
    EXPECT_GE(hits.hit_frames * 10, hits.frames * 7)
        << height_px << " px: " << hits.hit_frames << "/" << hits.frames;
  }
}

TEST(PeopleRender, HogIgnoresVehicles) {
  Actor v;
  v.kind = ActorKind::vehicle;
  v.start_s = 1;
  v.duration_s = 8;
  v.from_x = 0.05;
  v.from_y = 0.9;
  v.to_x = 0.95;
  v.to_y = 0.9;
  v.size = 0.2;
  const auto s = scene_with(v);
  const auto hits = detect(s, s.cameras[0], v, false);
  ASSERT_GT(hits.frames, 5);
  EXPECT_LE(hits.hit_frames * 10, hits.frames) << hits.hit_frames << "/" << hits.frames;
}

}  // namespace
}  // namespace matthan::camsim
