// matthan-eval: runs the analytics over simulator scenarios and scores the events against the
// ground truth (docs/design/eval.md).
//   fast mode: renders and encodes each scenario's analysis stream once (cached), decodes it
//     through the ingest clip decoder and replays the frames through every detector variant —
//     the full pipeline, the pipeline without one stage at a time, and a frame-difference
//     baseline — faster than real time.
//   rtsp mode: the real simulator and the real server over RTSP in real time, events from
//     ZeroMQ, scored the same way.
#include <signal.h>
#include <unistd.h>

#include <yaml-cpp/yaml.h>
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <random>
#include <set>
#include <sstream>
#include <thread>
#include <zmq.hpp>

#include "child_process.hpp"
#include "matthan/analytics/engine.hpp"
#include "matthan/analytics/frame_diff_baseline.hpp"
#include "matthan/camsim/encoded_loop.hpp"
#include "matthan/camsim/scenario.hpp"
#include "matthan/core/logging.hpp"
#include "matthan/ingest/clip_reader.hpp"
#include "score.hpp"

extern "C" {
#include <libavutil/log.h>
}

namespace matthan::eval {
namespace {

using camsim::ActorKind;
using nlohmann::json;

// The simulator's frame-index strip, masked as a camera's OSD clock would be.
const Polygon kFrameCodeMask{{0, 0}, {0.45, 0}, {0.45, 0.07}, {0, 0.07}};

struct Options {
  std::vector<std::string> scenarios;
  std::vector<int> seeds{101, 102, 103};
  bool file_seeds = false;
  std::string cache;
  std::string mode = "fast";
  double fps = 5;
  bool ablation = true;
  bool check = false;
  // --unmasked: the frame-code strip left unmasked, as most cameras' on-screen clock is.
  bool unmasked = false;
  std::string markdown;
  std::string json_out;
  double rtsp_seconds = 0;              // 0: one loop plus a margin
  std::string rtsp_client = "builtin";  // rtsp mode: the server's rtsp_client setting
  double onset_target_s = 0.5;          // --onset-target (see targets())
};

std::string default_cache() {
  const char* home = std::getenv("HOME");
  return std::string(home ? home : "/tmp") + "/.cache/matthan-camsim";
}

// Seeds other than the file's move every actor a little: the detector is scored on instances
// it was not tuned on, not on the exact frames it was tuned with.
void jitter(camsim::Scenario& sc, int seed) {
  std::mt19937_64 rng(static_cast<std::uint64_t>(seed) * 7919);
  std::uniform_real_distribution<double> u(-1, 1);
  sc.seed = static_cast<std::uint64_t>(seed);
  for (auto& cam : sc.cameras) {
    for (auto& a : cam.actors) {
      const double shift = 1.5 * u(rng);
      a.start_s = std::clamp(a.start_s + shift, 0.0, std::max(0.0, sc.duration_s - a.duration_s));
      if (is_intruder(a.kind)) {
        const double dy = 0.03 * u(rng);
        a.from_y += dy;
        a.to_y += dy;
        a.size *= 1 + 0.1 * u(rng);
        a.duration_s *= 1 + 0.1 * u(rng);
        a.start_s = std::min(a.start_s, std::max(0.0, sc.duration_s - a.duration_s));
      }
    }
  }
}

struct Clip {
  std::string scenario;
  int seed = 0;
  std::string camera;
  double duration_s = 0;
  std::vector<TruthActor> truth;
  std::vector<LumaFrame> frames;  // analysis frames, outage windows left out
  std::vector<std::pair<double, double>> outages;
};

struct Variant {
  std::string name;
  bool baseline = false;
  bool people = false;
  analytics::MotionSettings motion;
  analytics::TrackerSettings tracker;
  bool sooner = true;  // half-slot frames while the engine asks for them, as the server does
};

std::vector<Variant> variants(bool ablation, bool unmasked) {
  std::vector<Variant> out;
  Variant all{"Mắt Thần (all stages)", false, true, {}, {}};
  if (!unmasked) all.motion.masks = {kFrameCodeMask};
  out.push_back(all);
  if (!ablation) return out;
  auto without = [&](const std::string& what, auto change) {
    Variant v = all;
    v.name = "  without " + what;
    v.people = false;
    change(v);
    out.push_back(v);
  };
  without("global change", [](Variant& v) { v.motion.global_change_stage = false; });
  without("illumination test", [](Variant& v) { v.motion.texture_stage = false; });
  without("rain/noise filter", [](Variant& v) { v.motion.speckle_stage = false; });
  without("foliage learning", [](Variant& v) { v.motion.periodic_stage = false; });
  without("shake test", [](Variant& v) { v.motion.shake_stage = false; });
  without("sooner confirmation", [](Variant& v) { v.sooner = false; });
  without("persistence", [](Variant& v) {
    v.tracker.min_frames = 1;
    v.motion.track_stage = false;
  });
  Variant base{"frame difference (Motion-like)", true, false, {}, {}};
  base.tracker.min_frames = 1;
  out.push_back(base);
  return out;
}

// Collects events with the frame time at which each was first published.
class Collector final : public EventSink {
 public:
  double now_s = 0;
  void on_event(EventPhase phase, const Event& e) override {
    std::lock_guard lock(mutex_);
    auto it = index_.find(e.id);
    if (it == index_.end()) {
      index_[e.id] = events_.size();
      SeenEvent s;
      s.type = e.type;
      s.start_s = static_cast<double>(e.start_us) / 1e6;
      s.emitted_s = phase == EventPhase::start ? now_s : s.start_s;
      events_.push_back(s);
      it = index_.find(e.id);
    }
    auto& s = events_[it->second];
    s.label = e.label;
    s.end_s = e.end_us ? static_cast<double>(*e.end_us) / 1e6 : now_s;
  }
  std::vector<SeenEvent> take() {
    std::lock_guard lock(mutex_);
    return events_;
  }

