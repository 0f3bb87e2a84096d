// Scoring detector output against the simulator's ground truth (docs/design/eval.md).
// A hit is a motion event that starts within 2 s of an intruder (person, vehicle) entering the
// picture; one event is one hit. Unmatched motion events are false events; event time not
// covered by an intruder's presence plus post-capture is alarm time.
#pragma once

#include <string>
#include <vector>

#include "matthan/camsim/renderer.hpp"

namespace matthan::eval {

struct TruthActor {
  camsim::ActorKind kind;
  double start_s = 0, end_s = 0;
  double enter_s = 0, leave_s = 0;  // first/last time any of it is in the picture
  double max_height = 0;            // relative, of the visible box
};

// Intruders are what must alarm; tamper actors must raise tamper events; the rest are nuisances.
bool is_intruder(camsim::ActorKind kind);
bool is_tamper(camsim::ActorKind kind);

std::vector<TruthActor> truth_actors(const std::vector<camsim::TruthEntry>& truth);

struct SeenEvent {
  std::string type;   // motion, tamper, ...
  std::string label;  // person or empty
  double start_s = 0;
  double end_s = 0;
  double emitted_s = 0;  // when the start was published (frame time): the onset a guard sees
};

enum class Category { intruder, nuisance, tamper };

struct ClipScore {
  std::string scenario;
  std::string variant;
  int seed = 0;
  Category category = Category::nuisance;
  double hours = 0;
  int intruders = 0;
  int hits = 0;
  std::vector<double> onsets_s;
  int false_events = 0;
  double alarm_s = 0;
  // People >= min_person_height (relative to the analysed frame).
  int persons_eligible = 0;
  int persons_labelled = 0;
  int labelled_person = 0;        // events labelled person
  int labelled_person_right = 0;  // ... that were a person
  int tamper_expected = 0;
  int tamper_found = 0;
  int tamper_false = 0;
};

struct ScoreSettings {
  double hit_window_s = 2.0;
  double early_s = 1.0;  // an event may start this much before the actor's first visible box
  double post_capture_s = 5;
  double min_person_height = 80.0 / 360.0;  // 80 px of the 640x360 analysis stream
  double tamper_window_s = 10;              // tamper event within this after the lens is hit
};

ClipScore score_clip(const std::vector<TruthActor>& truth, const std::vector<SeenEvent>& events,
                     double duration_s, const ScoreSettings& settings);

struct Summary {
  std::string variant;
  double recall = 0;
  int intruders = 0, hits = 0;
  double false_per_hour_nuisance = 0;
  int false_nuisance = 0;
  double nuisance_hours = 0;
  int false_all = 0;
  double alarm_s_per_hour = 0;
  double median_onset_s = 0;
  double person_precision = 0, person_recall = 0;
  int person_events = 0, persons_eligible = 0;
  int tamper_expected = 0, tamper_found = 0, tamper_false = 0;
  double hours = 0;
};

Summary summarise(const std::string& variant, const std::vector<ClipScore>& clips);

}  // namespace matthan::eval
