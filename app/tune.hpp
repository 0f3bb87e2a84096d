// Tuning by replay: the analytics over a clip with candidate settings, listing the events they
// would have raised (`matthan tune` and GET /api/cameras/{id}/tune share it).
#pragma once

#include <expected>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <utility>
#include <vector>

#include "matthan/analytics/engine.hpp"
#include "matthan/core/config.hpp"
#include "matthan/ingest/clip_reader.hpp"

namespace matthan::app {

// The engine's settings from the config's analytics section (run and tune use the same).
struct EngineSettings {
  analytics::MotionSettings motion;
  analytics::TrackerSettings tracker;
  analytics::TamperSettings tamper;
};
EngineSettings engine_settings(const AnalyticsConfig& a);

struct TuneRequest {
  std::string clip;  // a file libavformat reads
  CameraConfig camera;
  AnalyticsConfig analytics;
  double fps = 5;
  // Candidate analytics settings (key, value), checked like the config file.
  std::vector<std::pair<std::string, std::string>> sets;
};

struct TuneResult {
  ingest::ClipInfo info;
  std::vector<Event> events;  // in start order; times are seconds into the clip (as µs)
};

std::expected<TuneResult, std::string> run_tune(const TuneRequest& request);
nlohmann::json tune_json(const TuneRequest& request, const TuneResult& result);

}  // namespace matthan::app
