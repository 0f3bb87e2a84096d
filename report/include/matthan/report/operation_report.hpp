// "Báo cáo hoạt động mô hình camera an ninh": the facts a commune puts in its dossier, built from
// the database (state changes, server runs, daily rollups, gaps, events, exports, cases) and the
// config's organisation, and rendered as HTML, PDF, CSV, XLSX or JSON. Definitions of every
// figure: docs/design/report.md.
#pragma once

#include <cstdint>
#include <expected>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

struct sqlite3;

namespace matthan {
struct Config;
}

namespace matthan::report {

struct ReportRequest {
  std::vector<std::string> communes;  // codes, current or former; each names one commune
  std::string from_day, to_day;       // YYYY-MM-DD local (the process's TZ), both inclusive
  std::string prepared_by;
  double repair_below = 0.9;  // cameras below this uptime are listed for repair
  std::int64_t now_us = 0;    // time after now is not counted (a period still running)
};

struct CameraFacts {
  std::string id, name, commune, hamlet, hamlet_name, owner, brand, model, installed, funding;
  std::string removed;                // YYYY-MM-DD the camera was taken out; "" while it serves
  std::int64_t in_service_us = 0;     // [start, end) of the period the camera existed in
  std::int64_t monitored_us = 0;      // of that, while the server ran and the camera was enabled
  std::int64_t online_us = 0;         // of that, online
  std::int64_t not_monitored_us = 0;  // in service while the server was down
  std::int64_t disabled_us = 0;       // switched off by an admin: not counted either way
  std::optional<double> uptime;       // online / monitored; none when nothing was monitored
  std::string state_at_end;           // online, offline, …, or not_monitored
  std::int64_t recorded_us = 0, gap_us = 0, gaps = 0;  // main stream, from the daily rollups
  std::optional<double> coverage;                      // recorded / in service
  std::int64_t events = 0;
  std::vector<std::optional<double>> daily_uptime;  // one per ReportData::days
};

struct GapFacts {
  std::string camera, reason;
  std::int64_t start_us = 0, end_us = 0;  // clipped to the period
};

// Totals compared with the previous period of equal length.
struct Totals {
  int cameras = 0;  // in service at any time in the period
  std::optional<double> uptime;
  std::int64_t events = 0, confirmed = 0, false_alarms = 0, unreviewed = 0;
  std::int64_t extractions = 0;
  std::int64_t cases = 0, cases_helped = 0;
};

struct CommuneNames {
  std::string code, name, model;
  // Former names whose validity overlaps the period: "name (code) until YYYY-MM-DD".
  std::vector<std::string> former_in_period;
};

struct ReportData {
  // Identification
  std::string province;
  std::vector<CommuneNames> communes;
  std::string from_day, to_day, prepared_by, node_id;
  std::int64_t generated_us = 0, period_start_us = 0, period_end_us = 0;
  double repair_below = 0.9;
  // Inventory
  std::vector<CameraFacts> cameras;      // in config order
  std::map<std::string, int> by_hamlet;  // hamlet name → cameras
  std::map<std::string, int> by_owner;   // owner type → cameras
  int online_at_end = 0;
  std::int64_t server_not_monitored_us = 0;  // the period's time with the server down
  std::vector<GapFacts> largest_gaps;        // main stream, longest first, at most 10
  std::map<std::string, std::int64_t> events_by_type;
  std::vector<std::pair<std::string, std::int64_t>> events_by_week;  // Monday YYYY-MM-DD → n
  std::map<std::string, std::int64_t> extractions_by_unit;
  std::map<std::string, std::int64_t> cases_by_category;  // every category, zeros included
  std::map<std::string, std::int64_t> cases_by_status;
  std::int64_t recorded_us = 0, in_service_us = 0;
  std::optional<double> coverage;
  Totals totals, previous;
  std::string previous_from_day, previous_to_day;
  std::vector<std::string> repair;                  // camera ids below repair_below
  std::vector<std::string> days;                    // the period's local days, YYYY-MM-DD
  std::vector<std::optional<double>> daily_uptime;  // all cameras, per day
};

// One camera's availability over [from, to) by the report's definitions (docs/design/report.md):
// server downtime is not monitored, not the camera's fault.
struct Availability {
  std::int64_t in_service_us = 0, monitored_us = 0, online_us = 0, not_monitored_us = 0;
  std::optional<double> uptime;
};
std::expected<Availability, std::string> camera_availability(sqlite3* db, const Config& config,
                                                             const std::string& camera_id,
                                                             std::int64_t from_us,
                                                             std::int64_t to_us,
                                                             std::int64_t now_us);

// Progress: fraction 0..1 and what is being done.
using Progress = std::function<void(double, const std::string&)>;

std::expected<ReportData, std::string> build_report(sqlite3* db, const Config& config,
                                                    const ReportRequest& request,
                                                    const Progress& progress = {});

std::string render_html(const ReportData& data);
std::string render_csv(const ReportData& data);
std::string render_json(const ReportData& data);
std::expected<void, std::string> write_pdf(const ReportData& data, const std::string& path);
std::expected<void, std::string> write_xlsx(const ReportData& data, const std::string& path);

// The printable extraction record of an export ("biên bản trích xuất dữ liệu camera"): what was
// asked, by whom, the files with their SHA-256, the manifest's hash, the node key's fingerprint,
// how to check them, and signature lines. `place` is the commune's name.
std::expected<std::string, std::string> render_record_html(const std::string& manifest_json,
                                                           const std::string& manifest_sha256,
                                                           const std::string& place);
std::expected<void, std::string> write_record_pdf(const std::string& manifest_json,
                                                  const std::string& manifest_sha256,
                                                  const std::string& place,
                                                  const std::string& path);

// Vietnamese labels shared by every format.
std::string owner_label(const std::string& owner);
std::string category_label(const std::string& category);
std::string event_type_label(const std::string& type);
std::string state_label(const std::string& state);
inline constexpr const char* kCategories[] = {
    "theft", "assault", "public_disorder", "traffic_accident", "environment", "drugs", "other"};

}  // namespace matthan::report
