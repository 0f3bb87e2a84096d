#include "matthan/analytics/motion_detector.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <opencv2/imgproc.hpp>

#include "pixel_ops.hpp"
#include "region_mask.hpp"

namespace matthan::analytics {

struct MotionDetector::State {
  cv::Mat small;       // CV_8U, analysis size
  cv::Mat background;  // CV_16U, grey level x 256 (integers keep the per-pixel loops vectorised)
  cv::Mat bg8, mask, half, labels, stats, centroids;
  cv::Mat region;    // 255 where motion counts, 0 under masks (analysis size)
  cv::Mat activity;  // CV_16U, 0..65280: how often each pixel moved lately (x 256)
  cv::Mat norm;
  cv::Mat prev_small;          // the frame before's analysis-size luma, before the gain
  double gain_avg = 1;         // the gain as the background has followed it (learnt at its rates)
  bool activity_live = false;  // the activity map holds something (else its update is skipped)
  std::vector<cv::Rect> previous;  // last frame's candidate boxes, for persistence
  double region_pixels = 1;
  double noise = 3;
  int recalibrate_left = 0;
  int warmup_left = 0;
  std::int64_t last_us = 0;
  int frames = 0;
  // The last shake test that found none: when, and how much and how widely it had changed.
  std::int64_t no_shake_us = 0;
  double no_shake_changed = 0;
  int no_shake_spread = 0;
  std::int64_t shake_us = 0;  // the last frame found shaken
};

namespace {

// How much of a blob's change is detail (edges, texture) rather than brightness: a headlight
// sweeping a wall or a shadow brightens or darkens what was there; an object replaces it.
double texture_ratio(const cv::Mat& cur, const cv::Mat& bg, const cv::Mat& mask, cv::Rect box) {
  const cv::Rect outer = cv::Rect(box.x - 3, box.y - 3, box.width + 6, box.height + 6) &
                         cv::Rect(0, 0, cur.cols, cur.rows);
  cv::Mat c, b, cb, bb;
  cur(outer).convertTo(c, CV_16S);
  bg(outer).convertTo(b, CV_16S);
  cv::blur(c, cb, {5, 5});
  cv::blur(b, bb, {5, 5});
  const cv::Rect inner = box - outer.tl();
  const cv::Mat m = mask(box);
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

struct SpanCounts {
  int changed = 0, raw = 0, quiet_n = 0, quiet_sum = 0;
};

// The per-pixel loops are built twice, for AVX2 and for the x86-64 baseline (SSE2), and the
// loader picks one for the CPU: the baseline has no 32-bit vector multiply and spills registers
// (measured: bench/analytics). Not under TSan: the loader runs the (instrumented) ifunc
// resolver before TSan's runtime is up, and the program dies before main.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__SANITIZE_THREAD__)
#define MATTHAN_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define MATTHAN_CLONES
#endif

// Whether a blob is the same as in the frame before, before any gain: where fewer than a tenth
// of its pixels changed by more than the threshold, nothing came or moved there; only the gain
// made it differ from the background (see exposure_moving).
bool unchanged_raw(const cv::Mat& cur, const cv::Mat& prev, const cv::Mat& mask, cv::Rect box,
                   int threshold) {
  if (prev.size() != cur.size()) return false;
  long in = 0, moved = 0;
  for (int y = box.y; y < box.y + box.height; ++y) {
    const auto* c = cur.ptr<std::uint8_t>(y);
    const auto* p = prev.ptr<std::uint8_t>(y);
    const auto* m = mask.ptr<std::uint8_t>(y);
    for (int x = box.x; x < box.x + box.width; ++x) {
      if (m[x] == 0) continue;
      ++in;
      moved += std::abs(c[x] - p[x]) > threshold ? 1 : 0;
    }
  }
  return in > 0 && moved * 10 < in;
}

// The per-pixel core, written so the compiler vectorises it: gain-normalised picture, its
// difference to the background (and the raw one), the mask and the noise of quiet pixels.
MATTHAN_CLONES SpanCounts diff_span(const std::uint8_t* __restrict src,
                                    const std::uint16_t* __restrict bg,
                                    const std::uint8_t* __restrict reg,
                                    std::uint8_t* __restrict nrm, std::uint8_t* __restrict msk,
                                    std::uint8_t* __restrict b8, int n, int g256, int thr,
                                    int quiet_limit) {
  int changed = 0, raw = 0, quiet_n = 0, quiet_sum = 0;
  if (g256 == 256) {
    // The usual case (exposure steady): no gain to apply, the normalised and the raw difference
    // are the same, and everything fits 8-bit lanes.
    const auto c =
        diff_steady(src, bg, reg, nrm, msk, b8, n, static_cast<std::uint8_t>(std::min(thr, 255)),
                    static_cast<std::uint8_t>(std::min(quiet_limit, 255)));
    return {static_cast<int>(c.changed), static_cast<int>(c.changed), static_cast<int>(c.quiet_n),
            static_cast<int>(c.quiet_sum)};
  }
  for (int x = 0; x < n; ++x) {
    const int v = src[x];
    int p = (v * g256 + 128) >> 8;
    p = p > 255 ? 255 : p;
    const int b = (bg[x] + 128) >> 8;
    const int d = p > b ? p - b : b - p;
    const int r = v > b ? v - b : b - v;
    const int in = reg[x] & 1;  // 255 or 0
    const int quiet = d < quiet_limit ? 1 : 0;
    quiet_sum += quiet * d;
    quiet_n += quiet;
    const int moved = (d > thr ? 1 : 0) & in;
    changed += moved;
    raw += (r > thr ? 1 : 0) & in;
    msk[x] = static_cast<std::uint8_t>(moved * 255);
    nrm[x] = static_cast<std::uint8_t>(p);
    b8[x] = static_cast<std::uint8_t>(b);
  }
  return {changed, raw, quiet_n, quiet_sum};
}

MATTHAN_CLONES void learn_rows(const std::uint8_t* __restrict p, std::uint16_t* __restrict b,
                               const std::uint8_t* __restrict m, int n, int q, int qm) {
  if (m == nullptr) {
    for (int x = 0; x < n; ++x) {
      b[x] = static_cast<std::uint16_t>(b[x] + ((((p[x] << 8) - b[x]) * q) >> 16));
    }
  } else {
    for (int x = 0; x < n; ++x) {
      const int r = m[x] != 0 ? qm : q;
      b[x] = static_cast<std::uint16_t>(b[x] + ((((p[x] << 8) - b[x]) * r) >> 16));
    }
  }
}

// background += rate x (picture − background), in 1/256 grey levels; `rate_moving` where
// `moving` is set.
void learn(const cv::Mat& picture, cv::Mat& background, double rate, const cv::Mat* moving,
           double rate_moving) {
  const int q = static_cast<int>(std::lround(rate * 65536));
  const int qm = static_cast<int>(std::lround(rate_moving * 65536));
  // The matrices are continuous (allocated here at the analysis size): one call, all rows.
  if (picture.isContinuous() && background.isContinuous() &&
      (moving == nullptr || moving->isContinuous())) {
    learn_rows(picture.ptr<std::uint8_t>(), background.ptr<std::uint16_t>(),
               moving != nullptr ? moving->ptr<std::uint8_t>() : nullptr,
               static_cast<int>(picture.total()), q, qm);
    return;
  }
  for (int y = 0; y < picture.rows; ++y) {
    learn_rows(picture.ptr<std::uint8_t>(y), background.ptr<std::uint16_t>(y),
               moving != nullptr ? moving->ptr<std::uint8_t>(y) : nullptr, picture.cols, q, qm);
  }
}

// activity += rate x (moved − activity) per pixel (moved: 255 or 0, in 1/256); pixels whose
// activity is above `limit` (a fraction) are cleared from `mask`. Returns the largest activity.
MATTHAN_CLONES void activity_row(std::uint8_t* __restrict m, std::uint16_t* __restrict a, int n,
                                 int q, int lim, std::uint16_t* peak) {
  // Three simple loops rather than one: each is vectorised.
  for (int x = 0; x < n; ++x) {
    a[x] = static_cast<std::uint16_t>(a[x] + ((((m[x] << 8) - a[x]) * q) >> 16));
  }
  for (int x = 0; x < n; ++x) {
    const std::uint8_t keep = a[x] > lim ? 0 : 0xFF;
    m[x] = static_cast<std::uint8_t>(m[x] & keep);
  }
  std::uint16_t row_peak = *peak;
  for (int x = 0; x < n; ++x) row_peak = std::max(row_peak, a[x]);
  *peak = row_peak;
}

int learn_activity(cv::Mat& mask, cv::Mat& activity, double rate, double limit) {
  const int q = static_cast<int>(std::lround(rate * 65536));
  const int lim = static_cast<int>(limit * 255 * 256);
  std::uint16_t peak = 0;
  if (mask.isContinuous() && activity.isContinuous()) {
    activity_row(mask.ptr<std::uint8_t>(), activity.ptr<std::uint16_t>(),
                 static_cast<int>(mask.total()), q, lim, &peak);
    return peak;
  }
  for (int y = 0; y < mask.rows; ++y) {
    activity_row(mask.ptr<std::uint8_t>(y), activity.ptr<std::uint16_t>(y), mask.cols, q, lim,
                 &peak);
  }
  return peak;
}

// A camera shake moves everything a few pixels: if the picture as a whole is shifted against
// the background (phase correlation finds the sub-pixel shift) and the shifted background
// explains most of the change, it is the camera that moved. Tried only when a lot changed.
// `cells`: the change per cell of the 4x4 grid; the `ignore` cells the shift explains worst are
// left out (an on-screen clock does not shake, and would otherwise hide every shake).
bool explained_by_shift(const cv::Mat& cur, const cv::Mat& bg, const cv::Mat& region,
                        double threshold, double keep, const std::array<long, 16>& cells,
                        int ignore) {
  // The shift is found on a half-size picture (4x fewer pixels for the DFTs), then applied
  // to the background at full size.
  cv::Mat c, b, c8, b8;
  cv::resize(cur, c8, {cur.cols / 2, cur.rows / 2}, 0, 0, cv::INTER_AREA);
  cv::resize(bg, b8, {bg.cols / 2, bg.rows / 2}, 0, 0, cv::INTER_AREA);
  c8.convertTo(c, CV_32F);
  b8.convertTo(b, CV_32F);
  thread_local cv::Mat window;
  if (window.size() != c.size()) cv::createHanningWindow(window, c.size(), CV_32F);
  const cv::Point2d shift = cv::phaseCorrelate(b, c, window) * 2.0;
  const double len = std::hypot(shift.x, shift.y);
  if (len < 0.3 || len > 8) return false;
  const cv::Mat m = (cv::Mat_<double>(2, 3) << 1, 0, shift.x, 0, 1, shift.y);
  cv::Mat moved, d;
  cv::warpAffine(bg, moved, m, bg.size(), cv::INTER_LINEAR, cv::BORDER_REPLICATE);
  cv::absdiff(cur, moved, d);
  cv::threshold(d, d, threshold, 255, cv::THRESH_BINARY);
  cv::bitwise_and(d, region, d);
  // The same grid as the change was counted on: row y is in cell row y * 4 / rows.
  std::array<long, 16> left{};
  for (int cy = 0; cy < 4; ++cy) {
    const int y0 = (cy * d.rows + 3) / 4, y1 = ((cy + 1) * d.rows + 3) / 4;
    for (int cx = 0; cx < 4; ++cx) {
      const int x0 = cx * d.cols / 4, x1 = (cx + 1) * d.cols / 4;
      left[static_cast<std::size_t>(cy * 4 + cx)] =
          cv::countNonZero(d(cv::Range(y0, y1), cv::Range(x0, x1)));
    }
  }
  const auto excess = [&](std::size_t i) {
    return static_cast<double>(left[i]) - keep * static_cast<double>(cells[i]);
  };
  std::array<std::size_t, 16> order{};
  for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::sort(order.begin(), order.end(), [&](auto i, auto j) { return excess(i) > excess(j); });
  long after = 0, still = 0;
  for (std::size_t k = 0; k < order.size(); ++k) {
    const auto i = order[k];
    if (static_cast<int>(k) < ignore && excess(i) > 0) continue;  // left out: residual and change
    after += left[i];
    still += cells[i];
  }
  return still > 0 && static_cast<double>(after) < keep * static_cast<double>(still);
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
  const cv::Mat luma(frame.height, frame.width, CV_8U, const_cast<std::uint8_t*>(frame.pixels()),
                     static_cast<std::size_t>(frame.stride));
  // 2x steps are several times cheaper than one arbitrary INTER_AREA resize. A 2x INTER_AREA
  // step averages four pixels: smoothing enough (the evaluation scores the same with an extra
  // blur or a pyrDown, which cost twice as much).
  const int h = settings_.analysis_height;
  cv::swap(s.small, s.prev_small);
  cv::Mat cur = luma;
  while (cur.rows >= 4 * h) {
    cv::Mat half;
    half_size(cur, half);
    cur = half;
  }
  if (cur.rows == 2 * h) {
    half_size(cur, s.small);
  } else {
    if (cur.rows >= 2 * h) {
      cv::Mat half;
      half_size(cur, half);
      cur = half;
    }
    if (cur.rows != h) {
      const int w = std::max(1, cur.cols * h / cur.rows);
      cv::resize(cur, s.small, {w, h}, 0, 0, cv::INTER_AREA);
    } else {
      cur.copyTo(s.small);
    }
    cv::GaussianBlur(s.small, s.small, {3, 3}, 0);
  }
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
    s.small.convertTo(s.background, CV_16U, 256);
    s.region = region_mask(s.small.size(), settings_.masks);
    s.region_pixels = std::max(1, cv::countNonZero(s.region));
    s.activity = cv::Mat::zeros(s.small.size(), CV_16U);
    s.warmup_left = settings_.warmup_frames;
    s.gain_avg = 1;
    out.region = s.region.data;
    out.recalibrating = true;
    s.frames = 1;
    return out;
  }
  out.region = s.region.data;
  const double bg_mean = cv::mean(s.background)[0] / 256;
  cv::Mat& norm = s.norm;
  const double gain = mean > 8 && bg_mean > 8 ? std::clamp(bg_mean / mean, 0.5, 2.0) : 1.0;
  // What does not follow the light (a camera's burnt-in clock and name) is scaled by the gain
  // as if it did; the background learnt it at the gains of the last seconds, so while exposure
  // moves (dusk, dawn, auto-exposure) it reads as changed by this much.
  const bool exposure_moving = std::abs(gain / s.gain_avg - 1) > 0.02;
  // One pass for what used to take a dozen: gain-normalised picture, difference to the
  // background (normalised and raw), the mask, the counts and the noise of quiet pixels. The
  // threshold uses the noise measured up to the previous frame.
  const double threshold = std::max(settings_.threshold_min, settings_.threshold_noise_k * s.noise);
  const float thr = static_cast<float>(threshold);
  const float quiet_limit = static_cast<float>(std::max(4.0, 2 * s.noise));
  norm.create(s.small.size(), CV_8U);
  s.mask.create(s.small.size(), CV_8U);
  s.bg8.create(s.small.size(), CV_8U);
  long changed_px = 0, raw_px = 0, quiet_n = 0;
  double quiet_sum = 0;
  // Changed pixels per cell of a 4x4 grid: a shake changes edges everywhere, an intruder a
  // cell or two.
  std::array<long, 16> cells{};
  // Gains within 1/256 of 1 are 1: the common steady picture takes the 8-bit path.
  const int g256 = static_cast<int>(std::lround(gain * 256));
  const int thr_i = static_cast<int>(std::floor(thr));  // d > thr  <=>  d > floor(thr) for ints
  const int quiet_i = static_cast<int>(std::ceil(quiet_limit));
  const int cols = s.small.cols;
  for (int y = 0; y < s.small.rows; ++y) {
    const int cy = y * 4 / s.small.rows;
    for (int seg = 0; seg < 4; ++seg) {
      const int x0 = seg * cols / 4, x1 = (seg + 1) * cols / 4;
      const auto r =
          diff_span(s.small.ptr<std::uint8_t>(y) + x0, s.background.ptr<std::uint16_t>(y) + x0,
                    s.region.ptr<std::uint8_t>(y) + x0, norm.ptr<std::uint8_t>(y) + x0,
                    s.mask.ptr<std::uint8_t>(y) + x0, s.bg8.ptr<std::uint8_t>(y) + x0, x1 - x0,
                    g256, thr_i, quiet_i);
      cells[static_cast<std::size_t>(cy * 4 + seg)] += r.changed;
      changed_px += r.changed;
      raw_px += r.raw;
      quiet_n += r.quiet_n;
      quiet_sum += r.quiet_sum;
    }
  }
  const double cell_px = static_cast<double>(s.small.total()) / 16;
  int spread = 0;
  for (const long c : cells) spread += c > settings_.shake_cell * cell_px ? 1 : 0;
  const double quiet_mean = quiet_n > 0 ? quiet_sum / static_cast<double>(quiet_n) : 0;
  s.noise = 0.95 * s.noise + 0.05 * std::max(0.5, quiet_mean);
  out.noise = s.noise;
  const double changed = static_cast<double>(changed_px) / s.region_pixels;
  // The same count without gain normalisation: a light switch adds brightness rather than
  // scaling it, and normalising alone would hide the step and leave edges that look like motion.
  const double raw_changed = static_cast<double>(raw_px) / s.region_pixels;
  out.changed = std::max(changed, raw_changed);

  // Rates are per regular analysis frame: one taken half an interval early learns half as much,
  // so that confirming a candidate sooner does not absorb it (or forget foliage) faster.
  const double per_frame = frame.early ? 0.5 : 1.0;
  const double rate = settings_.learn_quiet * per_frame;
  if (settings_.global_change_stage &&
      (changed > settings_.global_change || raw_changed > settings_.global_change)) {
    // The scene changed as a whole (light switch, IR switch, exposure): learn it, do not alarm.
    // Start the background over from this frame; keep learning fast for a few frames while
    // exposure and IR settle.
    out.global_change = true;
    s.recalibrate_left = settings_.recalibrate_frames;
    s.small.convertTo(s.background, CV_16U, 256);
    s.gain_avg = 1;
    return out;
  }
  if (s.recalibrate_left > 0) {
    // Settling after a global change (exposure, IR filter): learn fast before anything alarms.
    --s.recalibrate_left;
    out.recalibrating = true;
    learn(norm, s.background, settings_.learn_recalibrate, nullptr, 0);
    s.gain_avg += settings_.learn_recalibrate * (gain - s.gain_avg);
    return out;
  }

  // Fewer than 9 changed pixels cannot hold a 3x3 core: nothing survives the opening, and a
  // quiet frame (the usual one) skips the whole blob stage.
  const bool anything = settings_.speckle_stage ? changed_px >= 9 : changed_px > 0;
  if (!anything) {
    s.mask.setTo(0);
  } else {
    static const cv::Mat k3 = cv::getStructuringElement(cv::MORPH_RECT, {3, 3});
    static const cv::Mat k5 = cv::getStructuringElement(cv::MORPH_RECT, {5, 5});
    static const cv::Mat k7 = cv::getStructuringElement(cv::MORPH_RECT, {7, 7});
    if (settings_.speckle_stage) {
      // Rain and noise are specks: an opening (3x3) removes what is thinner than 3 px; its
      // dilation and the 5x5 one that joins an object's parts compose into one 7x7 pass.
      cv::erode(s.mask, s.mask, k3);
      cv::dilate(s.mask, s.mask, k7);
    } else {
      cv::dilate(s.mask, s.mask, k5);
    }
    cv::bitwise_and(s.mask, s.region, s.mask);
  }
  if (settings_.periodic_stage && (anything || s.activity_live)) {
    // Places that moved in a good part of recent frames (foliage, flags, water) are learnt
    // and ignored; a passer-by covers a place for a second or two and stays well below.
    // While warming up the map learns ten times faster.
    // (Skipped while nothing moves and the map has decayed to nothing.)
    const double activity_rate = s.warmup_left > 0 ? 0.1 : settings_.activity_rate * per_frame;
    s.activity_live =
        learn_activity(s.mask, s.activity, activity_rate, settings_.activity_max) > 256;
  }
  if (s.warmup_left > 0) {
    // A new connection: learn the scene (and where it always moves) before anything alarms.
    --s.warmup_left;
    out.recalibrating = true;
    learn(norm, s.background, settings_.learn_recalibrate, nullptr, 0);
    s.gain_avg += settings_.learn_recalibrate * (gain - s.gain_avg);
    s.last_us = frame.wall_us;
    return out;
  }
  const bool any = anything && cv::countNonZero(s.mask) > 0;
  // Blobs are found on a half-size mask (the mask is dilated: nothing thinner than 5 px is
  // lost), a quarter of the labelling work; boxes are scaled back. Block-based labelling
  // (Grana's BBDT) into 16-bit labels: measured the cheapest of OpenCV's on these masks.
  if (any) cv::resize(s.mask, s.half, {s.mask.cols / 2, s.mask.rows / 2}, 0, 0, cv::INTER_NEAREST);
  const int n = any ? cv::connectedComponentsWithStats(s.half, s.labels, s.stats, s.centroids, 8,
                                                       CV_16U, cv::CCL_GRANA)
                    : 0;
  const double total = static_cast<double>(s.half.total());
  std::vector<cv::Rect> candidates;
  for (int i = 1; i < n; ++i) {
    const double area = s.stats.at<int>(i, cv::CC_STAT_AREA) / total;
    if (area < settings_.min_area) continue;
    const cv::Rect r =
        cv::Rect(2 * s.stats.at<int>(i, cv::CC_STAT_LEFT), 2 * s.stats.at<int>(i, cv::CC_STAT_TOP),
                 2 * s.stats.at<int>(i, cv::CC_STAT_WIDTH),
                 2 * s.stats.at<int>(i, cv::CC_STAT_HEIGHT)) &
        cv::Rect(0, 0, s.mask.cols, s.mask.rows);
    // Persistence: an object was (nearly) there the frame before; a raindrop or a flicker
    // was not. What was there passed the illumination test then: it is not asked again.
    const cv::Rect grown(r.x - r.width / 2 - 2, r.y - r.height / 2 - 2, r.width * 2 + 4,
                         r.height * 2 + 4);
    bool seen = false;
    for (const auto& p : s.previous) seen = seen || (grown & p).area() > 0;
    if (settings_.texture_stage && !seen &&
        ((exposure_moving && unchanged_raw(s.small, s.prev_small, s.mask, r, thr_i)) ||
         texture_ratio(norm, s.bg8, s.mask, r) < settings_.texture_min)) {
      ++out.lit_blobs;
      continue;
    }
    candidates.push_back(r);
    if (settings_.track_stage && !seen) {
      ++out.new_blobs;
      continue;
    }
    Blob b;
    b.area = area;
    b.box = {static_cast<double>(r.x) / s.mask.cols, static_cast<double>(r.y) / s.mask.rows,
             static_cast<double>(r.width) / s.mask.cols,
             static_cast<double>(r.height) / s.mask.rows};
    out.score += area;
    out.blobs.push_back(b);
  }
  // A camera shake changes edges everywhere: asked only when a blob would be reported (rain
  // and foliage rarely get this far), and then everything is dropped and nothing learnt — the
  // camera comes back to where it was.
  // A shift is found by phase correlation (DFTs: the dearest step by far), so a busy scene that
  // passed the test is not asked again until its change grows or a second has gone by.
  // Within a gust (a shake found in the last 10 s) every frame is asked: one that a shift does
  // not explain says nothing about the next.
  const bool passed_lately = s.no_shake_us != 0 && frame.wall_us >= s.no_shake_us &&
                             frame.wall_us - s.no_shake_us < settings_.shake_retest_us &&
                             (s.shake_us == 0 || frame.wall_us - s.shake_us > 10'000'000) &&
                             spread <= s.no_shake_spread && changed <= 1.5 * s.no_shake_changed;
  bool shaken = false;
  if (settings_.shake_stage && !candidates.empty() && changed > settings_.shake_trigger &&
      spread >= settings_.shake_cells && !passed_lately) {
    shaken = explained_by_shift(norm, s.bg8, s.region, threshold, settings_.shake_explained, cells,
                                settings_.shake_ignore_cells);
    out.shake_tested = true;
    s.no_shake_us = shaken ? 0 : frame.wall_us;
    if (shaken) s.shake_us = frame.wall_us;
    s.no_shake_changed = changed;
    s.no_shake_spread = spread;
  }
  if (shaken) {
    out = MotionResult{};
    out.shake = true;
    out.changed = std::max(changed, raw_changed);
    out.noise = s.noise;
    out.small = s.small.data;
    out.small_cols = s.small.cols;
    out.small_rows = s.small.rows;
    out.region = s.region.data;
    s.previous.clear();
    return out;
  }
  s.previous = std::move(candidates);
  s.gain_avg += rate * (gain - s.gain_avg);
  // Learn everywhere, moving areas at half the rate: a walker is not absorbed while passing,
  // and a "ghost" (the background was learnt while someone stood there) dissolves by itself.
  if (any) {
    learn(norm, s.background, rate, &s.mask, rate / 2);
  } else if (s.frames % 2 == 0) {
    // Nothing moved: every 2nd frame at twice the rate learns the same, for half the work.
    learn(norm, s.background, 2 * rate, nullptr, 0);
  }
  ++s.frames;
  return out;
}

}  // namespace matthan::analytics