 private:
  std::mutex mutex_;  // the classifier thread labels events too
  std::vector<SeenEvent> events_;
  std::map<std::string, std::size_t> index_;
};

struct HogCost {
  std::uint64_t runs = 0;
  double ms = 0;
};

std::vector<SeenEvent> run_variant(const Clip& clip, const Variant& v, double* analyse_ms,
                                   std::size_t* analysed, HogCost* hog) {
  Collector sink;
  const auto t0 = std::chrono::steady_clock::now();
  const double end_s = clip.duration_s;
  if (v.baseline) {
    analytics::BaselineSettings bs;
    bs.masks = v.motion.masks;
    analytics::FrameDiffBaseline det(bs);
    analytics::EventTracker tracker({clip.camera, "", "", {}, {}, {}}, v.tracker, &sink);
    for (const auto& f : clip.frames) {
      if (f.early) continue;  // the baseline analyses at the regular rate
      sink.now_s = static_cast<double>(f.wall_us) / 1e6;
      tracker.update(f.wall_us, det.process(f));
      ++*analysed;
    }
    tracker.close(static_cast<std::int64_t>(end_s * 1e6));
  } else {
    analytics::Engine engine(
        {{clip.camera, "", "", v.motion.masks, {}, {}}}, v.motion, v.tracker, {}, &sink, "",
        v.people ? analytics::Engine::People::hog : analytics::Engine::People::off);
    for (const auto& f : clip.frames) {
      // The clip holds every half-slot frame: taken when the engine asks, as the live pacer does.
      if (f.early && !(v.sooner && engine.wants_sooner(clip.camera))) continue;
      sink.now_s = static_cast<double>(f.wall_us) / 1e6;
      engine.analyze(f);
      ++*analysed;
      // Wait for the classifier: in real time it keeps up (1 run/s per camera); replayed
      // faster, its verdict must still land while the event is open.
      while (v.people && engine.people_stats().backlog > 0) {
        std::this_thread::sleep_for(std::chrono::microseconds(200));
      }
    }
    engine.close_all(static_cast<std::int64_t>(end_s * 1e6));
    const auto st = engine.people_stats();
    hog->runs += st.runs;
    hog->ms += st.ms_avg * static_cast<double>(st.runs);
  }
  *analyse_ms +=
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  return sink.take();
}

std::expected<Clip, std::string> make_clip(const std::string& file, const camsim::Scenario& sc,
                                           const camsim::CameraSpec& cam, int seed,
                                           const Options& opt, double* prepare_s,
                                           double* decode_s) {
  const auto t0 = std::chrono::steady_clock::now();
  auto loops = camsim::prepare_sub_stream(sc, cam, opt.cache);
  if (!loops) return std::unexpected(loops.error());
  const auto t1 = std::chrono::steady_clock::now();
  Clip clip;
  clip.scenario = std::filesystem::path(file).stem().string();
  if (sc.cameras.size() > 1) clip.scenario += "/" + cam.id;
  clip.seed = seed;
  clip.camera = cam.id;
  clip.truth = truth_actors(loops->truth);
  clip.duration_s = static_cast<double>(loops->sub->units.size()) / sc.fps;
  for (const auto& a : cam.actors) {
    if (a.kind == ActorKind::outage) clip.outages.emplace_back(a.start_s, a.start_s + a.duration_s);
  }
  // The same bitstream the simulator serves, through the ingest decoder.
  const std::string path = std::filesystem::temp_directory_path().string() + "/matthan-eval-" +
                           std::to_string(::getpid()) +
                           (cam.codec == camsim::SceneCodec::h265 ? ".hevc" : ".h264");
  {
    std::ofstream out(path, std::ios::binary);
    for (const auto& u : loops->sub->units) {
      out.write(reinterpret_cast<const char*>(u.data.data()),
                static_cast<std::streamsize>(u.data.size()));
    }
  }
  auto read = ingest::read_clip(
      path, cam.id, opt.fps, 0,
      [&](const LumaFrame& f) {
        const double t = static_cast<double>(f.wall_us) / 1e6;
        for (const auto& [from, to] : clip.outages) {
          if (t >= from && t < to) return;  // the camera sent nothing
        }
        clip.frames.push_back(f);
      },
      ingest::Decode::analysis, [] { return true; });
  std::filesystem::remove(path);
  if (!read) return std::unexpected(read.error());
  *prepare_s += std::chrono::duration<double>(t1 - t0).count();
  *decode_s += std::chrono::duration<double>(std::chrono::steady_clock::now() - t1).count();
  return clip;
}

std::string pct(double v) {
  char b[32];
  std::snprintf(b, sizeof b, "%.3f", v);
  return b;
}

std::string category_name(Category c) {
  return c == Category::intruder ? "intruder" : c == Category::tamper ? "tamper" : "nuisance";
}

struct Target {
  std::string what;
  bool ok;
  std::string value;
};

// onset_target_s: the median onset target (--onset-target). Over RTSP an onset also holds the
// simulator's encoder and send path (30-85 ms measured), which a replay does not: eval_rtsp
// allows 0.1 s more.
std::vector<Target> targets(const Summary& m, double onset_target_s) {
  char b[64];
  std::vector<Target> t;
  std::snprintf(b, sizeof b, "%.3f (%d/%d)", m.recall, m.hits, m.intruders);
  t.push_back({"recall >= 0.98", m.recall >= 0.98, b});
  std::snprintf(b, sizeof b, "%.2f (%d in %.2f h)", m.false_per_hour_nuisance, m.false_nuisance,
                m.nuisance_hours);
  t.push_back(
      {"false events per camera-hour on nuisances <= 0.5", m.false_per_hour_nuisance <= 0.5, b});
  std::snprintf(b, sizeof b, "%.2f s", m.median_onset_s);
  char what[64];
  std::snprintf(what, sizeof what, "median onset <= %.2g s", onset_target_s);
  t.push_back({what, m.median_onset_s <= onset_target_s, b});
  std::snprintf(b, sizeof b, "%.3f (%d labelled)", m.person_precision, m.person_events);
  t.push_back({"person precision >= 0.9", m.person_precision >= 0.9, b});
  std::snprintf(b, sizeof b, "%.3f (of %d people >= 80 px)", m.person_recall, m.persons_eligible);
  t.push_back({"person recall >= 0.8", m.person_recall >= 0.8, b});
  std::snprintf(b, sizeof b, "%d/%d (%d false)", m.tamper_found, m.tamper_expected, m.tamper_false);
  t.push_back({"every tamper found, none false",
               m.tamper_found == m.tamper_expected && m.tamper_false == 0, b});
  return t;
}

std::string report(const std::vector<Summary>& rows, const std::vector<ClipScore>& ours,
                   const std::vector<ClipScore>& baseline, const std::string& header,
                   double onset_target_s) {
  std::ostringstream md;
  md << header << "\n\n";
  md << "| detector | recall | false/h (nuisance) | false events (all) | alarm s/h | median onset "
        "s "
        "| person P | person R | tamper |\n";
  md << "| --- | --- | --- | --- | --- | --- | --- | --- | --- |\n";
  for (const auto& m : rows) {
    const bool people = m.variant.starts_with("Mắt Thần");
    char b[512];
    std::snprintf(b, sizeof b,
                  "| %s | %.3f (%d/%d) | %.1f | %d | %.0f | %.2f | %s | %s | %d/%d (%d false) |\n",
                  m.variant.c_str(), m.recall, m.hits, m.intruders, m.false_per_hour_nuisance,
                  m.false_all, m.alarm_s_per_hour, m.median_onset_s,
                  people ? pct(m.person_precision).c_str() : "–",
                  people ? pct(m.person_recall).c_str() : "–", m.tamper_found, m.tamper_expected,
                  m.tamper_false);
    md << b;
  }
  md << "\nPer scenario (all stages, summed over seeds; the baseline's hits and false events "
        "in the last column):\n\n";
  md << "| scenario | kind | hits | false events | alarm s | onsets s | tamper | baseline |\n";
  md << "| --- | --- | --- | --- | --- | --- | --- | --- |\n";
  std::map<std::string, std::vector<const ClipScore*>> by;
  std::map<std::string, std::pair<int, int>> base_hits, base_false;
  for (const auto& c : ours) by[c.scenario].push_back(&c);
  for (const auto& c : baseline) {
    base_hits[c.scenario].first += c.hits;
    base_hits[c.scenario].second += c.intruders;
    base_false[c.scenario].first += c.false_events;
  }
  for (const auto& [name, clips] : by) {
    int hits = 0, intruders = 0, fe = 0, tf = 0, te = 0, tx = 0;
    double alarm = 0;
    std::string onsets;
    for (const auto* c : clips) {
      hits += c->hits;
      intruders += c->intruders;
      fe += c->false_events;
      alarm += c->alarm_s;
      tf += c->tamper_found;
      te += c->tamper_expected;
      tx += c->tamper_false;
      for (const double o : c->onsets_s) {
        char b[16];
        std::snprintf(b, sizeof b, "%s%.2f", onsets.empty() ? "" : " ", o);
        onsets += b;
      }
    }
    char b[768];
    char base[64] = "–";
    if (base_hits.contains(name)) {
      std::snprintf(base, sizeof base, "%d/%d, %d false", base_hits[name].first,
                    base_hits[name].second, base_false[name].first);
    }
    std::snprintf(b, sizeof b, "| %s | %s | %d/%d | %d | %.1f | %s | %d/%d (%d false) | %s |\n",
                  name.c_str(), category_name(clips.front()->category).c_str(), hits, intruders, fe,
                  alarm, onsets.empty() ? "–" : onsets.c_str(), tf, te, tx, base);
    md << b;
  }
  md << "\nTargets (all stages):\n\n";
  for (const auto& t : targets(rows.front(), onset_target_s)) {
    md << "- " << (t.ok ? "PASS" : "FAIL") << " " << t.what << ": " << t.value << "\n";
  }
  return md.str();
}

json summary_json(const Summary& m) {
  return {{"variant", m.variant},
          {"recall", m.recall},
          {"hits", m.hits},
          {"intruders", m.intruders},
          {"false_per_hour_nuisance", m.false_per_hour_nuisance},
          {"false_nuisance", m.false_nuisance},
          {"nuisance_hours", m.nuisance_hours},
          {"false_all", m.false_all},
          {"alarm_s_per_hour", m.alarm_s_per_hour},
          {"median_onset_s", m.median_onset_s},
          {"person_precision", m.person_precision},
          {"person_recall", m.person_recall},
          {"tamper_found", m.tamper_found},
          {"tamper_expected", m.tamper_expected},
          {"tamper_false", m.tamper_false}};
}

int finish(const std::vector<Summary>& rows, const std::vector<ClipScore>& ours,
           const std::vector<ClipScore>& baseline, const std::string& header, const Options& opt) {
  const std::string md = report(rows, ours, baseline, header, opt.onset_target_s);
  std::fputs(md.c_str(), stdout);
  if (!opt.markdown.empty()) std::ofstream(opt.markdown) << md;
  if (!opt.json_out.empty()) {
    json j = json::array();
    for (const auto& m : rows) j.push_back(summary_json(m));
    std::ofstream(opt.json_out) << j.dump(2) << "\n";
  }
  bool ok = true;
  for (const auto& t : targets(rows.front(), opt.onset_target_s)) ok = ok && t.ok;
  if (opt.check && !ok) {
    std::fprintf(stderr, "matthan-eval: targets missed\n");
    return 1;
  }
  return 0;
}

int run_fast(const Options& opt) {
  const auto vs = variants(opt.ablation, opt.unmasked);
  std::vector<std::vector<ClipScore>> scores(vs.size());
  std::vector<double> analyse_ms(vs.size(), 0);
  std::vector<std::size_t> analysed(vs.size(), 0);
  HogCost hog;
  double prepare_s = 0, decode_s = 0, video_s = 0;
  std::size_t frames = 0;
  const auto t0 = std::chrono::steady_clock::now();
  std::vector<int> seeds = opt.seeds;
  if (opt.file_seeds) seeds = {0};
  for (const auto& file : opt.scenarios) {
    auto loaded = camsim::load_scenario(file);
    if (!loaded) {
      std::fprintf(stderr, "matthan-eval: %s: %s\n", file.c_str(), loaded.error().c_str());
      return 2;
    }
    for (const int seed : seeds) {
      camsim::Scenario sc = *loaded;
      if (seed != 0) jitter(sc, seed);
      for (const auto& cam : sc.cameras) {
        auto clip = make_clip(file, sc, cam, seed, opt, &prepare_s, &decode_s);
        if (!clip) {
          std::fprintf(stderr, "matthan-eval: %s: %s\n", file.c_str(), clip.error().c_str());
          return 2;
        }
        video_s += clip->duration_s;
        for (const auto& f : clip->frames) frames += f.early ? 0 : 1;
        for (std::size_t v = 0; v < vs.size(); ++v) {
          auto events = run_variant(*clip, vs[v], &analyse_ms[v], &analysed[v], &hog);
          ScoreSettings st;
          st.post_capture_s = vs[v].tracker.post_capture_s;
          auto s = score_clip(clip->truth, events, clip->duration_s, st);
          s.scenario = clip->scenario;
          s.seed = seed;
          s.variant = vs[v].name;
          scores[v].push_back(s);
        }
        std::fprintf(stderr, "  %-28s seed %-4d hits %d/%d false %d tamper %d/%d\n",
                     clip->scenario.c_str(), seed, scores[0].back().hits,
                     scores[0].back().intruders, scores[0].back().false_events,
                     scores[0].back().tamper_found, scores[0].back().tamper_expected);
      }
    }
  }
  const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::vector<Summary> rows;
  for (std::size_t v = 0; v < vs.size(); ++v) rows.push_back(summarise(vs[v].name, scores[v]));
  std::ostringstream header;
  header << "# matthan-eval (fast mode)\n\n" << opt.scenarios.size() << " scenario file(s), seeds ";
  for (std::size_t i = 0; i < seeds.size(); ++i) header << (i ? "," : "") << seeds[i];
  char b[512];
  std::snprintf(
      b, sizeof b,
      ", %.2f camera-hours of video, %zu frames at %.0f fps, and %zu (+%.1f %%) "
      "taken sooner to confirm a candidate.\n"
      "Wall %.1f s (%.0fx real time): render+encode %.1f s (cached after the first "
      "run), decode %.1f s, analysis of all stages %.2f ms/frame (incl. HOG waits), "
      "frame-difference baseline %.2f ms/frame.",
      video_s / 3600, frames, opt.fps, analysed.front() - frames,
      100.0 * static_cast<double>(analysed.front() - frames) /
          static_cast<double>(std::max<std::size_t>(1, frames)),
      wall, video_s / std::max(0.001, wall), prepare_s, decode_s,
      analyse_ms.front() / static_cast<double>(std::max<std::size_t>(1, analysed.front())),
      analyse_ms.back() / static_cast<double>(std::max<std::size_t>(1, analysed.back())));
  header << b;
  int motion_events = 0;
  for (const auto& c : scores.front()) motion_events += c.hits + c.false_events;
  std::snprintf(b, sizeof b,
                "\nPeople (HOG on motion regions only): %llu runs, %.1f ms a run, %.1f runs and "
                "%.0f ms per motion event.",
                static_cast<unsigned long long>(hog.runs), hog.runs ? hog.ms / hog.runs : 0.0,
                motion_events ? static_cast<double>(hog.runs) / motion_events : 0.0,
                motion_events ? hog.ms / motion_events : 0.0);
  header << b;
  return finish(rows, scores.front(), opt.ablation ? scores.back() : std::vector<ClipScore>{},
                header.str(), opt);
}

// Real time over RTSP: the simulator and the server as separate processes, events from ZeroMQ.
// All scenarios' cameras run at once, in one simulator and one server, as a commune's would.
int run_rtsp(const Options& opt) {
  const std::string dir = test::temp_dir("matthan-eval");
  YAML::Node merged;
  bool first = true;
  std::map<std::string, std::string> scenario_of;
  for (const auto& file : opt.scenarios) {
    if (auto check = camsim::load_scenario(file); !check) {
      std::fprintf(stderr, "matthan-eval: %s: %s\n", file.c_str(), check.error().c_str());
      return 2;
    }
    const YAML::Node node = YAML::LoadFile(file);
    for (const auto& c : node["cameras"])
      scenario_of[c["id"].as<std::string>()] = std::filesystem::path(file).stem().string();
    if (first) {
      first = false;
      merged = YAML::Clone(node);
    } else if (node["duration_s"].as<double>(30) != merged["duration_s"].as<double>(30) ||
               node["fps"].as<int>(25) != merged["fps"].as<int>(25)) {
      std::fprintf(stderr, "matthan-eval: %s: rtsp mode needs one duration and fps\n",
                   file.c_str());
      return 2;
    } else {
      for (const auto& c : node["cameras"]) merged["cameras"].push_back(c);
    }
  }
  const std::string scenario_file = dir + "/scenario.yaml";
  {
    YAML::Emitter out;
    out << merged;
    std::ofstream(scenario_file) << out.c_str() << "\n";
  }
  auto sc = camsim::load_scenario(scenario_file);
  if (!sc) {
    std::fprintf(stderr, "matthan-eval: merged scenario: %s\n", sc.error().c_str());
    return 2;
  }
  test::ChildProcess camsim({test::binary_path("matthan-camsim"), "--scenario", scenario_file,
                             "--truth", dir + "/truth.jsonl", "--cache", opt.cache},
                            dir + "/camsim.log");
  auto line = camsim.wait_for_line("CAMSIM ", std::chrono::seconds(900));
  if (!line) {
    std::fprintf(stderr, "matthan-eval: the simulator did not start:\n%s\n",
                 test::read_file(dir + "/camsim.log").c_str());
    return 2;
  }
  const std::string base = line->substr(7);
  {
    std::ofstream cfg(dir + "/matthan.yaml");
    cfg << "node_id: eval\nserver: {listen: '127.0.0.1:0', data_dir: '" << dir << "/var'}\n"
        << "analytics: {zmq_endpoint: 'tcp://127.0.0.1:*'}\ncameras:\n";
    for (const auto& cam : sc->cameras) {
      cfg << "  - {id: " << cam.id << ", main_url: '" << base << "/" << cam.id
          << "/main', sub_url: '" << base << "/" << cam.id << "/sub', analysis_fps: " << opt.fps
          << ", rtsp_client: " << opt.rtsp_client
          << (opt.unmasked ? "" : ", masks: [[[0, 0], [0.45, 0], [0.45, 0.07], [0, 0.07]]]")
          << "}\n";
    }
  }
  test::ChildProcess server(
      {test::binary_path("matthan"), "run", "--config", dir + "/matthan.yaml"},
      dir + "/server.log");
  auto ev = server.wait_for_line("EVENTS ", std::chrono::seconds(30));
  if (!ev) {
    std::fprintf(stderr, "matthan-eval: the server did not start:\n%s\n",
                 test::read_file(dir + "/server.log").c_str());
    return 2;
  }
  zmq::context_t ctx{1};
  zmq::socket_t sub(ctx, zmq::socket_type::sub);
  sub.set(zmq::sockopt::subscribe, "event.");
  sub.set(zmq::sockopt::rcvtimeo, 200);
  sub.connect(ev->substr(7));
  auto wall_us = [] {
    return std::chrono::duration_cast<std::chrono::microseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
  };
  // Loops run from the simulator's start: two loops' time holds one whole loop for sure.
  const double seconds = opt.rtsp_seconds > 0 ? opt.rtsp_seconds : 2 * sc->duration_s + 5;
  const std::int64_t begin_us = wall_us();
  std::map<std::string, std::map<std::string, SeenEvent>> seen;  // camera -> id -> event
  const auto until = std::chrono::steady_clock::now() +
                     std::chrono::milliseconds(static_cast<int>(seconds * 1000));
  std::fprintf(stderr, "matthan-eval: %zu camera(s) in real time for %.0f s\n", sc->cameras.size(),
               seconds);
  while (std::chrono::steady_clock::now() < until) {
    zmq::message_t topic, body;
    if (!sub.recv(topic) || !sub.recv(body)) continue;
    const std::int64_t now_us = wall_us();
    const auto j = json::parse(body.to_string());
    const auto& e = j["event"];
    auto& s = seen[e["camera"].get<std::string>()][e["id"].get<std::string>()];
    if (j["phase"] == "start") s.emitted_s = static_cast<double>(now_us) / 1e6;
    s.type = e["type"];
    s.label = e["label"];
    s.start_s = static_cast<double>(e["start_us"].get<std::int64_t>()) / 1e6;
    s.end_s = e["end_us"].is_null() ? static_cast<double>(now_us) / 1e6
                                    : static_cast<double>(e["end_us"].get<std::int64_t>()) / 1e6;
  }
  const std::int64_t end_us = wall_us();
  server.signal_and_wait(SIGTERM, std::chrono::seconds(10));
  camsim.signal_and_wait(SIGTERM, std::chrono::seconds(10));
  // Ground truth: loop-relative entries plus each loop's start on the wall clock.
  std::map<std::string, std::vector<camsim::TruthEntry>> truth;
  std::map<std::string, std::vector<std::int64_t>> loops;
  std::ifstream tf(dir + "/truth.jsonl");
  for (std::string l; std::getline(tf, l);) {
    const auto j = json::parse(l, nullptr, false);
    if (j.is_discarded()) continue;
    if (j["kind"] == "loop") {
      loops[j["camera"]].push_back(j["start_us"].get<std::int64_t>());
      continue;
    }
    camsim::TruthEntry e;
    e.camera = j["camera"];
    for (int k = 0; k <= static_cast<int>(ActorKind::move); ++k) {
      if (camsim::to_string(static_cast<ActorKind>(k)) == j["kind"].get<std::string>())
        e.kind = static_cast<ActorKind>(k);
    }
    e.start_s = j["start_s"];
    e.end_s = j["end_s"];
    for (const auto& b : j["boxes"]) e.boxes.push_back({b[0], b[1], b[2], b[3], b[4]});
    truth[e.camera].push_back(e);
  }
  std::vector<ClipScore> scores;
  for (const auto& cam : sc->cameras) {
    // Score each whole loop seen between the start and the end of the observation.
    std::vector<TruthActor> actors;
    double from_s = 1e300, to_s = 0;
    for (const auto loop_us : loops[cam.id]) {
      if (loop_us < begin_us || loop_us + static_cast<std::int64_t>(sc->duration_s * 1e6) > end_us)
        continue;
      const double base_s = static_cast<double>(loop_us) / 1e6;
      from_s = std::min(from_s, base_s);
      to_s = std::max(to_s, base_s + sc->duration_s);
      for (auto a : truth_actors(truth[cam.id])) {
        a.start_s += base_s;
        a.end_s += base_s;
        a.enter_s += base_s;
        a.leave_s += base_s;
        actors.push_back(a);
      }
    }
    if (to_s <= from_s) {
      std::fprintf(stderr, "matthan-eval: camera %s: no whole loop observed\n", cam.id.c_str());
      return 2;
    }
    std::vector<SeenEvent> events;
    for (const auto& [id, e] : seen[cam.id]) {
      if (e.start_s >= from_s && e.start_s < to_s) events.push_back(e);
    }
    auto s = score_clip(actors, events, to_s - from_s, {});
    s.scenario = scenario_of[cam.id] + " (rtsp)";
    s.variant = "Mắt Thần (all stages)";
    scores.push_back(s);
    std::fprintf(stderr, "  %-28s hits %d/%d false %d tamper %d/%d\n", s.scenario.c_str(), s.hits,
                 s.intruders, s.false_events, s.tamper_found, s.tamper_expected);
  }
  std::filesystem::remove_all(dir);
  char header[160];
  std::snprintf(header, sizeof header,
                "# matthan-eval (real time over RTSP)\n\n%zu camera(s), %.0f s observed.",
                sc->cameras.size(), seconds);
  return finish({summarise("Mắt Thần (all stages)", scores)}, scores, {}, header, opt);
}

int usage() {
  std::fprintf(stderr,
               "usage: matthan-eval [--mode fast|rtsp] [--seeds 101,102,103 | --file-seeds]\n"
               "                    [--fps N] [--no-ablation] [--cache DIR] [--markdown FILE]\n"
               "                    [--rtsp-client builtin|libavformat]\n"
               "                    [--json FILE] [--rtsp-seconds S] [--unmasked] [--check]\n"
               "                    [--onset-target S]\n"
               "                    SCENARIO.yaml|DIR...\n");
  return 2;
}

}  // namespace
}  // namespace matthan::eval

