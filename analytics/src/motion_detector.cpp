#include "matthan/analytics/motion_detector.hpp"

#include <algorithm>
#include <cmath>
#include <opencv2/imgproc.hpp>

namespace matthan::analytics {

struct MotionDetector::State {
  cv::Mat small;       // CV_8U, analysis size
  cv::Mat background;  // CV_32F
  cv::Mat bg8, diff, mask, labels, stats, centroids;
  cv::Mat region;    // 255 where motion counts, 0 under masks (analysis size)
  cv::Mat activity;  // CV_32F, 0..255: how often each pixel moved lately
  cv::Mat busy;      // 255 where activity is too high to count
  cv::Mat norm;
  std::vector<cv::Rect> previous;  // last frame's candidate boxes, for persistence
  double region_pixels = 1;
  double noise = 3;
  int recalibrate_left = 0;
  int warmup_left = 0;
  std::int64_t last_us = 0;
  int frames = 0;
};

namespace {

// How much of a blob's change is detail (edges, texture) rather than brightness: a headlight
// sweeping a wall or a shadow brightens or darkens what was there; an object replaces it.
double texture_ratio(const cv::Mat& cur, const cv::Mat& bg, const cv::Mat& labels, int label,
                     cv::Rect box) {
  const cv::Rect outer = cv::Rect(box.x - 3, box.y - 3, box.width + 6, box.height + 6) &
                         cv::Rect(0, 0, cur.cols, cur.rows);
  cv::Mat c, b, cb, bb;
  cur(outer).convertTo(c, CV_16S);
  bg(outer).convertTo(b, CV_16S);
  cv::blur(c, cb, {5, 5});
  cv::blur(b, bb, {5, 5});
  const cv::Rect inner = box - outer.tl();
  const cv::Mat m = labels(box) == label;
  cv::Mat d, dhp;
  cv::absdiff(c(inner), b(inner), d);
  cv::Mat hc = c(inner) - cb(inner), hb = b(inner) - bb(inner);
  cv::absdiff(hc, hb, dhp);
  // Upper percentiles, not means: an object's new detail is at its outline, a thin part of a
  // big uniform blob (a dark coat on a plain wall), while light changes nothing sharply anywhere.
  std::vector<std::int16_t> dv, hv;
  for (int y = 0; y < m.rows; ++y) {
    const auto* mr = m.ptr<std::uint8_t>(y);
    const auto* dr = d.ptr<std::int16_t>(y);
    const auto* hr = dhp.ptr<std::int16_t>(y);
    for (int x = 0; x < m.cols; ++x) {
      if (mr[x] != 0) {
        dv.push_back(dr[x]);
        hv.push_back(hr[x]);
      }
    }
  }
  if (dv.empty()) return 1.0;
  const auto k = dv.size() * 9 / 10;
  std::nth_element(dv.begin(), dv.begin() + static_cast<std::ptrdiff_t>(k), dv.end());
  std::nth_element(hv.begin(), hv.begin() + static_cast<std::ptrdiff_t>(k), hv.end());
  const double change = dv[k];
  const double r = change > 0 ? hv[k] / change : 1.0;
  return r;
}

// A camera shake moves everything a few pixels: if the picture as a whole is shifted against
// the background (phase correlation finds the sub-pixel shift) and the shifted background
// explains most of the change, it is the camera that moved. Tried only when a lot changed.
bool explained_by_shift(const cv::Mat& cur, const cv::Mat& bg, const cv::Mat& region,
                        double threshold, double keep, int still) {
  cv::Mat c, b;
  cur.convertTo(c, CV_32F);
  bg.convertTo(b, CV_32F);
  thread_local cv::Mat window;
  if (window.size() != c.size()) cv::createHanningWindow(window, c.size(), CV_32F);
  const cv::Point2d shift = cv::phaseCorrelate(b, c, window);
  const double len = std::hypot(shift.x, shift.y);
  if (len < 0.3 || len > 8) return false;
  const cv::Mat m = (cv::Mat_<double>(2, 3) << 1, 0, shift.x, 0, 1, shift.y);
  cv::Mat moved, d;
  cv::warpAffine(bg, moved, m, bg.size(), cv::INTER_LINEAR, cv::BORDER_REPLICATE);
  cv::absdiff(cur, moved, d);
  cv::threshold(d, d, threshold, 255, cv::THRESH_BINARY);
  cv::bitwise_and(d, region, d);
  const int after = cv::countNonZero(d);
  return after < keep * still;
}

}  // namespace

MotionDetector::MotionDetector(MotionSettings settings)
    : settings_(settings), state_(std::make_unique<State>()) {}
MotionDetector::~MotionDetector() = default;
MotionDetector::MotionDetector(MotionDetector&&) noexcept = default;

void MotionDetector::recalibrate() {
  state_->recalibrate_left = settings_.recalibrate_frames;
  state_->previous.clear();
}

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
  // A gap in the frames (the camera was away, the link dropped): what was learnt is stale.
  const bool resumed = s.last_us != 0 && frame.wall_us - s.last_us > settings_.resume_gap_us;
  s.last_us = frame.wall_us;
  if (resumed) {
    s.warmup_left = settings_.warmup_frames;
    s.previous.clear();
  }
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
    s.activity = cv::Mat::zeros(s.small.size(), CV_32F);
    s.warmup_left = settings_.warmup_frames;
    out.region = s.region.data;
    out.recalibrating = true;
    s.frames = 1;
    return out;
  }
  out.region = s.region.data;
  const double bg_mean = cv::mean(s.background)[0];
  cv::Mat& norm = s.norm;
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
    // Settling after a global change (exposure, IR filter): learn fast before anything alarms.
    --s.recalibrate_left;
    out.recalibrating = true;
    cv::accumulateWeighted(norm, s.background, settings_.learn_recalibrate);
    return out;
  }
  if (settings_.shake_stage && changed > settings_.shake_trigger &&
      explained_by_shift(norm, s.bg8, s.region, threshold, settings_.shake_explained,
                         cv::countNonZero(s.mask))) {
    out.shake = true;  // keep the background: the camera comes back to where it was
    return out;
  }
  if (settings_.speckle_stage) {
    // Rain and noise are specks: an opening removes what is thinner than 3 px.
    cv::morphologyEx(s.mask, s.mask, cv::MORPH_OPEN,
                     cv::getStructuringElement(cv::MORPH_RECT, {3, 3}));
  }
  cv::dilate(s.mask, s.mask, cv::getStructuringElement(cv::MORPH_RECT, {5, 5}));
  cv::bitwise_and(s.mask, s.region, s.mask);
  if (settings_.periodic_stage) {
    // Places that moved in a good part of recent frames (foliage, flags, water) are learnt
    // and ignored; a passer-by covers a place for a second or two and stays well below.
    // While warming up the map learns ten times faster.
    cv::accumulateWeighted(s.mask, s.activity, s.warmup_left > 0 ? 0.1 : settings_.activity_rate);
    cv::compare(s.activity, 255.0 * settings_.activity_max, s.busy, cv::CMP_GT);
    s.mask.setTo(0, s.busy);
  }
  if (s.warmup_left > 0) {
    // A new connection: learn the scene (and where it always moves) before anything alarms.
    --s.warmup_left;
    out.recalibrating = true;
    cv::accumulateWeighted(norm, s.background, settings_.learn_recalibrate);
    s.last_us = frame.wall_us;
    return out;
  }
  const bool any = cv::countNonZero(s.mask) > 0;
  const int n =
      any ? cv::connectedComponentsWithStats(s.mask, s.labels, s.stats, s.centroids, 8, CV_32S) : 0;
  const double total = static_cast<double>(s.mask.total());
  std::vector<cv::Rect> candidates;
  for (int i = 1; i < n; ++i) {
    const double area = s.stats.at<int>(i, cv::CC_STAT_AREA) / total;
    if (area < settings_.min_area) continue;
    const cv::Rect r(s.stats.at<int>(i, cv::CC_STAT_LEFT), s.stats.at<int>(i, cv::CC_STAT_TOP),
                     s.stats.at<int>(i, cv::CC_STAT_WIDTH), s.stats.at<int>(i, cv::CC_STAT_HEIGHT));
    if (settings_.texture_stage &&
        texture_ratio(norm, s.bg8, s.labels, i, r) < settings_.texture_min) {
      ++out.lit_blobs;
      continue;
    }
    candidates.push_back(r);
    if (settings_.track_stage) {
      // Persistence: an object was (nearly) there the frame before; a raindrop or a flicker
      // was not.
      const cv::Rect grown(r.x - r.width / 2 - 2, r.y - r.height / 2 - 2, r.width * 2 + 4,
                           r.height * 2 + 4);
      bool seen = false;
      for (const auto& p : s.previous) seen = seen || (grown & p).area() > 0;
      if (!seen) {
        ++out.new_blobs;
        continue;
      }
    }
    Blob b;
    b.area = area;
    b.box = {static_cast<double>(r.x) / s.mask.cols, static_cast<double>(r.y) / s.mask.rows,
             static_cast<double>(r.width) / s.mask.cols,
             static_cast<double>(r.height) / s.mask.rows};
    out.score += area;
    out.blobs.push_back(b);
  }
  s.previous = std::move(candidates);
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
