// Renders a camera's scene frame by frame (OpenCV drawing) and its ground truth.
#pragma once

#include <opencv2/core.hpp>
#include <string>
#include <vector>

#include "matthan/camsim/scenario.hpp"

namespace matthan::camsim {

struct TruthBox {
  double t_s;
  double x, y, w, h;  // relative
};

struct TruthEntry {
  std::string camera;
  ActorKind kind;
  double start_s;
  double end_s;
  std::vector<TruthBox> boxes;  // person and vehicle: every 5th frame
};

// Not thread-safe; one per camera. Frames are BGR at the main stream's size.
class SceneRenderer {
 public:
  SceneRenderer(const Scenario& scenario, const CameraSpec& camera);
  // Frame n of the loop (t = n / fps), BGR, main resolution, without the frame code.
  cv::Mat render(int n);
  std::vector<TruthEntry> truth() const;
  // Box of an actor at time t (relative), or empty when it is not visible.
  static bool actor_box(const Actor& a, double t_s, double aspect, cv::Rect2d* box);

 private:
  void draw_person(cv::Mat& img, const Actor& a, double t_s, int index);
  void draw_vehicle(cv::Mat& img, const Actor& a, double t_s, int index);

  const Scenario& scenario_;
  const CameraSpec& camera_;
  cv::Mat background_;
  std::vector<cv::Mat> noise_;  // a few precomputed noise fields, cycled
  cv::Mat glow_;                // headlight patch, made on first use
};

}  // namespace matthan::camsim