int main(int argc, char** argv) {
  using namespace matthan::eval;
  Options opt;
  opt.cache = default_cache();
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&]() -> std::string { return i + 1 < argc ? argv[++i] : ""; };
    if (a == "--mode") {
      opt.mode = next();
    } else if (a == "--seeds") {
      opt.seeds.clear();
      std::stringstream ss(next());
      for (std::string s; std::getline(ss, s, ',');) opt.seeds.push_back(std::atoi(s.c_str()));
    } else if (a == "--file-seeds") {
      opt.file_seeds = true;
    } else if (a == "--fps") {
      opt.fps = std::atof(next().c_str());
    } else if (a == "--no-ablation") {
      opt.ablation = false;
    } else if (a == "--cache") {
      opt.cache = next();
    } else if (a == "--markdown") {
      opt.markdown = next();
    } else if (a == "--json") {
      opt.json_out = next();
    } else if (a == "--rtsp-client") {
      opt.rtsp_client = next();
    } else if (a == "--rtsp-seconds") {
      opt.rtsp_seconds = std::atof(next().c_str());
    } else if (a == "--onset-target") {
      opt.onset_target_s = std::atof(next().c_str());
    } else if (a == "--unmasked") {
      opt.unmasked = true;
    } else if (a == "--check") {
      opt.check = true;
    } else if (a.starts_with("-")) {
      return usage();
    } else if (std::filesystem::is_directory(a)) {
      std::vector<std::string> files;
      for (const auto& e : std::filesystem::directory_iterator(a)) {
        if (e.path().extension() == ".yaml") files.push_back(e.path().string());
      }
      std::sort(files.begin(), files.end());
      opt.scenarios.insert(opt.scenarios.end(), files.begin(), files.end());
    } else {
      opt.scenarios.push_back(a);
    }
  }
  if (opt.scenarios.empty() || opt.fps <= 0 || (opt.mode != "fast" && opt.mode != "rtsp"))
    return usage();
  matthan::init_logging("warn", "");
  av_log_set_level(AV_LOG_ERROR);  // the encoder's statistics are not the evaluation's
  return opt.mode == "fast" ? run_fast(opt) : run_rtsp(opt);
}
