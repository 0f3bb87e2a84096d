#include "matthan/analytics/engine.hpp"

#include <spdlog/spdlog.h>
#include <filesystem>
#include <opencv2/imgcodecs.hpp>

namespace matthan::analytics {

Engine::Engine(const std::vector<CameraInfo>& cameras, MotionSettings motion,
               TrackerSettings tracker, TamperSettings tamper, EventSink* sink,
               std::string snapshot_dir)
    : snapshot_dir_(std::move(snapshot_dir)) {
  for (const auto& cam : cameras) {
    MotionSettings own = motion;
    own.masks = cam.masks;
    auto pc = std::make_unique<PerCamera>(own, cam, tamper, sink);
    PerCamera* raw = pc.get();
    const std::string dir = snapshot_dir_.empty() ? "" : snapshot_dir_ + "/" + cam.id;
    EventTracker::Snapshot snap;
    if (!dir.empty()) {
      snap = [raw, dir](const Event& e) -> std::string {
        if (raw->current == nullptr) return e.snapshot_path;
        std::error_code ec;
        std::filesystem::create_directories(dir, ec);
        const std::string path = dir + "/" + e.id + ".jpg";
        const cv::Mat luma(raw->current->height, raw->current->width, CV_8U,
                           const_cast<std::uint8_t*>(raw->current->luma.data()),
                           static_cast<std::size_t>(raw->current->stride));
        if (!cv::imwrite(path, luma, {cv::IMWRITE_JPEG_QUALITY, 85})) {
          spdlog::warn("camera {}: cannot write snapshot {}", e.camera_id, path);
          return e.snapshot_path;
        }
        return path;
      };
    }
    pc->tracker = std::make_unique<EventTracker>(cam, tracker, sink, std::move(snap));
    cameras_[cam.id] = std::move(pc);
  }
}

void Engine::analyze(const LumaFrame& frame) {
  auto it = cameras_.find(frame.camera_id);
  if (it == cameras_.end()) return;
  auto& pc = *it->second;
  std::lock_guard lock(pc.mutex);
  const auto motion = pc.detector.process(frame);
  pc.current = &frame;
  pc.tracker->update(frame.wall_us, motion);
  pc.current = nullptr;
  pc.figures.noise = motion.noise;
  pc.figures.event_active = pc.tracker->active();
  if (motion.small != nullptr) {
    const auto t = pc.tamper.update(frame.wall_us, motion.small, motion.small_cols,
                                    motion.small_rows, motion.region);
    pc.figures.sharpness = t.sharpness;
    pc.figures.sharpness_baseline = t.baseline;
    pc.figures.tamper = t.condition;
  }
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
