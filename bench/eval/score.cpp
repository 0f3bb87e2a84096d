#include "score.hpp"

#include <algorithm>

namespace matthan::eval {

using camsim::ActorKind;

bool is_intruder(ActorKind kind) {
  return kind == ActorKind::person || kind == ActorKind::vehicle;
}
bool is_tamper(ActorKind kind) {
  return kind == ActorKind::cover || kind == ActorKind::defocus || kind == ActorKind::move;
}

std::vector<TruthActor> truth_actors(const std::vector<camsim::TruthEntry>& truth) {
  std::vector<TruthActor> out;
  for (const auto& e : truth) {
    TruthActor a{e.kind, e.start_s, e.end_s, e.start_s, e.end_s, 0};
    if (is_intruder(e.kind)) {
      if (e.boxes.empty()) continue;  // never visible
      a.enter_s = e.boxes.front().t_s;
      a.leave_s = e.boxes.back().t_s + 0.2;  // boxes are every 5th frame
      for (const auto& b : e.boxes) a.max_height = std::max(a.max_height, b.h);
    }
    out.push_back(a);
  }
  std::sort(out.begin(), out.end(),
            [](const TruthActor& l, const TruthActor& r) { return l.enter_s < r.enter_s; });
  return out;
}

ClipScore score_clip(const std::vector<TruthActor>& truth, const std::vector<SeenEvent>& events,
                     double duration_s, const ScoreSettings& st) {
  ClipScore s;
  s.hours = duration_s / 3600.0;
  bool any_intruder = false, any_tamper = false;
  for (const auto& a : truth) {
    any_intruder = any_intruder || is_intruder(a.kind);
    any_tamper = any_tamper || is_tamper(a.kind);
  }
  s.category =
      any_intruder ? Category::intruder : (any_tamper ? Category::tamper : Category::nuisance);
  std::vector<const SeenEvent*> motion;
  std::vector<const SeenEvent*> tamper;
  for (const auto& e : events) {
    if (e.type == "tamper") tamper.push_back(&e);
    if (e.type == "motion") motion.push_back(&e);
  }
  std::vector<bool> used(motion.size(), false);
  std::vector<int> matched_actor(motion.size(), -1);
  for (std::size_t ai = 0; ai < truth.size(); ++ai) {
    const auto& a = truth[ai];
    if (!is_intruder(a.kind)) continue;
    ++s.intruders;
    const bool eligible = a.kind == ActorKind::person && a.max_height >= st.min_person_height;
    if (eligible) ++s.persons_eligible;
    for (std::size_t i = 0; i < motion.size(); ++i) {
      if (used[i]) continue;
      const auto& e = *motion[i];
      if (e.start_s >= a.enter_s - st.early_s && e.start_s <= a.enter_s + st.hit_window_s) {
        used[i] = true;
        matched_actor[i] = static_cast<int>(ai);
        ++s.hits;
        s.onsets_s.push_back(std::max(0.0, e.emitted_s - a.enter_s));
        if (eligible && e.label == "person") ++s.persons_labelled;
        break;
      }
    }
  }
  for (std::size_t i = 0; i < motion.size(); ++i) {
    const auto& e = *motion[i];
    if (!used[i]) ++s.false_events;
    if (e.label == "person") {
      ++s.labelled_person;
      if (matched_actor[i] >= 0 &&
          truth[static_cast<std::size_t>(matched_actor[i])].kind == ActorKind::person) {
        ++s.labelled_person_right;
      }
    }
    // Alarm time: the part of the event no intruder (plus post-capture) explains.
    std::vector<std::pair<double, double>> cover;
    for (const auto& a : truth) {
      if (is_intruder(a.kind)) cover.emplace_back(a.enter_s, a.leave_s + st.post_capture_s);
    }
    std::sort(cover.begin(), cover.end());
    double t = e.start_s, unexplained = 0;
    for (const auto& [from, to] : cover) {
      if (to <= t) continue;
      if (from >= e.end_s) break;
      if (from > t) unexplained += from - t;
      t = std::max(t, to);
      if (t >= e.end_s) break;
    }
    if (t < e.end_s) unexplained += e.end_s - t;
    s.alarm_s += unexplained;
  }
  std::vector<bool> tamper_used(tamper.size(), false);
  for (const auto& a : truth) {
    if (!is_tamper(a.kind)) continue;
    ++s.tamper_expected;
    for (std::size_t i = 0; i < tamper.size(); ++i) {
      if (!tamper_used[i] && tamper[i]->start_s >= a.start_s &&
          tamper[i]->start_s <= a.start_s + st.tamper_window_s) {
        tamper_used[i] = true;
        ++s.tamper_found;
        break;
      }
    }
  }
  for (const bool u : tamper_used) s.tamper_false += u ? 0 : 1;
  return s;
}

Summary summarise(const std::string& variant, const std::vector<ClipScore>& clips) {
  Summary m;
  m.variant = variant;
  std::vector<double> onsets;
  double alarm = 0;
  int labelled = 0, labelled_right = 0, eligible = 0, eligible_labelled = 0;
  for (const auto& c : clips) {
    m.intruders += c.intruders;
    m.hits += c.hits;
    m.false_all += c.false_events;
    m.hours += c.hours;
    alarm += c.alarm_s;
    onsets.insert(onsets.end(), c.onsets_s.begin(), c.onsets_s.end());
    if (c.category == Category::nuisance) {
      m.false_nuisance += c.false_events;
      m.nuisance_hours += c.hours;
    }
    labelled += c.labelled_person;
    labelled_right += c.labelled_person_right;
    eligible += c.persons_eligible;
    eligible_labelled += c.persons_labelled;
    m.tamper_expected += c.tamper_expected;
    m.tamper_found += c.tamper_found;
    m.tamper_false += c.tamper_false;
  }
  m.recall = m.intruders ? static_cast<double>(m.hits) / m.intruders : 1.0;
  m.false_per_hour_nuisance = m.nuisance_hours > 0 ? m.false_nuisance / m.nuisance_hours : 0;
  m.alarm_s_per_hour = m.hours > 0 ? alarm / m.hours : 0;
  if (!onsets.empty()) {
    std::sort(onsets.begin(), onsets.end());
    const std::size_t n = onsets.size();
    m.median_onset_s = n % 2 ? onsets[n / 2] : (onsets[n / 2 - 1] + onsets[n / 2]) / 2;
  }
  m.person_events = labelled;
  m.persons_eligible = eligible;
  m.person_precision = labelled ? static_cast<double>(labelled_right) / labelled : 1.0;
  m.person_recall = eligible ? static_cast<double>(eligible_labelled) / eligible : 1.0;
  return m;
}

}  // namespace matthan::eval
