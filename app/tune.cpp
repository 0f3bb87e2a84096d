#include "tune.hpp"

#include <chrono>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>

namespace matthan::app {

EngineSettings engine_settings(const AnalyticsConfig& a) {
  EngineSettings e;
  e.motion.analysis_height = a.analysis_height;
  e.motion.threshold_min = a.threshold_min;
  e.motion.min_area = a.min_area;
  e.tracker.min_frames = a.min_frames;
  e.tracker.gap_s = a.gap_s;
  e.tracker.pre_capture_s = a.pre_capture_s;
  e.tracker.post_capture_s = a.post_capture_s;
  e.tamper.min_duration_s = a.tamper_min_s;
  return e;
}

namespace {

// Collects the events a replay raised, keyed by id, in start order.
class CollectingSink final : public EventSink {
 public:
  void on_event(EventPhase, const Event& event) override {
    std::lock_guard lock(mutex_);
    if (!index_.contains(event.id)) {
      index_[event.id] = events_.size();
      events_.push_back(event);
    } else {
      events_[index_[event.id]] = event;
    }
  }
  std::vector<Event> events() const {
    std::lock_guard lock(mutex_);
    return events_;
  }

 private:
  mutable std::mutex mutex_;  // the classifier thread labels events too
  std::vector<Event> events_;
  std::map<std::string, std::size_t> index_;
};

}  // namespace

std::expected<TuneResult, std::string> run_tune(const TuneRequest& request) {
  AnalyticsConfig a = request.analytics;
  if (!request.sets.empty()) {
    // Candidate settings go through the same YAML checks as the config file.
    static const std::set<std::string> tunable{"threshold_min", "min_area",        "min_frames",
                                               "gap_s",         "analysis_height", "tamper_min_s",
                                               "people"};
    std::string yaml = "analytics:\n";
    for (const auto& [k, v] : request.sets) {
      if (!tunable.contains(k)) {
        std::string list;
        for (const auto& t : tunable) list += (list.empty() ? "" : ", ") + t;
        return std::unexpected("'" + k + "' cannot be tuned (tunable: " + list + ")");
      }
      yaml += "  " + k + ": " + v + "\n";
    }
    auto parsed = load_config_text(yaml, "--set");
    if (!parsed) {
      std::string all;
      for (const auto& e : parsed.error()) all += (all.empty() ? "" : "; ") + e.to_string();
      return std::unexpected(all);
    }
    const auto& p = parsed->analytics;
    for (const auto& [k, v] : request.sets) {
      if (k == "threshold_min") a.threshold_min = p.threshold_min;
      if (k == "min_area") a.min_area = p.min_area;
      if (k == "min_frames") a.min_frames = p.min_frames;
      if (k == "gap_s") a.gap_s = p.gap_s;
      if (k == "analysis_height") a.analysis_height = p.analysis_height;
      if (k == "tamper_min_s") a.tamper_min_s = p.tamper_min_s;
      if (k == "people") a.people = p.people;
    }
  }
  const auto [motion, tracker, tamper] = engine_settings(a);
  const auto& cam = request.camera;
  CollectingSink sink;
  std::int64_t last_us = 0;
  TuneResult result;
  {
    analytics::Engine engine(
        {{cam.id, cam.commune, cam.hamlet, cam.masks, cam.zones, cam.armed}}, motion, tracker,
        tamper, &sink, "",
        a.people ? analytics::Engine::People::hog : analytics::Engine::People::off);
    auto read = ingest::read_clip(
        request.clip, cam.id, request.fps, 0,
        [&](const LumaFrame& f) {
          engine.analyze(f);
          last_us = f.wall_us;
          // Replayed faster than real time: let the classifier keep up, as it does live.
          while (a.people && engine.people_stats().backlog > 0) {
            std::this_thread::sleep_for(std::chrono::microseconds(200));
          }
        },
        ingest::Decode::analysis, [&] { return engine.wants_sooner(cam.id); });
    if (!read) return std::unexpected(read.error());
    result.info = *read;
    engine.close_all(last_us + 1);
  }
  result.events = sink.events();
  return result;
}

nlohmann::json tune_json(const TuneRequest& request, const TuneResult& result) {
  nlohmann::json list = nlohmann::json::array();
  for (const auto& e : result.events) {
    list.push_back({{"type", e.type},
                    {"label", e.label},
                    {"zones", e.zones},
                    {"start_s", e.start_us / 1e6},
                    {"end_s", e.end_us ? nlohmann::json(*e.end_us / 1e6) : nlohmann::json()},
                    {"peak_score", e.peak_score},
                    {"peak_box", {e.peak_box.x, e.peak_box.y, e.peak_box.w, e.peak_box.h}}});
  }
  return {{"clip", request.clip},
          {"camera", request.camera.id},
          {"frames_decoded", result.info.frames_decoded},
          {"frames_analysed", result.info.frames_analysed},
          {"frames_sooner", result.info.frames_sooner},
          {"duration_s", result.info.duration_s},
          {"events", list}};
}

}  // namespace matthan::app
