// Procedural scenes: a textured background made once per camera, actors drawn per frame.
// Everything is a function of (seed, camera, frame index): the same scenario renders the same
// pixels every time, so the encoded loop can be cached.
#include "matthan/camsim/renderer.hpp"

#include <cmath>
#include <opencv2/imgproc.hpp>
#include <random>

namespace matthan::camsim {
namespace {

std::uint64_t mix(std::uint64_t a, std::uint64_t b) {
  std::uint64_t h = a ^ (b + 0x9e3779b97f4a7c15ULL + (a << 6) + (a >> 2));
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdULL;
  h ^= h >> 33;
  return h;
}

std::uint64_t hash_text(const std::string& s) {
  std::uint64_t h = 1469598103934665603ULL;
  for (const unsigned char c : s) {
    h ^= c;
    h *= 1099511628211ULL;
  }
  return h;
}

bool active(const Actor& a, double t) {
  return t >= a.start_s && t < a.start_s + a.duration_s;
}

double progress(const Actor& a, double t) {
  return a.duration_s <= 0 ? 0 : std::clamp((t - a.start_s) / a.duration_s, 0.0, 1.0);
}

void draw_house(cv::Mat& img, std::mt19937_64& rng, int x, int ground, int w, int h) {
  std::uniform_int_distribution<int> c(150, 230);
  const cv::Scalar wall(c(rng) - 20, c(rng), c(rng));
  const cv::Scalar roof(40 + rng() % 40, 50 + rng() % 40, 120 + rng() % 80);
  cv::rectangle(img, {x, ground - h, w, h}, wall, cv::FILLED);
  std::vector<cv::Point> tri{
      {x - w / 10, ground - h}, {x + w + w / 10, ground - h}, {x + w / 2, ground - h - h / 2}};
  cv::fillConvexPoly(img, tri, roof, cv::LINE_AA);
  cv::rectangle(img, {x + w / 2 - w / 10, ground - h / 2, w / 5, h / 2}, {40, 60, 90}, cv::FILLED);
  cv::rectangle(img, {x + w / 8, ground - h + h / 5, w / 5, h / 5}, {90, 70, 50}, cv::FILLED);
  cv::rectangle(img, {x + w - w / 8 - w / 5, ground - h + h / 5, w / 5, h / 5}, {90, 70, 50},
                cv::FILLED);
}

void draw_tree(cv::Mat& img, std::mt19937_64& rng, int x, int ground, int h, int dx = 0) {
  cv::rectangle(img, {x - h / 20, ground - h / 2, h / 10, h / 2}, {30, 60, 90}, cv::FILLED);
  const cv::Scalar leaf(30 + rng() % 30, 90 + rng() % 60, 30 + rng() % 30);
  cv::circle(img, {x + dx, ground - h * 2 / 3}, h / 4, leaf, cv::FILLED, cv::LINE_AA);
  cv::circle(img, {x - h / 6 + dx, ground - h / 2}, h / 5, leaf * 0.85, cv::FILLED, cv::LINE_AA);
  cv::circle(img, {x + h / 6 + dx, ground - h / 2}, h / 5, leaf * 0.9, cv::FILLED, cv::LINE_AA);
}

}  // namespace

SceneRenderer::SceneRenderer(const Scenario& scenario, const CameraSpec& camera)
    : scenario_(scenario), camera_(camera) {
  const int W = camera.main.width;
  const int H = camera.main.height;
  std::mt19937_64 rng(mix(scenario.seed, hash_text(camera.id)));
  background_ = cv::Mat(H, W, CV_8UC3);
  const int horizon = static_cast<int>(H * 0.38);
  for (int y = 0; y < horizon; ++y) {
    const double f = static_cast<double>(y) / horizon;
    cv::line(background_, {0, y}, {W - 1, y}, cv::Scalar(230 - 30 * f, 200 - 10 * f, 160 + 40 * f));
  }
  const bool field = camera.background == "field";
  cv::rectangle(background_, {0, horizon, W, H - horizon},
                field ? cv::Scalar(50, 130, 80) : cv::Scalar(80, 115, 105), cv::FILLED);
  // Ground texture: strokes of grass, dirt and stones.
  std::uniform_int_distribution<int> ux(0, W - 1), uy(horizon, H - 1), ud(-25, 25);
  for (int i = 0; i < W * H / 300; ++i) {
    const cv::Point p(ux(rng), uy(rng));
    const int d = ud(rng);
    cv::line(background_, p, p + cv::Point(2 + d / 6, 3), cv::Scalar(80 + d, 120 + d, 100 + d), 1);
  }
  if (camera.background == "road" || camera.background == "market") {
    std::vector<cv::Point> road{{static_cast<int>(W * 0.42), horizon},
                                {static_cast<int>(W * 0.58), horizon},
                                {static_cast<int>(W * 0.98), H},
                                {static_cast<int>(W * 0.02), H}};
    cv::fillConvexPoly(background_, road, {110, 112, 118}, cv::LINE_AA);
    for (int k = 0; k < 8; ++k) {
      const double f0 = k / 8.0 + 0.02, f1 = f0 + 0.05;
      const int y0 = horizon + static_cast<int>((H - horizon) * f0 * f0);
      const int y1 = horizon + static_cast<int>((H - horizon) * f1 * f1);
      cv::line(background_, {W / 2, y0}, {W / 2, y1}, {220, 220, 220},
               std::max(1, static_cast<int>(1 + 6 * f1 * H / 720)));
    }
    // The road runs across the lower part too, where people and vehicles pass.
    cv::rectangle(background_, {0, static_cast<int>(H * 0.84), W, static_cast<int>(H * 0.1)},
                  {105, 108, 112}, cv::FILLED);
  }
  const int houses = camera.background == "field" ? 1 : 3 + static_cast<int>(rng() % 2);
  for (int i = 0; i < houses; ++i) {
    const int w = W / 8 + static_cast<int>(rng() % (W / 12));
    const int x =
        static_cast<int>((i + 0.2) * W / (houses + 0.5)) + static_cast<int>(rng() % (W / 20));
    draw_house(background_, rng, x, horizon + H / 12, w, H / 7);
  }
  if (camera.background == "market") {
    for (int i = 0; i < 5; ++i) {
      const int x = W / 12 + i * W / 5;
      const cv::Scalar awning(60 + rng() % 150, 60 + rng() % 150, 60 + rng() % 150);
      cv::rectangle(background_, {x, horizon + H / 10, W / 7, H / 25}, awning, cv::FILLED);
      cv::rectangle(background_, {x + 4, horizon + H / 10 + H / 25, W / 7 - 8, H / 14},
                    {70, 90, 120}, cv::FILLED);
    }
  }
  const int trees = 3 + static_cast<int>(rng() % 4);
  for (int i = 0; i < trees; ++i) {
    draw_tree(background_, rng, static_cast<int>(rng() % W), horizon + H / 20,
              H / 6 + static_cast<int>(rng() % (H / 8)));
  }
  // Fine static texture, as real scenes have; it also gives the encoder honest work.
  cv::Mat tex(H, W, CV_16SC3);
  cv::randn(tex, 0, 6);
  cv::GaussianBlur(tex, tex, {3, 3}, 0);
  cv::add(background_, tex, background_, cv::noArray(), CV_8UC3);

  if (camera.noise > 0) {
    cv::RNG cvrng(mix(scenario.seed, 77));
    for (int i = 0; i < 7; ++i) {
      cv::Mat n(H, W, CV_16SC3);
      cvrng.fill(n, cv::RNG::NORMAL, 0, camera.noise);
      noise_.push_back(n);
    }
  }
}

bool SceneRenderer::actor_box(const Actor& a, double t, double aspect, cv::Rect2d* box) {
  if (!active(a, t)) return false;
  const double p = progress(a, t);
  const double bx = a.from_x + (a.to_x - a.from_x) * p;
  const double by = a.from_y + (a.to_y - a.from_y) * p;
  if (a.kind == ActorKind::person) {
    const double h = a.size;
    const double w = 0.42 * h / aspect;
    *box = {bx - w / 2, by - h, w, h};
  } else if (a.kind == ActorKind::vehicle) {
    const double w = a.size;
    const double h = 0.5 * w * aspect;
    *box = {bx - w / 2, by - h, w, h};
  } else {
    return false;
  }
  // Clip to the frame; nothing visible means no box.
  const cv::Rect2d clipped = *box & cv::Rect2d(0, 0, 1, 1);
  if (clipped.width <= 0.01 || clipped.height <= 0.01) return false;
  *box = clipped;
  return true;
}

void SceneRenderer::draw_person(cv::Mat& img, const Actor& a, double t, int index) {
  const int W = img.cols, Hf = img.rows;
  const double p = progress(a, t);
  const double bx = (a.from_x + (a.to_x - a.from_x) * p) * W;
  const double by = (a.from_y + (a.to_y - a.from_y) * p) * Hf;
  const double H = a.size * Hf;
  const double phase = t * 2 * M_PI * 1.6;
  const double swing = std::sin(phase);
  std::mt19937_64 rng(mix(static_cast<std::uint64_t>(index), 1234));
  static const cv::Scalar shirts[] = {
      {40, 40, 150}, {140, 80, 40}, {60, 120, 60}, {180, 180, 190}, {30, 90, 170}};
  const cv::Scalar shirt = shirts[rng() % 5];
  const cv::Scalar pants(45, 40, 40);
  const cv::Scalar skin(120, 155, 200);
  auto P = [&](double dx, double dy) {
    return cv::Point(static_cast<int>(bx + dx * H), static_cast<int>(by - dy * H));
  };
  const int leg_t = std::max(2, static_cast<int>(0.085 * H));
  const int arm_t = std::max(2, static_cast<int>(0.06 * H));
  // Legs: hip to knee to foot, alternating.
  for (int side : {-1, 1}) {
    const double s = swing * side;
    const cv::Point hip = P(0.045 * side, 0.50);
    const cv::Point knee = P(0.02 * side + 0.09 * s, 0.26);
    const cv::Point foot = P(0.02 * side + 0.15 * s, 0.03);
    cv::line(img, hip, knee, pants, leg_t, cv::LINE_AA);
    cv::line(img, knee, foot, pants, leg_t, cv::LINE_AA);
    cv::ellipse(img, foot + cv::Point(static_cast<int>(0.03 * H), 0),
                cv::Size(static_cast<int>(0.05 * H), static_cast<int>(0.02 * H)), 0, 0, 360,
                {25, 25, 25}, cv::FILLED, cv::LINE_AA);
  }
  // Torso: shoulders wider than hips.
  std::vector<cv::Point> torso{P(-0.12, 0.80), P(0.12, 0.80), P(0.095, 0.48), P(-0.095, 0.48)};
  cv::fillConvexPoly(img, torso, shirt, cv::LINE_AA);
  // Arms swing against the legs.
  for (int side : {-1, 1}) {
    const double s = -swing * side;
    const cv::Point shoulder = P(0.11 * side, 0.78);
    const cv::Point elbow = P(0.14 * side + 0.05 * s, 0.62);
    const cv::Point hand = P(0.14 * side + 0.10 * s, 0.47);
    cv::line(img, shoulder, elbow, shirt * 0.9, arm_t, cv::LINE_AA);
    cv::line(img, elbow, hand, skin, arm_t, cv::LINE_AA);
  }
  // Neck and head.
  cv::line(img, P(0, 0.80), P(0, 0.85), skin, std::max(2, static_cast<int>(0.05 * H)), cv::LINE_AA);
  cv::ellipse(img, P(0, 0.915), cv::Size(static_cast<int>(0.06 * H), static_cast<int>(0.075 * H)),
              0, 0, 360, skin, cv::FILLED, cv::LINE_AA);
  cv::ellipse(img, P(0, 0.95), cv::Size(static_cast<int>(0.065 * H), static_cast<int>(0.045 * H)),
              0, 180, 360, {20, 20, 25}, cv::FILLED, cv::LINE_AA);
}

void SceneRenderer::draw_vehicle(cv::Mat& img, const Actor& a, double t, int index) {
  const int W = img.cols, Hf = img.rows;
  const double p = progress(a, t);
  const double bx = (a.from_x + (a.to_x - a.from_x) * p) * W;
  const double by = (a.from_y + (a.to_y - a.from_y) * p) * Hf;
  const double w = a.size * W;
  std::mt19937_64 rng(mix(static_cast<std::uint64_t>(index), 99));
  const cv::Scalar body(50 + rng() % 180, 50 + rng() % 180, 50 + rng() % 180);
  const int x0 = static_cast<int>(bx - w / 2);
  const int h = static_cast<int>(0.5 * w);
  const int y_bottom = static_cast<int>(by);
  cv::rectangle(img, {x0, y_bottom - h * 6 / 10, static_cast<int>(w), h * 4 / 10}, body, cv::FILLED,
                cv::LINE_AA);
  std::vector<cv::Point> cabin{{x0 + static_cast<int>(w * 0.2), y_bottom - h * 6 / 10},
                               {x0 + static_cast<int>(w * 0.8), y_bottom - h * 6 / 10},
                               {x0 + static_cast<int>(w * 0.68), y_bottom - h},
                               {x0 + static_cast<int>(w * 0.3), y_bottom - h}};
  cv::fillConvexPoly(img, cabin, body * 0.8, cv::LINE_AA);
  cv::rectangle(img,
                {x0 + static_cast<int>(w * 0.33), y_bottom - h * 93 / 100,
                 static_cast<int>(w * 0.34), h * 28 / 100},
                {120, 100, 80}, cv::FILLED);
  for (double fx : {0.22, 0.78}) {
    cv::circle(img, {x0 + static_cast<int>(w * fx), y_bottom - h / 5}, h / 5, {20, 20, 20},
               cv::FILLED, cv::LINE_AA);
    cv::circle(img, {x0 + static_cast<int>(w * fx), y_bottom - h / 5}, h / 11, {150, 150, 150},
               cv::FILLED, cv::LINE_AA);
  }
}

cv::Mat SceneRenderer::render(int n) {
  const double t = static_cast<double>(n) / scenario_.fps;
  cv::Mat img = background_.clone();
  const int W = img.cols, H = img.rows;
  // Foliage sways in its region all the time it is active.
  for (std::size_t i = 0; i < camera_.actors.size(); ++i) {
    const auto& a = camera_.actors[i];
    if (a.kind != ActorKind::foliage || !active(a, t)) continue;
    std::mt19937_64 rng(mix(scenario_.seed, i));
    const int rx = static_cast<int>(a.region_x * W), ry = static_cast<int>(a.region_y * H);
    const int rw = static_cast<int>(a.region_w * W), rh = static_cast<int>(a.region_h * H);
    for (int k = 0; k < 6; ++k) {
      const int cx = rx + static_cast<int>(rng() % std::max(1, rw));
      const int cy = ry + static_cast<int>(rng() % std::max(1, rh));
      const int dx = static_cast<int>(std::sin(t * 2 * M_PI * 0.8 + k) * rw * 0.05 * a.strength);
      cv::circle(img, {cx + dx, cy}, std::max(4, rh / 5), cv::Scalar(35 + k * 4, 110 + k * 6, 40),
                 cv::FILLED, cv::LINE_AA);
    }
  }
  // Moving actors, far ones first.
  std::vector<std::size_t> order;
  for (std::size_t i = 0; i < camera_.actors.size(); ++i) {
    const auto& a = camera_.actors[i];
    if ((a.kind == ActorKind::person || a.kind == ActorKind::vehicle) && active(a, t)) {
      order.push_back(i);
    }
  }
  std::sort(order.begin(), order.end(), [&](std::size_t l, std::size_t r) {
    return camera_.actors[l].from_y < camera_.actors[r].from_y;
  });
  for (const auto i : order) {
    const auto& a = camera_.actors[i];
    if (a.kind == ActorKind::person) {
      draw_person(img, a, t, static_cast<int>(i));
    } else {
      draw_vehicle(img, a, t, static_cast<int>(i));
    }
  }
  for (std::size_t i = 0; i < camera_.actors.size(); ++i) {
    const auto& a = camera_.actors[i];
    if (!active(a, t)) continue;
    switch (a.kind) {
      case ActorKind::headlight: {
        // A bright blob sweeping across: added in a patch, not blurred over the whole frame.
        const double p = progress(a, t);
        const int r = H / 3;
        if (glow_.empty()) {
          cv::Mat g(2 * r, 2 * r, CV_32F);
          for (int y = 0; y < g.rows; ++y) {
            for (int x = 0; x < g.cols; ++x) {
              const double d2 = (std::pow(x - r, 2) + std::pow(y - r, 2)) / (0.18 * r * r);
              g.at<float>(y, x) = static_cast<float>(std::exp(-d2));
            }
          }
          cv::Mat g8;
          g.convertTo(g8, CV_8U, 150.0 * a.strength);
          cv::cvtColor(g8, glow_, cv::COLOR_GRAY2BGR);
        }
        const cv::Rect where(static_cast<int>((0.1 + 0.8 * p) * W) - r,
                             static_cast<int>(0.8 * H) - r, 2 * r, 2 * r);
        const cv::Rect clipped = where & cv::Rect(0, 0, W, H);
        if (clipped.area() > 0) {
          cv::Mat roi = img(clipped);
          cv::add(roi, glow_(clipped - where.tl()), roi);
        }
        break;
      }
      case ActorKind::light_switch:
        img.convertTo(img, -1, 1.0, 60.0 * a.strength);
        break;
      case ActorKind::ir_switch: {
        cv::Mat grey;
        cv::cvtColor(img, grey, cv::COLOR_BGR2GRAY);
        grey.convertTo(grey, -1, 0.9, 35.0 * a.strength);
        cv::cvtColor(grey, img, cv::COLOR_GRAY2BGR);
        break;
      }
      case ActorKind::rain: {
        std::mt19937_64 rng(mix(scenario_.seed, static_cast<std::uint64_t>(n) * 31 + i));
        const int drops = static_cast<int>(W * H / 2500 * a.strength);
        for (int k = 0; k < drops; ++k) {
          const cv::Point p(static_cast<int>(rng() % W), static_cast<int>(rng() % H));
          cv::line(img, p, p + cv::Point(2, H / 40), {200, 200, 200}, 1, cv::LINE_AA);
        }
        break;
      }
      case ActorKind::shake: {
        std::mt19937_64 rng(mix(scenario_.seed, static_cast<std::uint64_t>(n) * 17 + i));
        const double amp = 10 * a.strength * H / 720.0;
        const double dx = (static_cast<double>(rng() % 2001) / 1000.0 - 1.0) * amp;
        const double dy = (static_cast<double>(rng() % 2001) / 1000.0 - 1.0) * amp;
        const cv::Mat m = (cv::Mat_<double>(2, 3) << 1, 0, dx, 0, 1, dy);
        cv::warpAffine(img, img, m, img.size(), cv::INTER_LINEAR, cv::BORDER_REPLICATE);
        break;
      }
      case ActorKind::defocus:
        cv::GaussianBlur(img, img, {0, 0}, 12.0 * a.strength * H / 720.0);  // a knocked lens
        break;
      case ActorKind::cover:
        img.setTo(cv::Scalar::all(12));
        break;
      case ActorKind::dusk: {
        // Slow enough that no two analysed frames differ much: a fade, not a switch.
        const double p = progress(a, t);
        const double depth = std::clamp(0.8 * a.strength, 0.0, 0.95);
        img.convertTo(img, -1, 1.0 - depth * (1.0 - std::abs(2 * p - 1)));
        break;
      }
      case ActorKind::move: {
        const double dx = 0.05 * a.strength * W;
        const cv::Mat m = (cv::Mat_<double>(2, 3) << 1, 0, dx, 0, 1, 0.3 * dx);
        cv::warpAffine(img, img, m, img.size(), cv::INTER_LINEAR, cv::BORDER_REPLICATE);
        break;
      }
      default:
        break;
    }
  }
  if (camera_.night) {
    // Infrared at night: grey, dark, low contrast; the sensor noise below then matters more.
    cv::Mat grey;
    cv::cvtColor(img, grey, cv::COLOR_BGR2GRAY);
    grey.convertTo(grey, -1, 0.35, 12);
    cv::cvtColor(grey, img, cv::COLOR_GRAY2BGR);
  }
  if (!noise_.empty()) {
    cv::add(img, noise_[static_cast<std::size_t>(n) % noise_.size()], img, cv::noArray(), CV_8UC3);
  }
  return img;
}

std::vector<TruthEntry> SceneRenderer::truth() const {
  std::vector<TruthEntry> out;
  const double aspect = static_cast<double>(camera_.main.width) / camera_.main.height;
  for (const auto& a : camera_.actors) {
    TruthEntry e{camera_.id,
                 a.kind,
                 a.start_s,
                 std::min(a.start_s + a.duration_s, scenario_.duration_s),
                 {}};
    if (a.kind == ActorKind::person || a.kind == ActorKind::vehicle) {
      const int frames = static_cast<int>(scenario_.duration_s * scenario_.fps);
      // Every frame: an entry is known to the frame, not to the 5 fps grid the analysis used
      // to share with it (which hid up to 0.2 s of onset when an actor came between two).
      for (int n = 0; n < frames; ++n) {
        const double t = static_cast<double>(n) / scenario_.fps;
        cv::Rect2d box;
        if (actor_box(a, t, aspect, &box))
          e.boxes.push_back({t, box.x, box.y, box.width, box.height});
      }
    }
    out.push_back(std::move(e));
  }
  return out;
}

}  // namespace matthan::camsim
