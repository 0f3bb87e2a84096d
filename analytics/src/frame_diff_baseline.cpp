#include "matthan/analytics/frame_diff_baseline.hpp"

#include <cmath>
#include <opencv2/imgproc.hpp>

#include "region_mask.hpp"

namespace matthan::analytics {

struct FrameDiffBaseline::State {
  cv::Mat previous, small, diff, region;
};

FrameDiffBaseline::FrameDiffBaseline(BaselineSettings settings)
    : settings_(std::move(settings)), state_(std::make_unique<State>()) {}
FrameDiffBaseline::~FrameDiffBaseline() = default;

MotionResult FrameDiffBaseline::process(const LumaFrame& frame) {
  MotionResult out;
  auto& s = *state_;
  const cv::Mat luma(frame.height, frame.width, CV_8U, const_cast<std::uint8_t*>(frame.pixels()),
                     static_cast<std::size_t>(frame.stride));
  const int w = std::max(1, frame.width * settings_.analysis_height / frame.height);
  cv::resize(luma, s.small, {w, settings_.analysis_height}, 0, 0, cv::INTER_AREA);
  if (s.region.empty()) {
    s.region = region_mask(s.small.size(), settings_.masks);
  }
  if (s.previous.empty()) {
    s.previous = s.small.clone();
    return out;
  }
  cv::absdiff(s.small, s.previous, s.diff);
  s.small.copyTo(s.previous);
  cv::threshold(s.diff, s.diff, settings_.noise_level, 255, cv::THRESH_BINARY);
  cv::bitwise_and(s.diff, s.region, s.diff);
  const int changed = cv::countNonZero(s.diff);
  const double fraction = static_cast<double>(changed) / static_cast<double>(s.diff.total());
  if (fraction < settings_.pixel_fraction) return out;
  const cv::Rect box = cv::boundingRect(s.diff);
  Blob b;
  b.area = fraction;
  b.box = {static_cast<double>(box.x) / s.diff.cols, static_cast<double>(box.y) / s.diff.rows,
           static_cast<double>(box.width) / s.diff.cols,
           static_cast<double>(box.height) / s.diff.rows};
  out.blobs.push_back(b);
  out.score = fraction;
  return out;
}

}  // namespace matthan::analytics
