#include "matthan/analytics/tamper_detector.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <opencv2/imgproc.hpp>

#include "pixel_ops.hpp"

namespace matthan::analytics {

namespace {

double correlation(const cv::Mat& x, const cv::Mat& y) {
  cv::Mat a = x - cv::mean(x)[0], b = y - cv::mean(y)[0];
  const double den = std::sqrt(a.dot(a) * b.dot(b));
  return den > 0 ? a.dot(b) / den : 1.0;
}

// The edge maps compared cell by cell (4x4) and the median taken: what the camera draws on
// top (its clock and name, which do not turn with it) or someone close to the lens spoils a
// cell or two, not the comparison. Cells with little edge in the view (sky, a wall) say
// nothing either way and are left out.
double median_cell_match(const cv::Mat& edges, const cv::Mat& ref) {
  const double mean_ref = cv::mean(ref)[0];
  std::array<double, 16> m{};
  std::size_t k = 0;
  for (int cy = 0; cy < 4; ++cy) {
    for (int cx = 0; cx < 4; ++cx) {
      const cv::Range ys(cy * ref.rows / 4, (cy + 1) * ref.rows / 4);
      const cv::Range xs(cx * ref.cols / 4, (cx + 1) * ref.cols / 4);
      const cv::Mat r = ref(ys, xs);
      if (cv::mean(r)[0] < 0.25 * mean_ref) continue;
      m[k++] = correlation(edges(ys, xs), r);
    }
  }
  if (k == 0) return correlation(edges, ref);
  std::sort(m.begin(), m.begin() + static_cast<std::ptrdiff_t>(k));
  return k % 2 ? m[k / 2] : (m[k / 2 - 1] + m[k / 2]) / 2;
}

}  // namespace

TamperDetector::TamperDetector(CameraInfo camera, TamperSettings settings, EventSink* sink)
    : camera_(std::move(camera)), settings_(settings), sink_(sink) {}

TamperState TamperDetector::update(std::int64_t wall_us, const std::uint8_t* small, int cols,
                                   int rows, const std::uint8_t* region) {
  TamperState st;
  // Everything on a half-size picture (a quarter of the pixels): covered, blurred and turned
  // are properties of the whole picture, not of its finest detail.
  const cv::Mat full(rows, cols, CV_8U, const_cast<std::uint8_t*>(small));
  cv::Mat img, mask;
  half_size(full, img);
  if (region != nullptr) {
    const cv::Mat m(rows, cols, CV_8U, const_cast<std::uint8_t*>(region));
    cv::resize(m, mask, img.size(), 0, 0, cv::INTER_NEAREST);
  }
  cv::Scalar mean, stddev;
  cv::meanStdDev(img, mean, stddev, mask);
  st.mean = mean[0];
  st.stddev = stddev[0];
  // Sharpness: mean absolute Laplacian, normalised by brightness so a darker evening does not
  // read as blur. (Not by contrast: blur lowers contrast too and would cancel out.)
  cv::Mat lap;
  cv::Laplacian(img, lap, CV_16S, 3);
  st.sharpness = cv::mean(cv::abs(lap), mask)[0] / std::max(20.0, st.mean);

  // Moved: edge maps (direction-free, so the same for day, night and infrared) of the view
  // and of this frame, compared by normalised correlation.
  cv::Mat edges;
  {
    cv::Mat gx, gy;
    cv::Sobel(img, gx, CV_32F, 1, 0);
    cv::Sobel(img, gy, CV_32F, 0, 1);
    cv::magnitude(gx, gy, edges);
    if (!mask.empty()) edges.setTo(0, mask == 0);
    if (reference_.size() != edges.total()) reference_.clear();
    if (!reference_.empty()) {
      const cv::Mat ref(edges.rows, edges.cols, CV_32F, reference_.data());
      st.match = median_cell_match(edges, ref);
    }
  }
  std::string condition;
  if (st.mean < settings_.dark_mean || st.stddev < settings_.uniform_stddev) {
    condition = "covered";
  } else if (baseline_count_ >= settings_.baseline_frames &&
             st.sharpness < settings_.defocus_ratio * baseline_) {
    condition = "defocused";
  } else if (!reference_.empty() && st.match < settings_.moved_match) {
    condition = "moved";
    if (moved_since_us_ == 0) moved_since_us_ = wall_us;
    if (wall_us - moved_since_us_ >= static_cast<std::int64_t>(settings_.moved_accept_s * 1e6)) {
      // Someone re-aimed it on purpose, or nobody will: this is the view now.
      reference_.assign(edges.begin<float>(), edges.end<float>());
      condition.clear();
    }
  }
  if (condition != "moved") moved_since_us_ = 0;
  if (condition.empty()) {
    // The view drifts slowly (seasons, parked cars): follow it while it matches.
    if (reference_.empty()) {
      reference_.assign(edges.begin<float>(), edges.end<float>());
    } else if (st.match > 0.7) {
      cv::Mat ref(edges.rows, edges.cols, CV_32F, reference_.data());
      cv::accumulateWeighted(edges, ref, 0.01);
    }
  }
  if (condition.empty()) {
    // Learn what this camera's picture normally looks like, only while it is healthy.
    // The baseline follows sharper pictures quickly and softer ones slowly: a lens being
    // knocked out of focus must not teach the camera that blur is normal.
    ++baseline_count_;
    if (baseline_ == 0) {
      baseline_ = st.sharpness;
    } else {
      const double alpha = st.sharpness > baseline_ ? 0.2 : 0.002;
      baseline_ += alpha * (st.sharpness - baseline_);
    }
  }
  st.baseline = baseline_;
  st.condition = condition;

  if (!condition.empty()) {
    clear_since_us_ = 0;
    if (event_ && event_->label != condition)
      close(wall_us);  // covered, then defocused: two events
    if (condition != pending_) {
      pending_ = condition;
      pending_since_us_ = wall_us;
    }
    if (!event_ &&
        wall_us - pending_since_us_ >= static_cast<std::int64_t>(settings_.min_duration_s * 1e6)) {
      Event e = new_event(camera_, "tamper", pending_since_us_);
      e.label = condition;
      e.peak_score = 1;
      e.peak_box = {0, 0, 1, 1};
      event_ = e;
      if (sink_) sink_->on_event(EventPhase::start, *event_);
    }
  } else {
    pending_.clear();
    if (event_) {
      if (clear_since_us_ == 0) clear_since_us_ = wall_us;
      if (wall_us - clear_since_us_ >= static_cast<std::int64_t>(settings_.clear_s * 1e6)) {
        close(clear_since_us_);
      }
    }
  }
  return st;
}

void TamperDetector::close(std::int64_t now_us) {
  if (!event_) return;
  event_->end_us = std::max(now_us, event_->start_us + 1);
  if (sink_) sink_->on_event(EventPhase::end, *event_);
  event_.reset();
  clear_since_us_ = 0;
}

}  // namespace matthan::analytics
