#include "matthan/analytics/motion_detector.hpp"

#include <algorithm>
#include <cmath>
#include <opencv2/imgproc.hpp>

namespace matthan::analytics {

struct MotionDetector::State {
  cv::Mat small;       // CV_8U, analysis size
  cv::Mat background;  // CV_32F
  cv::Mat bg8, diff, mask, labels, stats, centroids;
  cv::Mat region;  // 255 where motion counts, 0 under masks (analysis size)
  double region_pixels = 1;
  double noise = 3;
  int recalibrate_left = 0;
  int frames = 0;
};

MotionDetector::MotionDetector(MotionSettings settings)
    : settings_(settings), state_(std::make_unique<State>()) {}
MotionDetector::~MotionDetector() = default;
MotionDetector::MotionDetector(MotionDetector&&) noexcept = default;

MotionResult MotionDetector::process(const LumaFrame& frame) {
  MotionResult out;
  auto& s = *state_;
  const cv::Mat luma(frame.height, frame.width, CV_8U, const_cast<std::uint8_t*>(frame.luma.data()),
                     static_cast<std::size_t>(frame.stride));
  // 2x steps are several times cheaper than one arbitrary INTER_AREA resize.
  cv::Mat cur = luma;
  cv::Mat tmp;
  while (cur.rows >= 2 * settings_.analysis_height) {
    cv::resize(cur, tmp, {cur.cols / 2, cur.rows / 2}, 0, 0, cv::INTER_AREA);
    cur = tmp.clone();
  }
  if (cur.rows != settings_.analysis_height) {
    const int w = std::max(1, cur.cols * settings_.analysis_height / cur.rows);
    cv::resize(cur, s.small, {w, settings_.analysis_height}, 0, 0, cv::INTER_AREA);
  } else {
    s.small = cur.clone();
  }
  cv::GaussianBlur(s.small, s.small, {3, 3}, 0);
  out.small = s.small.data;
  out.small_cols = s.small.cols;
  out.small_rows = s.small.rows;

  // Gain normalisation: auto-exposure and slow light changes scale the whole picture.
  const double mean = cv::mean(s.small)[0];
  if (s.background.empty() || s.background.size() != s.small.size()) {
    s.small.convertTo(s.background, CV_32F);
    s.region = cv::Mat(s.small.size(), CV_8U, cv::Scalar(255));
    for (const auto& poly : settings_.masks) {
      std::vector<cv::Point> pts;
      for (const auto& [x, y] : poly) {
        pts.emplace_back(static_cast<int>(std::lround(x * s.small.cols)),
                         static_cast<int>(std::lround(y * s.small.rows)));
      }
      cv::fillPoly(s.region, std::vector<std::vector<cv::Point>>{pts}, cv::Scalar(0));
    }
    s.region_pixels = std::max(1, cv::countNonZero(s.region));
    out.region = s.region.data;
    s.frames = 1;
    return out;
  }
  out.region = s.region.data;
  const double bg_mean = cv::mean(s.background)[0];
  cv::Mat norm;
  const double gain = mean > 8 && bg_mean > 8 ? std::clamp(bg_mean / mean, 0.5, 2.0) : 1.0;
  s.small.convertTo(norm, CV_8U, gain);

  s.background.convertTo(s.bg8, CV_8U);
  cv::absdiff(norm, s.bg8, s.diff);
  // Noise: the mean difference of pixels that are not moving (below twice the old estimate).
  cv::Mat quiet = s.diff < std::max(4.0, 2 * s.noise);
  const double quiet_mean = cv::mean(s.diff, quiet)[0];
  s.noise = 0.95 * s.noise + 0.05 * std::max(0.5, quiet_mean);
  const double threshold = std::max(settings_.threshold_min, settings_.threshold_noise_k * s.noise);
  out.noise = s.noise;
  cv::threshold(s.diff, s.mask, threshold, 255, cv::THRESH_BINARY);
  cv::bitwise_and(s.mask, s.region, s.mask);
  const double changed = cv::countNonZero(s.mask) / s.region_pixels;

  // The same test without gain normalisation: a light switch adds brightness rather than
  // scaling it, and normalising alone would hide the step and leave edges that look like motion.
  cv::Mat raw_diff;
  cv::absdiff(s.small, s.bg8, raw_diff);
  cv::threshold(raw_diff, raw_diff, threshold, 255, cv::THRESH_BINARY);
  cv::bitwise_and(raw_diff, s.region, raw_diff);
  const double raw_changed = cv::countNonZero(raw_diff) / s.region_pixels;

  double rate = settings_.learn_quiet;
  if (settings_.global_change_stage &&
      (changed > settings_.global_change || raw_changed > settings_.global_change)) {
    // The scene changed as a whole (light switch, IR switch, exposure): learn it, do not alarm.
    // Start the background over from this frame; keep learning fast for a few frames while
    // exposure and IR settle.
    out.global_change = true;
    s.recalibrate_left = settings_.recalibrate_frames;
    s.small.convertTo(s.background, CV_32F);
    return out;
  }
  if (s.recalibrate_left > 0) {
    --s.recalibrate_left;
    out.recalibrating = true;
    rate = settings_.learn_recalibrate;
    cv::accumulateWeighted(norm, s.background, rate);
    return out;
  }
  cv::morphologyEx(s.mask, s.mask, cv::MORPH_OPEN,
                   cv::getStructuringElement(cv::MORPH_RECT, {3, 3}));
  cv::dilate(s.mask, s.mask, cv::getStructuringElement(cv::MORPH_RECT, {5, 5}));
  cv::bitwise_and(s.mask, s.region, s.mask);
  const bool any = cv::countNonZero(s.mask) > 0;
  const int n =
      any ? cv::connectedComponentsWithStats(s.mask, s.labels, s.stats, s.centroids, 8, CV_32S) : 0;
  const double total = static_cast<double>(s.mask.total());
  for (int i = 1; i < n; ++i) {
    const double area = s.stats.at<int>(i, cv::CC_STAT_AREA) / total;
    if (area < settings_.min_area) continue;
    Blob b;
    b.area = area;
    b.box = {static_cast<double>(s.stats.at<int>(i, cv::CC_STAT_LEFT)) / s.mask.cols,
             static_cast<double>(s.stats.at<int>(i, cv::CC_STAT_TOP)) / s.mask.rows,
             static_cast<double>(s.stats.at<int>(i, cv::CC_STAT_WIDTH)) / s.mask.cols,
             static_cast<double>(s.stats.at<int>(i, cv::CC_STAT_HEIGHT)) / s.mask.rows};
    out.score += area;
    out.blobs.push_back(b);
  }
  // Learn everywhere, moving areas at half the rate: a walker is not absorbed while passing,
  // and a "ghost" (the background was learnt while someone stood there) dissolves by itself.
  if (any) {
    cv::Mat still;
    cv::bitwise_not(s.mask, still);
    cv::accumulateWeighted(norm, s.background, rate / 2);
    cv::accumulateWeighted(norm, s.background, rate / 2, still);
  } else {
    cv::accumulateWeighted(norm, s.background, rate);
  }
  ++s.frames;
  return out;
}

}  // namespace matthan::analytics
