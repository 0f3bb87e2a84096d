#include "matthan/core/event_json.hpp"

#include <nlohmann/json.hpp>

#include "matthan/core/time_format.hpp"

namespace matthan {

nlohmann::json event_body_json(const Event& e) {
  return {{"id", e.id},
          {"camera", e.camera_id},
          {"commune", e.commune},
          {"hamlet", e.hamlet},
          {"type", e.type},
          {"label", e.label},
          {"start", format_iso8601_us(e.start_us)},
          {"start_us", e.start_us},
          {"end", e.end_us ? nlohmann::json(format_iso8601_us(*e.end_us)) : nlohmann::json()},
          {"end_us", e.end_us ? nlohmann::json(*e.end_us) : nlohmann::json()},
          {"peak_score", e.peak_score},
          {"peak_box",
           {{"x", e.peak_box.x}, {"y", e.peak_box.y}, {"w", e.peak_box.w}, {"h", e.peak_box.h}}},
          {"zones", e.zones},
          {"armed", e.armed},
          {"snapshot", !e.snapshot_path.empty()},
          {"pre_capture_s", e.pre_capture_s},
          {"post_capture_s", e.post_capture_s}};
}

}  // namespace matthan
