#include "matthan/analytics/engine.hpp"

#include <opencv2/core/utility.hpp>

#include <spdlog/spdlog.h>
#include <turbojpeg.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>

namespace matthan::analytics {

namespace {

// The analysed picture as a greyscale JPEG (quality 85), written to `path`. TurboJPEG rather
// than OpenCV's imgcodecs: that module brings GDAL, GDCM, Poppler and some hundred more
// libraries into the server (and the package) for this one call.
bool write_grey_jpeg(const std::string& path, const std::uint8_t* pixels, int width, int height,
                     int stride, std::string& error) {
  tjhandle tj = tjInitCompress();
  if (tj == nullptr) {
    error = tjGetErrorStr2(nullptr);
    return false;
  }
  unsigned char* jpeg = nullptr;
  unsigned long size = 0;
  const bool encoded = tjCompress2(tj, pixels, width, stride, height, TJPF_GRAY, &jpeg, &size,
                                   TJSAMP_GRAY, 85, 0) == 0;
  if (!encoded) error = tjGetErrorStr2(tj);
  bool written = false;
  if (encoded) {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(jpeg), static_cast<std::streamsize>(size));
    out.close();
    written = !out.fail();
    if (!written) error = std::strerror(errno);
  }
  tjFree(jpeg);
  tjDestroy(tj);
  return written;
}

}  // namespace

Engine::Engine(const std::vector<CameraInfo>& cameras, MotionSettings motion,
               TrackerSettings tracker, TamperSettings tamper, EventSink* sink,
               std::string snapshot_dir, People people)
    : snapshot_dir_(std::move(snapshot_dir)) {
  // The analysis pool already runs one worker per core: OpenCV's own thread pool on top only
  // adds hand-offs (its parallel_for_ splits 320x180 pictures into slivers) and contention.
  cv::setNumThreads(1);
  for (const auto& cam : cameras) {
    MotionSettings own = motion;
    own.masks = cam.masks;
    // The detector keeps blobs as small as the most permissive zone allows; the zone filter
    // below applies each zone's own minimum.
    for (const auto& z : cam.zones) {
      if (z.min_area > 0) own.min_area = std::min(own.min_area, z.min_area);
    }
    auto pc = std::make_unique<PerCamera>(own, cam, tamper, sink);
    pc->zones = cam.zones;
    pc->min_area = motion.min_area;
    PerCamera* raw = pc.get();
    const std::string dir = snapshot_dir_.empty() ? "" : snapshot_dir_ + "/" + cam.id;
    EventTracker::Snapshot snap;
    if (!dir.empty()) {
      snap = [raw, dir](const Event& e) -> std::string {
        if (raw->current == nullptr) return e.snapshot_path;
        std::error_code ec;
        std::filesystem::create_directories(dir, ec);
        const std::string path = dir + "/" + e.id + ".jpg";
        // Written aside and renamed: an alert channel reading it never sees half a JPEG.
        const std::string part = path + ".part.jpg";
        std::string error;
        if (!write_grey_jpeg(part, raw->current->pixels(), raw->current->width,
                             raw->current->height, raw->current->stride, error)) {
          spdlog::warn("camera {}: cannot write snapshot {}: {}", e.camera_id, path, error);
          std::filesystem::remove(part, ec);
          return e.snapshot_path;
        }
        if (std::filesystem::rename(part, path, ec); ec) {
          spdlog::warn("camera {}: cannot write snapshot {}: {}", e.camera_id, path, ec.message());
          std::filesystem::remove(part, ec);
          return e.snapshot_path;
        }
        return path;
      };
    }
    pc->tracker = std::make_unique<EventTracker>(cam, tracker, sink, std::move(snap));
    cameras_[cam.id] = std::move(pc);
  }
  if (people == People::hog) {
    people_ = std::make_unique<PersonClassifier>(
        [this](const std::string& camera, const std::string& event) {
          auto it = cameras_.find(camera);
          if (it == cameras_.end()) return;
          std::lock_guard lock(it->second->mutex);
          it->second->tracker->set_label(event, "person");
        });
  }
}

ClassifierStats Engine::people_stats() const {
  return people_ ? people_->stats() : ClassifierStats{};
}

