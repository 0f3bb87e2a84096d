// The report's facts, read from the database. Every figure is defined in docs/design/report.md;
// the integration test recomputes them with Python's sqlite3 and by hand.
#include <nlohmann/json.hpp>

#include <algorithm>
#include <ctime>
#include <regex>
#include <set>

#include "format.hpp"
#include "matthan/core/config.hpp"
#include "matthan/core/url.hpp"
#include "matthan/report/operation_report.hpp"
#include "matthan/storage/sql.hpp"

namespace matthan::report {
namespace {

using storage::Statement;

// Local midnight starting day "YYYY-MM-DD" (the process's TZ), or nullopt for anything that is
// not a real calendar day of 1970-9998 (2026-02-30, month 13, a five-digit year).
std::optional<std::int64_t> local_midnight_us(const std::string& day) {
  static const std::regex re("^(\\d{4})-(\\d{2})-(\\d{2})$");
  std::smatch m;
  if (!std::regex_match(day, m, re)) return std::nullopt;
  const int y = std::stoi(m[1]), mo = std::stoi(m[2]), d = std::stoi(m[3]);
  if (y < 1970 || y > 9998 || mo < 1 || mo > 12 || d < 1 || d > 31) return std::nullopt;
  std::tm tm{};
  tm.tm_year = y - 1900;
  tm.tm_mon = mo - 1;
  tm.tm_mday = d;
  tm.tm_isdst = -1;
  const auto t = std::mktime(&tm);
  if (t == -1 || tm.tm_year != y - 1900 || tm.tm_mon != mo - 1 || tm.tm_mday != d)
    return std::nullopt;
  return static_cast<std::int64_t>(t) * 1'000'000;
}

std::tm local_tm(std::int64_t us) {
  const std::time_t t = static_cast<std::time_t>(us / 1'000'000);
  std::tm tm{};
  localtime_r(&t, &tm);
  return tm;
}

std::string local_day(std::int64_t us) {
  const auto tm = local_tm(us);
  char out[16];
  std::strftime(out, sizeof out, "%Y-%m-%d", &tm);
  return out;
}

// The day `days` after `day` (negative: before).
std::string add_days(const std::string& day, int days) {
  const auto at = local_midnight_us(day);
  std::tm tm = local_tm(*at);
  tm.tm_mday += days;
  tm.tm_hour = 12;  // mktime normalises; noon keeps a DST shift from changing the date
  tm.tm_isdst = -1;
  std::mktime(&tm);
  char out[16];
  std::strftime(out, sizeof out, "%Y-%m-%d", &tm);
  return out;
}

// Days from `from` to `to`, both counted (both valid days, from <= to).
int days_between(const std::string& from, const std::string& to) {
  const auto a = *local_midnight_us(from), b = *local_midnight_us(to);
  return static_cast<int>((b - a + 43'200'000'000LL) / 86'400'000'000LL) + 1;  // DST-proof
}

// The Monday on or before a local day.
std::string week_of(const std::string& day) {
  const auto tm = local_tm(*local_midnight_us(day) + 12LL * 3'600'000'000);
  return add_days(day, -((tm.tm_wday + 6) % 7));
}

std::int64_t overlap(std::int64_t a0, std::int64_t a1, std::int64_t b0, std::int64_t b1) {
  return std::max<std::int64_t>(0, std::min(a1, b1) - std::max(a0, b0));
}

struct Run {
  std::int64_t start_us, end_us;
};

struct Scope {
  std::set<std::string> camera_ids;
  std::set<std::string> commune_codes;  // current and former
  std::string node_id;
};

// Counts for one period: events, review, extractions, cases (what the comparison needs too).
void count_activity(sqlite3* db, const Scope& scope, std::int64_t a, std::int64_t b, Totals& t,
                    ReportData* detail) {
  {
    Statement st(db,
                 "SELECT camera_id, type, review_state, start_us FROM event"
                 " WHERE node_id = ?1 AND start_us >= ?2 AND start_us < ?3 ORDER BY start_us");
    st.bind(1, scope.node_id).bind(2, a).bind(3, b);
    std::map<std::string, std::int64_t> weeks;
    std::map<std::string, CameraFacts*> by_id;
    std::int64_t day_start = 0, day_end = 0;  // the local day of `week`
    std::string week;
    if (detail != nullptr) {
      for (auto& c : detail->cameras) by_id[c.id] = &c;
    }
    while (st.step()) {
      if (!scope.camera_ids.contains(st.text(0))) continue;
      ++t.events;
      const auto review = st.text(2);
      if (review == "confirmed") ++t.confirmed;
      if (review == "false_alarm") ++t.false_alarms;
      if (review == "new") ++t.unreviewed;
      if (detail != nullptr) {
        ++detail->events_by_type[st.text(1)];
        // Events come in time order: the week is worked out once per local day.
        const auto at = st.int64(3);
        if (at < day_start || at >= day_end) {
          const auto day = local_day(at);
          day_start = *local_midnight_us(day);
          day_end = *local_midnight_us(add_days(day, 1));
          week = week_of(day);
        }
        ++weeks[week];
        if (auto it = by_id.find(st.text(0)); it != by_id.end()) ++it->second->events;
      }
    }
    if (detail != nullptr) {
      // Every week of the period, the empty ones too.
      for (std::string w = week_of(detail->from_day); w <= detail->to_day; w = add_days(w, 7))
        detail->events_by_week.emplace_back(w, weeks.contains(w) ? weeks[w] : 0);
    }
  }
  {
    Statement st(db,
                 "SELECT cameras, requesting_unit FROM export_job WHERE node_id = ?1"
                 " AND state = 'done' AND created_us >= ?2 AND created_us < ?3");
    st.bind(1, scope.node_id).bind(2, a).bind(3, b);
    while (st.step()) {
      const auto cameras = nlohmann::json::parse(st.text(0), nullptr, false);
      bool ours = false;
      if (cameras.is_array()) {
        for (const auto& c : cameras)
          ours = ours || (c.is_string() && scope.camera_ids.contains(c));
      }
      if (!ours) continue;
      ++t.extractions;
      if (detail != nullptr) ++detail->extractions_by_unit[st.text(1)];
    }
  }
  {
    Statement st(db,
                 "SELECT commune, category, status, footage_helped FROM case_file"
                 " WHERE node_id = ?1 AND occurred_us >= ?2 AND occurred_us < ?3");
    st.bind(1, scope.node_id).bind(2, a).bind(3, b);
    while (st.step()) {
      if (!scope.commune_codes.contains(st.text(0))) continue;
      ++t.cases;
      if (st.int64(3) != 0) ++t.cases_helped;
      if (detail != nullptr) {
        ++detail->cases_by_category[st.text(1)];
        ++detail->cases_by_status[st.text(2)];
      }
    }
  }
}

// Availability of one camera over [a, b): see docs/design/report.md "Uptime".
// Per local day of the period: bounds are the midnights (days + 1 of them).
struct Days {
  std::vector<std::int64_t> bounds;
  std::vector<std::int64_t> online, monitored;
  // Adds [a, b) to `to`, split at midnights.
  void add(std::int64_t a, std::int64_t b, std::vector<std::int64_t>& to, int sign = 1) const {
    if (b <= a || bounds.size() < 2) return;
    auto it = std::upper_bound(bounds.begin(), bounds.end(), a);
    std::size_t d = it == bounds.begin() ? 0 : static_cast<std::size_t>(it - bounds.begin()) - 1;
    for (; d + 1 < bounds.size() && bounds[d] < b; ++d)
      to[d] += sign * overlap(a, b, bounds[d], bounds[d + 1]);
  }
};

void availability(sqlite3* db, const std::string& node, const std::vector<Run>& runs,
                  std::int64_t a, std::int64_t b, CameraFacts& c, Days* days = nullptr) {
  std::int64_t first_seen = -1;
  {
    Statement st(db,
                 "SELECT MIN(start_us) FROM camera_state_change WHERE node_id = ?1 AND"
                 " camera_id = ?2");
    st.bind(1, node).bind(2, c.id);
    if (st.step() && !st.is_null(0)) first_seen = st.int64(0);
  }
  std::int64_t start = a;
  if (!c.installed.empty()) {
    if (auto m = local_midnight_us(c.installed)) start = std::max(start, *m);
  }
  // A camera the server has never known was not in service here (added later, or never).
  if (first_seen < 0) start = b;
  start = std::max(start, first_seen);
  std::int64_t end = b;
  // Taken out: in service until the start of that day.
  if (!c.removed.empty()) {
    if (auto m = local_midnight_us(c.removed)) end = std::min(end, *m);
  }
  c.state_at_end = "not_monitored";
  if (start >= end) return;
  c.in_service_us = end - start;
  std::int64_t run_time = 0;
  for (const auto& r : runs) {
    run_time += overlap(r.start_us, r.end_us, start, end);
    if (days != nullptr)
      days->add(std::max(r.start_us, start), std::min(r.end_us, end), days->monitored);
  }
  c.not_monitored_us = c.in_service_us - run_time;

  // The run a state row belongs to ends its state at the latest (runs are sorted by start).
  auto run_end = [&](std::int64_t t) -> std::int64_t {
    auto it = std::upper_bound(runs.begin(), runs.end(), t,
                               [](std::int64_t v, const Run& r) { return v < r.start_us; });
    if (it == runs.begin()) return t;
    --it;
    return t < it->end_us ? it->end_us : t;
  };
  Statement st(db,
               "SELECT state, start_us FROM camera_state_change WHERE node_id = ?1 AND"
               " camera_id = ?2 AND stream = 'camera' AND start_us < ?3 ORDER BY start_us, id");
  st.bind(1, node).bind(2, c.id).bind(3, end);
  std::vector<std::pair<std::string, std::int64_t>> rows;
  while (st.step()) rows.emplace_back(st.text(0), st.int64(1));
  for (std::size_t i = 0; i < rows.size(); ++i) {
    const auto s0 = rows[i].second;
    auto s1 = run_end(s0);
    if (i + 1 < rows.size()) s1 = std::min(s1, rows[i + 1].second);
    const auto in = overlap(s0, s1, start, end);
    if (rows[i].first == "online") c.online_us += in;
    if (rows[i].first == "disabled") c.disabled_us += in;
    if (days != nullptr && in > 0) {
      const auto x0 = std::max(s0, start), x1 = std::min(s1, end);
      if (rows[i].first == "online") days->add(x0, x1, days->online);
      if (rows[i].first == "disabled") days->add(x0, x1, days->monitored, -1);
    }
    if (s0 <= end - 1 && end - 1 < s1) c.state_at_end = rows[i].first;
  }
  c.monitored_us = run_time - c.disabled_us;
  if (c.monitored_us > 0)
    c.uptime = static_cast<double>(c.online_us) / static_cast<double>(c.monitored_us);
}

// The server's runs, [start, last heartbeat); the run still going (a heartbeat within three
// periods, not stopped cleanly) lasts until now.
std::expected<std::vector<Run>, std::string> read_runs(sqlite3* db, const Config& config,
                                                       std::int64_t now_us) {
  std::vector<Run> runs;
  Statement st(db,
               "SELECT start_us, last_heartbeat_us, clean_stop FROM server_run WHERE"
               " node_id = ?1 ORDER BY start_us");
  st.bind(1, config.node_id);
  bool last_clean = true;
  while (st.step()) {
    runs.push_back({st.int64(0), std::max(st.int64(0), st.int64(1))});
    last_clean = st.int64(2) != 0;
  }
  if (!st.error().empty()) return std::unexpected("cannot read server runs: " + st.error());
  // A run ends where the next begins at the latest (a crash and a quick restart): time is never
  // counted twice.
  for (std::size_t i = 0; i + 1 < runs.size(); ++i)
    runs[i].end_us = std::min(runs[i].end_us, runs[i + 1].start_us);
  // Only the latest run can be the one still going: a fresh heartbeat, not stopped cleanly.
  const std::int64_t slack_us = 3LL * config.server.heartbeat_s * 1'000'000;
  if (!runs.empty() && !last_clean && now_us >= runs.back().end_us &&
      now_us - runs.back().end_us <= slack_us)
    runs.back().end_us = now_us;
  return runs;
}

}  // namespace

std::expected<Availability, std::string> camera_availability(sqlite3* db, const Config& config,
                                                             const std::string& camera_id,
                                                             std::int64_t from_us,
                                                             std::int64_t to_us,
                                                             std::int64_t now_us) {
  auto runs = read_runs(db, config, now_us);
  if (!runs) return std::unexpected(runs.error());
  CameraFacts c;
  c.id = camera_id;
  for (const auto* list : {&config.cameras, &config.retired}) {
    for (const auto& cam : *list) {
      if (cam.id == camera_id) {
        c.installed = cam.installed;
        c.removed = cam.removed;
      }
    }
  }
  availability(db, config.node_id, *runs, from_us, std::min(to_us, std::max(from_us, now_us)), c);
  return Availability{c.in_service_us, c.monitored_us, c.online_us, c.not_monitored_us, c.uptime};
}

std::expected<ReportData, std::string> build_report(sqlite3* db, const Config& config,
                                                    const ReportRequest& req,
                                                    const Progress& progress) {
  auto say = [&](double f, const std::string& what) {
    if (progress) progress(f, what);
  };
  const auto a = local_midnight_us(req.from_day);
  const auto to = local_midnight_us(req.to_day);
  // Years from 2000: the previous period (up to three years before) stays a real date.
  if (!a || req.from_day < "2000-01-01")
    return std::unexpected("'from' must be a date YYYY-MM-DD from 2000 on (got '" + req.from_day +
                           "')");
  if (!to || req.to_day > "2100-12-31")
    return std::unexpected("'to' must be a date YYYY-MM-DD up to 2100 (got '" + req.to_day + "')");
  if (req.to_day < req.from_day) return std::unexpected("'to' is before 'from'");
  const int days = days_between(req.from_day, req.to_day);
  if (days > 3 * 366) return std::unexpected("a report covers at most three years");
  if (req.communes.empty()) return std::unexpected("name at least one commune");

  ReportData d;
  d.from_day = req.from_day;
  d.to_day = req.to_day;
  d.prepared_by = req.prepared_by;
  d.node_id = config.node_id;
  d.generated_us = req.now_us;
  d.repair_below = req.repair_below;
  d.period_start_us = *a;
  const auto b_full = *local_midnight_us(add_days(req.to_day, 1));
  const auto b = std::min(b_full, std::max(*a, req.now_us));  // the future is not counted
  d.period_end_us = b_full;
  d.province = config.organisation.province_name;

  Scope scope;
  scope.node_id = config.node_id;
  for (const auto& code : req.communes) {
    const auto* commune = config.organisation.commune(code);
    CommuneNames names;
    if (commune != nullptr) {
      names.code = commune->code;
      names.name = commune->name;
      names.model = commune->model;
      scope.commune_codes.insert(commune->code);
      std::string valid_from;
      for (const auto& f : commune->former) {
        scope.commune_codes.insert(f.code);
        // Valid [valid_from, until): shown when that overlaps the period.
        if (f.until > req.from_day && (valid_from.empty() || valid_from <= req.to_day))
          names.former_in_period.push_back(f.name + " (" + f.code + ") đến hết ngày " +
                                           day_vi(add_days(f.until, -1)));
        valid_from = f.until;
      }
    } else {
      // No organisation in the config: the code is what cameras name.
      bool any = false;
      for (const auto* list : {&config.cameras, &config.retired})
        for (const auto& cam : *list) any = any || cam.commune == code;
      if (!any) return std::unexpected("no commune '" + code + "' in the config");
      names.code = names.name = code;
      scope.commune_codes.insert(code);
    }
    if (std::none_of(d.communes.begin(), d.communes.end(),
                     [&](const CommuneNames& n) { return n.code == names.code; }))
      d.communes.push_back(std::move(names));
  }
  // The cameras of the period: those running and those taken out after it began.
  std::vector<const CameraConfig*> period_cameras;
  for (const auto& cam : config.cameras) period_cameras.push_back(&cam);
  for (const auto& cam : config.retired) {
    if (cam.removed > req.from_day) period_cameras.push_back(&cam);
  }
  for (const auto* camp : period_cameras) {
    const auto& cam = *camp;
    const auto* commune = config.organisation.commune(cam.commune);
    const std::string code = commune != nullptr ? commune->code : cam.commune;
    if (!scope.commune_codes.contains(code)) continue;
    CameraFacts c;
    c.id = cam.id;
    c.name = cam.name;
    c.commune = code;
    c.hamlet = cam.hamlet;
    c.hamlet_name = cam.hamlet;
    if (commune != nullptr) {
      for (const auto& h : commune->hamlets) {
        if (h.code == cam.hamlet) c.hamlet_name = h.name;
      }
    }
    c.owner = cam.owner;
    c.brand = std::string(to_string(cam.brand));
    c.model = cam.model;
    c.installed = cam.installed;
    c.removed = cam.removed;
    c.funding = cam.funding;
    d.cameras.push_back(std::move(c));
    scope.camera_ids.insert(cam.id);
  }
  say(0.05, "cameras");

  auto read = read_runs(db, config, req.now_us);
  if (!read) return std::unexpected(read.error());
  const auto& runs = *read;
  {
    std::int64_t covered = 0;
    for (const auto& r : runs) covered += overlap(r.start_us, r.end_us, *a, b);
    d.server_not_monitored_us = (b - *a) - covered;
  }

  // Availability and recording, camera by camera; uptime per local day too.
  Days all_days;
  for (std::string day = req.from_day; day <= req.to_day; day = add_days(day, 1)) {
    d.days.push_back(day);
    all_days.bounds.push_back(*local_midnight_us(day));
  }
  all_days.bounds.push_back(b_full);
  all_days.online.assign(d.days.size(), 0);
  all_days.monitored.assign(d.days.size(), 0);
  const auto share = [](std::int64_t on, std::int64_t of) -> std::optional<double> {
    if (of <= 0) return std::nullopt;
    return static_cast<double>(on) / static_cast<double>(of);
  };
  std::int64_t online = 0, monitored = 0;
  for (std::size_t i = 0; i < d.cameras.size(); ++i) {
    auto& c = d.cameras[i];
    Days mine{all_days.bounds, std::vector<std::int64_t>(d.days.size(), 0),
              std::vector<std::int64_t>(d.days.size(), 0)};
    availability(db, config.node_id, runs, *a, b, c, &mine);
    for (std::size_t k = 0; k < d.days.size(); ++k) {
      c.daily_uptime.push_back(share(mine.online[k], mine.monitored[k]));
      all_days.online[k] += mine.online[k];
      all_days.monitored[k] += mine.monitored[k];
    }
    Statement st(db,
                 "SELECT COALESCE(SUM(recorded_us), 0), COALESCE(SUM(gap_us), 0),"
                 " COALESCE(SUM(gaps), 0) FROM rollup_day WHERE node_id = ?1 AND camera_id = ?2"
                 " AND stream = 'main' AND day >= ?3 AND day <= ?4");
    st.bind(1, config.node_id).bind(2, c.id).bind(3, req.from_day).bind(4, req.to_day);
    if (st.step()) {
      c.recorded_us = st.int64(0);
      c.gap_us = st.int64(1);
      c.gaps = st.int64(2);
    }
    if (c.in_service_us > 0) {
      c.coverage =
          std::min(1.0, static_cast<double>(c.recorded_us) / static_cast<double>(c.in_service_us));
      ++d.totals.cameras;
      ++d.by_hamlet[c.hamlet_name];
      ++d.by_owner[c.owner];
    }
    d.recorded_us += c.recorded_us;
    d.in_service_us += c.in_service_us;
    online += c.online_us;
    monitored += c.monitored_us;
    if (c.state_at_end == "online") ++d.online_at_end;
    if (c.uptime && *c.uptime < req.repair_below) d.repair.push_back(c.id);
    say(0.05 + 0.6 * static_cast<double>(i + 1) / static_cast<double>(d.cameras.size()),
        "uptime " + c.id);
  }
  for (std::size_t k = 0; k < d.days.size(); ++k)
    d.daily_uptime.push_back(share(all_days.online[k], all_days.monitored[k]));
  if (monitored > 0) d.totals.uptime = static_cast<double>(online) / static_cast<double>(monitored);
  if (d.in_service_us > 0)
    d.coverage = static_cast<double>(d.recorded_us) / static_cast<double>(d.in_service_us);

  {
    Statement st(db,
                 "SELECT camera_id, reason, MAX(start_us, ?2), MIN(end_us, ?3) FROM gap"
                 " WHERE node_id = ?1 AND stream = 'main' AND end_us > ?2 AND start_us < ?3");
    st.bind(1, config.node_id).bind(2, *a).bind(3, b_full);
    while (st.step()) {
      if (scope.camera_ids.contains(st.text(0)))
        d.largest_gaps.push_back({st.text(0), st.text(1), st.int64(2), st.int64(3)});
    }
    std::stable_sort(d.largest_gaps.begin(), d.largest_gaps.end(),
                     [](const GapFacts& x, const GapFacts& y) {
                       return x.end_us - x.start_us > y.end_us - y.start_us;
                     });
    if (d.largest_gaps.size() > 10) d.largest_gaps.resize(10);
  }
  say(0.7, "events");

  for (const char* cat : kCategories) d.cases_by_category[cat] = 0;
  count_activity(db, scope, *a, b_full, d.totals, &d);
  say(0.85, "previous period");

  // The previous period of equal length, just before.
  d.previous_to_day = add_days(req.from_day, -1);
  d.previous_from_day = add_days(req.from_day, -days);
  {
    const auto pa = *local_midnight_us(d.previous_from_day);
    std::int64_t p_online = 0, p_monitored = 0;
    // This period's cameras and those of the scope taken out during the previous one.
    std::vector<std::pair<std::string, std::pair<std::string, std::string>>> before;
    for (const auto& cam : d.cameras) before.push_back({cam.id, {cam.installed, cam.removed}});
    for (const auto& cam : config.retired) {
      const auto* commune = config.organisation.commune(cam.commune);
      const std::string code = commune != nullptr ? commune->code : cam.commune;
      if (scope.commune_codes.contains(code) && cam.removed > d.previous_from_day &&
          cam.removed <= req.from_day)
        before.push_back({cam.id, {cam.installed, cam.removed}});
    }
    for (const auto& [id, dates] : before) scope.camera_ids.insert(id);  // their events too
    count_activity(db, scope, pa, *a, d.previous, nullptr);
    for (const auto& [id, dates] : before) {
      CameraFacts c;
      c.id = id;
      c.installed = dates.first;
      c.removed = dates.second;
      availability(db, config.node_id, runs, pa, *a, c);
      p_online += c.online_us;
      p_monitored += c.monitored_us;
      if (c.in_service_us > 0) ++d.previous.cameras;
    }
    if (p_monitored > 0)
      d.previous.uptime = static_cast<double>(p_online) / static_cast<double>(p_monitored);
  }
  say(1.0, "done");
  return d;
}

}  // namespace matthan::report