void Engine::analyze(const LumaFrame& frame) {
  auto it = cameras_.find(frame.camera_id);
  if (it == cameras_.end()) return;
  auto& pc = *it->second;
  std::lock_guard lock(pc.mutex);
  auto motion = pc.detector.process(frame);
  if (!pc.zones.empty()) keep_zone_blobs(pc, motion);
  // Tamper conditions must last seconds: judging every 5th analysed frame is plenty, except
  // when much of the picture just changed (a hand over the lens, a knock): then at once, so
  // the change is not taken for motion first.
  const bool sudden = motion.changed > 0.03 || motion.global_change || motion.shake;
  if (motion.small != nullptr && (pc.frames++ % 5 == 0 || sudden)) {
    const auto t = pc.tamper.update(frame.wall_us, motion.small, motion.small_cols,
                                    motion.small_rows, motion.region);
    pc.figures.sharpness = t.sharpness;
    pc.figures.sharpness_baseline = t.baseline;
    pc.figures.view_match = t.match;
    if (!pc.figures.tamper.empty() && t.condition.empty()) pc.detector.recalibrate();
    pc.figures.tamper = t.condition;
  }
  // A lens being covered, blurred or turned changes the picture but is not an intruder: the
  // tamper event reports it.
  if (!pc.figures.tamper.empty()) {
    motion.blobs.clear();
    motion.score = 0;
  }
  pc.current = &frame;
  pc.tracker->update(frame.wall_us, motion, frame.early);
  pc.current = nullptr;
  // People: classify the largest moving region of an open, not yet labelled event.
  if (people_ && pc.tracker->active() && pc.tracker->active_label().empty() &&
      !motion.blobs.empty()) {
    const Blob* big = &motion.blobs.front();
    for (const auto& b : motion.blobs) {
      if (b.area > big->area) big = &b;
    }
    const int bx = static_cast<int>(big->box.x * frame.width);
    const int by = static_cast<int>(big->box.y * frame.height);
    const int bw = static_cast<int>(big->box.w * frame.width);
    const int bh = static_cast<int>(big->box.h * frame.height);
    const int pad = std::max(8, bh / 2);
    const int x0 = std::max(0, bx - pad), y0 = std::max(0, by - pad);
    const int x1 = std::min(frame.width, bx + bw + pad), y1 = std::min(frame.height, by + bh + pad);
    // People stand taller than wide; a car's box is wide: HOG is not asked about it.
    if (bh >= 24 && bh >= bw * 1.2 && x1 > x0 && y1 > y0) {
      PersonJob job;
      job.camera_id = frame.camera_id;
      job.event_id = pc.tracker->active_id();
      job.width = x1 - x0;
      job.height = y1 - y0;
      job.target_height_px = bh;
      job.luma.resize(static_cast<std::size_t>(job.width) * job.height);
      for (int y = y0; y < y1; ++y) {
        std::copy_n(frame.pixels() + static_cast<std::size_t>(y) * frame.stride + x0, job.width,
                    job.luma.data() + static_cast<std::size_t>(y - y0) * job.width);
      }
      people_->submit(std::move(job), frame.wall_us);
    }
  }
  pc.figures.noise = motion.noise;
  pc.figures.event_active = pc.tracker->active();
  // A candidate not yet confirmed (new this frame, or persisting for fewer than min_frames):
  // confirm it at twice the rate. Not while the scene is being relearnt or the lens tampered.
  pc.sooner.store(!pc.tracker->active() && !motion.recalibrating && pc.figures.tamper.empty() &&
                      (motion.new_blobs > 0 || !motion.blobs.empty()),
                  std::memory_order_relaxed);
}

bool Engine::wants_sooner(const std::string& camera_id) const {
  auto it = cameras_.find(camera_id);
  return it != cameras_.end() && it->second->sooner.load(std::memory_order_relaxed);
}

// Detection zones: a blob counts where it stands (the bottom centre of its box, as an intruder's
// feet) or where its centre is, and only when it is as big as that zone asks.
void Engine::keep_zone_blobs(const PerCamera& pc, MotionResult& motion) {
  std::vector<Blob> kept;
  double score = 0;
  for (auto b : motion.blobs) {
    const double cx = b.box.x + b.box.w / 2;
    for (std::size_t i = 0; i < pc.zones.size(); ++i) {
      const auto& z = pc.zones[i];
      if (b.area < (z.min_area > 0 ? z.min_area : pc.min_area)) continue;
      if (point_in_polygon(z.polygon, cx, b.box.y + b.box.h) ||
          point_in_polygon(z.polygon, cx, b.box.y + b.box.h / 2)) {
        b.zone = static_cast<int>(i);
        score += b.area;
        kept.push_back(b);
        break;
      }
    }
  }
  motion.blobs = std::move(kept);
  motion.score = score;
}

Engine::Figures Engine::figures(const std::string& camera_id) const {
  auto it = cameras_.find(camera_id);
  if (it == cameras_.end()) return {};
  std::lock_guard lock(it->second->mutex);
  return it->second->figures;
}

void Engine::close_all(std::int64_t now_us) {
  for (auto& [id, pc] : cameras_) {
    std::lock_guard lock(pc->mutex);
    pc->tracker->close(now_us);
    pc->tamper.close(now_us);
  }
}

}  // namespace matthan::analytics
