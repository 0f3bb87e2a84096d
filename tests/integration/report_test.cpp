// The operation report against a seeded history whose every figure is worked out by hand below:
// server runs that straddle the period's edges and a day the server was down, a camera added
// mid-period (and switched off for a day), a commune renamed mid-period, rollups, gaps, events,
// reviews, exports and cases inside, outside and on the edges of October 2026
// (Asia/Ho_Chi_Minh, UTC+7). Every format is read back by another program: JSON and CSV here,
// XLSX by Python's openpyxl, PDF by pdftotext and pdftoppm; the HTTP route by the real server.
#include <gtest/gtest.h>
#include <signal.h>

#include <cmath>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "child_process.hpp"

namespace matthan::test {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;

// Local time in Asia/Ho_Chi_Minh (UTC+7, no daylight saving) as µs UTC.
std::int64_t lt(int y, int mo, int d, int h = 0, int mi = 0, int s = 0) {
  std::tm tm{};
  tm.tm_year = y - 1900;
  tm.tm_mon = mo - 1;
  tm.tm_mday = d;
  tm.tm_hour = h;
  tm.tm_min = mi;
  tm.tm_sec = s;
  return (static_cast<std::int64_t>(timegm(&tm)) - 7 * 3600) * 1'000'000;
}
std::string n(std::int64_t v) {
  return std::to_string(v);
}
constexpr double kH = 3600.0;

// ---- The figures, by hand ----
// Period 2026-10-01 .. 2026-10-31: 744 h. Server runs: 09-20 → 10-05 and 10-06 → 11-02, so the
// server was down 24 h inside the period.
// cong (installed 2025): online 10-01→10-03 (48 h), 10-03 12:00→10-05 (36 h),
//   10-06 00:10→10-20 (335 h 50 min), 10-21→10-31 18:00 (258 h); offline at the end.
const double kCongOnlineH = 48 + 36 + (13 * 24 + 23 + 50 / 60.0) + (10 * 24 + 18);
const double kCongMonitoredH = 744 - 24;
// cho (installed 10-10, first seen 10-10 08:00): in service 520 h, all monitored; online
//   10-10 08:01→10-25 (351 h 59 min) and 10-29→11-01 (72 h); disabled 10-28→10-29 (24 h, not
//   counted); unauthorized 10-25→10-28.
const double kChoOnlineH = (14 * 24 + 15 + 59 / 60.0) + 72;
const double kChoMonitoredH = 520 - 24;
const double kCongUptime = kCongOnlineH / kCongMonitoredH;
const double kChoUptime = kChoOnlineH / kChoMonitoredH;
const double kUptime = (kCongOnlineH + kChoOnlineH) / (kCongMonitoredH + kChoMonitoredH);
// Recording (main stream rollups in the period): cong 80000 + 86400 + 50000 s of 744 h,
// cho 43200 s of 520 h.
const double kCongCoverage = (80000.0 + 86400 + 50000) / (744 * kH);
const double kChoCoverage = 43200.0 / (520 * kH);
const double kCoverage = (80000.0 + 86400 + 50000 + 43200) / ((744 + 520) * kH);

std::string pct2(double share) {  // "94.14"
  char out[32];
  std::snprintf(out, sizeof out, "%.2f", share * 100);
  return out;
}
std::string pct_vi(double share) {  // "94,14 %"
  auto s = pct2(share);
  s[s.find('.')] = ',';
  return s + " %";
}

std::string seed_sql() {
  std::string q = "BEGIN;\n";
  const auto run = [&](const char* id, std::int64_t a, std::int64_t b) {
    q += "INSERT INTO server_run (run_id, node_id, start_us, last_heartbeat_us, clean_stop) VALUES"
         " ('" +
         std::string(id) + "', 'rpt', " + n(a) + ", " + n(b) + ", 1);\n";
  };
  run("r1", lt(2026, 9, 20), lt(2026, 10, 5));
  run("r2", lt(2026, 10, 6), lt(2026, 11, 2));
  const auto state = [&](const char* cam, const char* s, std::int64_t at) {
    q += "INSERT INTO camera_state_change (node_id, camera_id, stream, state, start_us) VALUES"
         " ('rpt', '" +
         std::string(cam) + "', 'camera', '" + s + "', " + n(at) + ");\n";
  };
  state("cong", "online", lt(2026, 9, 20));
  state("cong", "offline", lt(2026, 10, 3));
  state("cong", "online", lt(2026, 10, 3, 12));
  state("cong", "connecting", lt(2026, 10, 6));
  state("cong", "online", lt(2026, 10, 6, 0, 10));
  state("cong", "error", lt(2026, 10, 20));
  state("cong", "online", lt(2026, 10, 21));
  state("cong", "offline", lt(2026, 10, 31, 18));
  state("cho", "connecting", lt(2026, 10, 10, 8));
  state("cho", "online", lt(2026, 10, 10, 8, 1));
  state("cho", "unauthorized", lt(2026, 10, 25));
  state("cho", "disabled", lt(2026, 10, 28));
  state("cho", "online", lt(2026, 10, 29));
  state("ben", "online", lt(2026, 9, 20));  // the other commune's camera: never counted
  // A main-stream row of another camera's state does not count as the camera's own.
  q += "INSERT INTO camera_state_change (node_id, camera_id, stream, state, start_us) VALUES"
       " ('rpt', 'cong', 'sub', 'offline', " +
       n(lt(2026, 10, 8)) + ");\n";
  const auto rollup = [&](const char* cam, const char* stream, const char* day, int rec, int gap,
                          int gaps) {
    q += "INSERT INTO rollup_day (node_id, camera_id, stream, day, recorded_us, gap_us, gaps)"
         " VALUES ('rpt', '" +
         std::string(cam) + "', '" + stream + "', '" + day + "', " + n(rec * 1'000'000LL) + ", " +
         n(gap * 1'000'000LL) + ", " + std::to_string(gaps) + ");\n";
  };
  rollup("cong", "main", "2026-09-30", 86400, 0, 0);
  rollup("cong", "main", "2026-10-01", 80000, 6400, 2);
  rollup("cong", "main", "2026-10-15", 86400, 0, 0);
  rollup("cong", "main", "2026-10-31", 50000, 36400, 1);
  rollup("cong", "main", "2026-11-01", 86400, 0, 0);
  rollup("cho", "main", "2026-10-12", 43200, 0, 0);
  rollup("cho", "sub", "2026-10-12", 86400, 0, 0);
  rollup("ben", "main", "2026-10-12", 86400, 0, 0);
  const auto gap = [&](const char* cam, const char* stream, std::int64_t a, std::int64_t b,
                       const char* reason) {
    q += "INSERT INTO gap (node_id, camera_id, stream, start_us, end_us, reason) VALUES ('rpt', '" +
         std::string(cam) + "', '" + stream + "', " + n(a) + ", " + n(b) + ", '" + reason + "');\n";
  };
  gap("cong", "main", lt(2026, 9, 30, 23), lt(2026, 10, 1, 1), "stream_break");
  gap("cong", "main", lt(2026, 10, 5), lt(2026, 10, 6, 0, 10), "server_down");
  gap("cho", "main", lt(2026, 10, 25), lt(2026, 10, 28), "stream_break");
  gap("cho", "sub", lt(2026, 10, 1), lt(2026, 10, 30), "stream_break");
  gap("ben", "main", lt(2026, 10, 1), lt(2026, 10, 30), "stream_break");
  const auto event = [&](const char* id, const char* cam, const char* type, const char* review,
                         std::int64_t at) {
    q += "INSERT INTO event (id, node_id, camera_id, type, start_us, end_us, review_state) VALUES"
         " ('" +
         std::string(id) + "', 'rpt', '" + cam + "', '" + type + "', " + n(at) + ", " +
         n(at + 5'000'000) + ", '" + review + "');\n";
  };
  event("E0", "cong", "motion", "new", lt(2026, 9, 30, 23, 59));  // the previous period
  event("E1", "cong", "person", "confirmed", lt(2026, 10, 1));
  event("E2", "cong", "motion", "false_alarm", lt(2026, 10, 5, 12));
  event("E3", "cong", "person", "new", lt(2026, 10, 14, 9));
  event("E4", "cong", "motion", "confirmed", lt(2026, 10, 31, 23, 59, 59));
  event("E5", "cong", "motion", "new", lt(2026, 11, 1));  // after the period
  event("E6", "cho", "person", "confirmed", lt(2026, 10, 12, 10));
  event("E7", "cho", "tamper", "new", lt(2026, 10, 26, 10));
  event("E8", "ben", "person", "confirmed", lt(2026, 10, 10));  // the other commune
  const auto exp = [&](const char* id, const char* cams, const char* unit, const char* st,
                       std::int64_t at) {
    q += "INSERT INTO export_job (id, node_id, cameras, start_us, end_us, reason,"
         " requesting_unit, created_by, created_us, state) VALUES ('" +
         std::string(id) + "', 'rpt', '" + cams + "', 0, 1, 'r', '" + unit + "', 'cong-an', " +
         n(at) + ", '" + st + "');\n";
  };
  exp("X1", "[\"cong\"]", "Công an xã Minh Phú", "done", lt(2026, 10, 2));
  exp("X2", "[\"cho\",\"cong\"]", "Công an huyện", "done", lt(2026, 10, 20));
  exp("X3", "[\"cong\"]", "Công an huyện", "failed", lt(2026, 10, 21));
  exp("X4", "[\"ben\"]", "Công an huyện", "done", lt(2026, 10, 22));
  exp("X5", "[\"cong\"]", "Công an huyện", "done", lt(2026, 9, 15));
  // A unit a spreadsheet would take for a formula: counted, and written as text in the CSV.
  exp("X6", "[\"cho\"]", "=1+2", "done", lt(2026, 10, 23));
  const auto kase = [&](const char* id, const char* commune, const char* cat, const char* status,
                        int helped, std::int64_t at) {
    q += "INSERT INTO case_file (id, node_id, commune, category, title, status, footage_helped,"
         " occurred_us, created_by, created_us, updated_us) VALUES ('" +
         std::string(id) + "', 'rpt', '" + commune + "', '" + cat + "', 'vụ " + id + "', '" +
         status + "', " + std::to_string(helped) + ", " + n(at) + ", 'cong-an', " + n(at) + ", " +
         n(at) + ");\n";
  };
  kase("C1", "09877", "theft", "clarified", 1, lt(2026, 10, 3));  // under the former code
  kase("C2", "10105", "assault", "open", 0, lt(2026, 10, 20));
  kase("C3", "10105", "theft", "closed", 1, lt(2026, 10, 30));
  kase("C4", "10200", "theft", "closed", 1, lt(2026, 10, 10));
  kase("C5", "10105", "traffic_accident", "closed", 1, lt(2026, 9, 10));
  return q + "COMMIT;\n";
}

class Report : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = temp_dir("matthan-report");
    cfg_ = dir_ + "/matthan.yaml";
    std::ofstream(cfg_)
        << "node_id: rpt\n"
        << "server: {listen: '127.0.0.1:0', data_dir: '" << dir_
        << "/var', time_zone: Asia/Ho_Chi_Minh}\n"
        << "analytics: {zmq_endpoint: '', people: false}\n"
        << "recording: {retention_days: 3650, event_retention_days: 3650}\n"
        << "organisation:\n"
        << "  province: {code: '01', name: 'Hà Nội'}\n"
        << "  communes:\n"
        << "    - code: '10105'\n"
        << "      name: 'Xã Minh Phú'\n"
        << "      model: 'Camera an ninh xã Minh Phú'\n"
        << "      former: [{code: '09877', name: 'Xã Minh Trí', until: '2026-10-16'}]\n"
        << "      hamlets: [{code: dong, name: 'Thôn Đông'}, {code: tay, name: 'Thôn Tây'}]\n"
        << "    - {code: '10200', name: 'Xã Bên Cạnh'}\n"
        << "cameras:\n"
        << "  - {id: cong, name: 'Cổng làng', commune: '10105', hamlet: dong, brand: hikvision,"
           " model: DS-2CD1023, owner: model, installed: '2025-01-01', funding: 'ngân sách xã',"
           " lat: 21.0, lon: 105.8, main_url: 'rtsp://127.0.0.1:9/none'}\n"
        << "  - {id: cho, name: 'Chợ', commune: '10105', hamlet: tay, owner: business,"
           " installed: '2026-10-10', main_url: 'rtsp://127.0.0.1:9/none'}\n"
        << "  - {id: ben, name: 'Bến', commune: '10200', main_url: 'rtsp://127.0.0.1:9/none'}\n";
    std::string out;
    // Any command that opens the database makes it (migrations); then the history goes in.
    ASSERT_EQ(run_command(binary_path("matthan") + " hold --list --config " + cfg_, &out), 0)
        << out;
    std::ofstream(dir_ + "/seed.sql") << seed_sql();
    ASSERT_EQ(run_command("sqlite3 " + dir_ + "/var/matthan.db < " + dir_ + "/seed.sql", &out), 0)
        << out;
  }
  void TearDown() override {
    if (!HasFailure()) std::filesystem::remove_all(dir_);
  }
  // `matthan report` for October; its output file's path.
  std::string report(const std::string& format, std::string* log = nullptr) {
    const std::string path = dir_ + "/report." + format;
    std::string out;
    const int code = run_command(binary_path("matthan") + " report --config " + cfg_ +
                                     " --commune 10105 --from 2026-10-01 --to 2026-10-31"
                                     " --prepared-by 'Nguyễn Văn An' --format " +
                                     format + " --out " + path,
                                 &out);
    EXPECT_EQ(code, 0) << out;
    if (log != nullptr) *log = out;
    return path;
  }
  std::string dir_, cfg_;
};

void expect_figures(const json& r) {
  SCOPED_TRACE(r.dump(1));
  ASSERT_EQ(r["cameras"].size(), 2u);  // ben is in the other commune
  const auto& cong = r["cameras"][0];
  const auto& cho = r["cameras"][1];
  EXPECT_EQ(cong["id"], "cong");
  EXPECT_EQ(cong["in_service_s"], 744 * 3600);
  EXPECT_EQ(cong["not_monitored_s"], 24 * 3600);
  EXPECT_EQ(cong["monitored_s"], static_cast<std::int64_t>(kCongMonitoredH * kH));
  EXPECT_EQ(cong["online_s"], std::llround(kCongOnlineH * kH));
  EXPECT_NEAR(cong["uptime"].get<double>(), kCongUptime, 1e-12);
  EXPECT_EQ(cong["state_at_end"], "offline");
  EXPECT_EQ(cong["recorded_s"], 80000 + 86400 + 50000);
  EXPECT_EQ(cong["gaps"], 3);
  EXPECT_NEAR(cong["coverage"].get<double>(), kCongCoverage, 1e-12);
  EXPECT_EQ(cong["events"], 4);
  EXPECT_EQ(cho["in_service_s"], 520 * 3600);
  EXPECT_EQ(cho["not_monitored_s"], 0);
  EXPECT_EQ(cho["monitored_s"], static_cast<std::int64_t>(kChoMonitoredH * kH));
  EXPECT_EQ(cho["online_s"], std::llround(kChoOnlineH * kH));
  EXPECT_NEAR(cho["uptime"].get<double>(), kChoUptime, 1e-12);
  EXPECT_EQ(cho["state_at_end"], "online");
  EXPECT_NEAR(cho["coverage"].get<double>(), kChoCoverage, 1e-12);
  EXPECT_EQ(cho["events"], 2);
  EXPECT_EQ(cho["hamlet_name"], "Thôn Tây");
  EXPECT_EQ(r["online_at_end"], 1);
  // Inventory by hamlet: one camera in each of the commune's two hamlets.
  EXPECT_EQ(r["by_hamlet"], json({{"Thôn Đông", 1}, {"Thôn Tây", 1}})) << r["by_hamlet"].dump();
  EXPECT_EQ(r["server_not_monitored_s"], 24 * 3600);
  EXPECT_NEAR(r["totals"]["uptime"].get<double>(), kUptime, 1e-12);
  EXPECT_NEAR(r["coverage"].get<double>(), kCoverage, 1e-12);
  EXPECT_EQ(r["totals"]["cameras"], 2);
  EXPECT_EQ(r["totals"]["events"], 6);
  EXPECT_EQ(r["totals"]["confirmed"], 3);
  EXPECT_EQ(r["totals"]["false_alarms"], 1);
  EXPECT_EQ(r["totals"]["unreviewed"], 2);
  EXPECT_EQ(r["events_by_type"], (json{{"motion", 2}, {"person", 3}, {"tamper", 1}}));
  EXPECT_EQ(r["events_by_week"], (json::array({{{"week", "2026-09-28"}, {"events", 1}},
                                               {{"week", "2026-10-05"}, {"events", 1}},
                                               {{"week", "2026-10-12"}, {"events", 2}},
                                               {{"week", "2026-10-19"}, {"events", 0}},
                                               {{"week", "2026-10-26"}, {"events", 2}}})));
  EXPECT_EQ(r["totals"]["extractions"], 3);
  EXPECT_EQ(r["extractions_by_unit"],
            (json{{"=1+2", 1}, {"Công an huyện", 1}, {"Công an xã Minh Phú", 1}}));
  EXPECT_EQ(r["totals"]["cases"], 3);
  EXPECT_EQ(r["totals"]["cases_helped"], 2);
  EXPECT_EQ(r["cases_by_category"]["theft"], 2);
  EXPECT_EQ(r["cases_by_category"]["assault"], 1);
  EXPECT_EQ(r["cases_by_category"]["drugs"], 0);
  // The previous 31 days (08-31 .. 09-30): cong alone, online throughout from 09-20.
  EXPECT_EQ(r["previous_from"], "2026-08-31");
  EXPECT_EQ(r["previous_to"], "2026-09-30");
  EXPECT_EQ(r["previous"]["cameras"], 1);
  EXPECT_NEAR(r["previous"]["uptime"].get<double>(), 1.0, 1e-12);
  EXPECT_EQ(r["previous"]["events"], 1);
  EXPECT_EQ(r["previous"]["extractions"], 1);
  EXPECT_EQ(r["previous"]["cases"], 1);
  EXPECT_EQ(r["previous"]["cases_helped"], 1);
  // Largest main-stream gaps, clipped to the period.
  ASSERT_EQ(r["largest_gaps"].size(), 3u);
  EXPECT_EQ(r["largest_gaps"][0]["camera"], "cho");
  EXPECT_EQ(r["largest_gaps"][1]["end_us"].get<std::int64_t>() -
                r["largest_gaps"][1]["start_us"].get<std::int64_t>(),
            (24 * 3600 + 600) * 1'000'000LL);
  EXPECT_EQ(r["largest_gaps"][2]["start_us"], lt(2026, 10, 1));
  EXPECT_EQ(r["repair"], json::array({"cho"}));
  // Uptime per local day, by hand: cong offline half of 10-03, the server down all of 10-05,
  // connecting the first 10 min of 10-06, offline from 18:00 on 10-31; cho in service from
  // 08:00 on 10-10 (a minute connecting), disabled all of 10-28.
  ASSERT_EQ(r["days"].size(), 31u);
  EXPECT_EQ(r["days"][0]["day"], "2026-10-01");
  EXPECT_EQ(r["days"][30]["day"], "2026-10-31");
  const auto& cong_days = cong["daily_uptime"];
  const auto& cho_days = cho["daily_uptime"];
  ASSERT_EQ(cong_days.size(), 31u);
  EXPECT_NEAR(cong_days[2].get<double>(), 0.5, 1e-12);
  EXPECT_TRUE(cong_days[4].is_null());
  EXPECT_NEAR(cong_days[5].get<double>(), (24 * 60 - 10) / (24.0 * 60), 1e-12);
  EXPECT_NEAR(cong_days[30].get<double>(), 0.75, 1e-12);
  EXPECT_TRUE(cho_days[8].is_null());  // 10-09: not yet in service
  EXPECT_NEAR(cho_days[9].get<double>(), (15 * 60 + 59) / (16.0 * 60), 1e-12);
  EXPECT_TRUE(cho_days[27].is_null());
  EXPECT_NEAR(r["days"][9]["uptime"].get<double>(), (24 * 60 + 15 * 60 + 59) / ((24 + 16) * 60.0),
              1e-12);
  EXPECT_TRUE(r["days"][4]["uptime"].is_null());  // no camera was monitored
  EXPECT_EQ(r["by_owner"], (json{{"business", 1}, {"model", 1}}));
  ASSERT_EQ(r["communes"].size(), 1u);
  EXPECT_EQ(r["communes"][0]["name"], "Xã Minh Phú");
  ASSERT_EQ(r["communes"][0]["former_in_period"].size(), 1u);
  EXPECT_NE(r["communes"][0]["former_in_period"][0].get<std::string>().find("Xã Minh Trí (09877)"),
            std::string::npos);
}

TEST_F(Report, EveryFigureMatchesTheHandWorkedHistoryInEveryFormat) {
  std::string log;
  const auto json_path = report("json", &log);
  EXPECT_NE(log.find("report: 100% done"), std::string::npos) << log;  // progress shown
  expect_figures(json::parse(read_file(json_path), nullptr, false));

  // CSV: the machine-readable rows.
  const auto csv = read_file(report("csv"));
  EXPECT_EQ(csv.substr(0, 3), "\xEF\xBB\xBF");
  for (const auto& row :
       {"totals,uptime_pct,," + pct2(kUptime), "camera,uptime_pct,cong," + pct2(kCongUptime),
        "camera,uptime_pct,cho," + pct2(kChoUptime), "totals,coverage_pct,," + pct2(kCoverage),
        std::string("totals,events,,6"), std::string("totals,extractions,,3"),
        std::string("totals,cases,,3"), std::string("totals,cases_helped,,2"),
        std::string("totals,server_not_monitored_h,,24.00"),
        std::string("events_by_week,2026-10-12,,2"), std::string("cases_by_category,theft,,2"),
        std::string("repair,cho,,"), std::string("uptime_day,2026-10-03,cong,50.00"),
        std::string("uptime_day,2026-10-31,cong,75.00"), std::string("uptime_day,2026-10-05,,"),
        std::string("extractions_by_unit,'=1+2,,1")}) {
    EXPECT_NE(csv.find("\n" + row + "\n"), std::string::npos) << row << "\n" << csv;
  }

  // XLSX, read by openpyxl.
  const auto xlsx = report("xlsx");
  std::ofstream(dir_ + "/read.py")
      << "import json, sys, openpyxl\n"
         "wb = openpyxl.load_workbook(sys.argv[1])\n"
         "cam = wb['Camera']\n"
         "rows = {r[0]: r for r in cam.iter_rows(min_row=2, values_only=True) if r[0]}\n"
         "s = {r[0]: r[1:3] for r in wb['Tổng hợp'].iter_rows(values_only=True) if r[0]}\n"
         "print(json.dumps({'cong': rows['cong'][8], 'cho': rows['cho'][8],\n"
         "  'cong_events': rows['cong'][12], 'uptime': s['Tỷ lệ hoạt động chung'][0],\n"
         "  'prev_uptime': s['Tỷ lệ hoạt động chung'][1], 'events': s['Sự kiện'][0],\n"
         "  'cases': s['Vụ việc'][0], 'helped': s['Vụ việc camera giúp làm rõ'][0],\n"
         "  'extractions': s['Lần trích xuất'][0], 'sheets': wb.sheetnames,\n"
         "  'daily': [r for r in wb['Theo ngày'].iter_rows(min_row=1, values_only=True)]},\n"
         "  default=str))\n";
  std::string out;
  ASSERT_EQ(run_command("/usr/bin/python3 " + dir_ + "/read.py " + xlsx, &out), 0) << out;
  const auto x = json::parse(out, nullptr, false);
  ASSERT_TRUE(x.is_object()) << out;
  EXPECT_NEAR(x["cong"].get<double>(), kCongUptime, 1e-12);
  EXPECT_NEAR(x["cho"].get<double>(), kChoUptime, 1e-12);
  EXPECT_NEAR(x["uptime"].get<double>(), kUptime, 1e-12);
  EXPECT_NEAR(x["prev_uptime"].get<double>(), 1.0, 1e-12);
  EXPECT_EQ(x["cong_events"], 4);
  EXPECT_EQ(x["events"], 6);
  EXPECT_EQ(x["cases"], 3);
  EXPECT_EQ(x["helped"], 2);
  EXPECT_EQ(x["extractions"], 3);
  // Uptime per day: a row per day, the first column all cameras, then cong, cho.
  ASSERT_EQ(x["daily"].size(), 32u);
  EXPECT_EQ(x["daily"][0][2], "cong");
  EXPECT_EQ(x["daily"][3][0], "2026-10-03");
  EXPECT_NEAR(x["daily"][3][2].get<double>(), 0.5, 1e-12);
  EXPECT_TRUE(x["daily"][5][1].is_null());  // 10-05: nothing monitored

  // What the printed forms (PDF and HTML, the same sections) must say, worked out by hand.
  const std::vector<std::string> printed{"Tổng số camera: 2",
                                         "Camera trực tuyến cuối kỳ: 1/2",
                                         "Tỷ lệ hoạt động chung: " + pct_vi(kUptime),
                                         "Thời gian máy chủ ngừng giám sát: 24,00 giờ",
                                         "Tỷ lệ thời gian có ghi hình: " + pct_vi(kCoverage),
                                         "Tổng số sự kiện: 6",
                                         "Số lần trích xuất: 3",
                                         "Tổng số vụ việc: 3; camera giúp làm rõ: 2",
                                         "Kỳ trước: từ ngày 31/08/2026 đến hết ngày 30/09/2026",
                                         "Camera có tỷ lệ hoạt động dưới 90 %: 1",
                                         "720,00",  // cong monitored hours
                                         "677,83",  // cong online hours
                                         "496,00",  // cho monitored hours
                                         "423,98",  // cho online hours
                                         pct_vi(kCongCoverage),
                                         pct_vi(kChoCoverage)};

  // PDF: renders, and its text has the Vietnamese headings and figures exactly.
  const auto pdf = report("pdf");
  ASSERT_EQ(run_command("pdftotext -layout " + pdf + " " + dir_ + "/report.txt", &out), 0) << out;
  const auto text = read_file(dir_ + "/report.txt");
  for (const std::string& want :
       std::vector<std::string>{"BÁO CÁO HOẠT ĐỘNG MÔ HÌNH CAMERA AN NINH",
                                "I. Thông tin chung",
                                "II. Danh mục camera",
                                "III. Tình trạng hoạt động của camera",
                                "IV. Ghi hình",
                                "V. Sự kiện phát hiện",
                                "VI. Kết quả xác minh sự kiện",
                                "VII. Trích xuất dữ liệu",
                                "VIII. Vụ việc",
                                "IX. So sánh với kỳ trước",
                                "X. Camera cần sửa chữa",
                                "Xã Minh Phú",
                                "Xã Minh Trí",
                                "Thôn Đông",
                                "Cố ý gây thương tích",
                                "NGƯỜI LẬP BÁO CÁO",
                                "Nguyễn Văn An",
                                pct_vi(kUptime),
                                pct_vi(kCongUptime),
                                pct_vi(kChoUptime)}) {
    EXPECT_NE(text.find(want), std::string::npos) << want << "\n" << text;
  }
  for (const auto& want : printed) EXPECT_NE(text.find(want), std::string::npos) << "PDF: " << want;
  ASSERT_EQ(run_command("pdftoppm -r 50 -png -f 1 -l 1 " + pdf + " " + dir_ + "/page", &out), 0)
      << out;
  EXPECT_GT(std::filesystem::file_size(dir_ + "/page-1.png"), 5000u);

  // HTML: the same figures as people read them.
  const auto html = read_file(report("html"));
  for (const std::string& want : {std::string("<h2>III. Tình trạng hoạt động của camera</h2>"),
                                  pct_vi(kUptime), std::string("<svg")}) {
    EXPECT_NE(html.find(want), std::string::npos) << want;
  }
  for (const auto& want : printed)
    EXPECT_NE(html.find(want), std::string::npos) << "HTML: " << want;

  // Bad requests get a clear error.
  EXPECT_NE(run_command(binary_path("matthan") + " report --config " + cfg_ +
                            " --commune 99999 --from 2026-10-01 --to 2026-10-31 --format json"
                            " --out " +
                            dir_ + "/x.json",
                        &out),
            0);
  EXPECT_NE(out.find("no commune '99999'"), std::string::npos) << out;
  EXPECT_NE(run_command(binary_path("matthan") + " report --config " + cfg_ +
                            " --commune 10105 --from 2026-10-31 --to 2026-10-01 --format json"
                            " --out " +
                            dir_ + "/x.json",
                        &out),
            0);
  EXPECT_NE(out.find("'to' is before 'from'"), std::string::npos) << out;
}

// A camera taken out (the admin page's "remove", or `removed:` in the config) is not run, but
// the reports still count the days it served, and only those.
TEST_F(Report, ACameraTakenOutCountsForTheDaysItServed) {
  auto text = read_file(cfg_);
  const std::string at = "installed: '2026-10-10',";
  ASSERT_NE(text.find(at), std::string::npos);
  text.replace(text.find(at), at.size(), at + " removed: '2026-10-20',");
  std::ofstream(cfg_) << text;
  std::string out;
  ASSERT_EQ(run_command(binary_path("matthan") + " check-config " + cfg_, &out), 0) << out;
  const auto r = json::parse(read_file(report("json")), nullptr, false);
  ASSERT_EQ(r["cameras"].size(), 2u) << r.dump(1);
  const auto& cong = r["cameras"][0];
  const auto& cho = r["cameras"][1];
  EXPECT_EQ(cong["in_service_s"], 744 * 3600);  // the other camera is untouched
  EXPECT_NEAR(cong["uptime"].get<double>(), kCongUptime, 1e-12);
  // cho: first seen 10-10 08:00, taken out at the start of 10-20: 232 h in service, all
  // monitored, online from 08:01.
  EXPECT_EQ(cho["id"], "cho");
  EXPECT_EQ(cho["in_service_s"], 232 * 3600);
  EXPECT_EQ(cho["monitored_s"], 232 * 3600);
  EXPECT_EQ(cho["online_s"], std::llround((231 + 59 / 60.0) * kH));
  EXPECT_NEAR(cho["uptime"].get<double>(), (231 + 59 / 60.0) / 232, 1e-12);
  EXPECT_EQ(cho["removed"], "2026-10-20");
  EXPECT_EQ(cong["removed"], "");
  // The printed inventory says when it was taken out, so its hours read right.
  const auto pdf = report("pdf");
  ASSERT_EQ(run_command("pdftotext -layout " + pdf + " " + dir_ + "/out.txt", &out), 0) << out;
  // (The PDF's narrow column wraps the cell: its second date is on the next line.)
  const auto text_of_pdf = read_file(dir_ + "/out.txt");
  EXPECT_NE(text_of_pdf.find("10/10/2026 (tháo dỡ"), std::string::npos) << text_of_pdf;
  EXPECT_NE(text_of_pdf.find("20/10/2026)"), std::string::npos) << text_of_pdf;
  EXPECT_NE(read_file(report("html")).find("10/10/2026 (tháo dỡ 20/10/2026)"), std::string::npos);
  // A period after it was taken out does not list it.
  ASSERT_EQ(run_command(binary_path("matthan") + " report --config " + cfg_ +
                            " --commune 10105 --from 2026-10-21 --to 2026-10-31 --format json"
                            " --out " +
                            dir_ + "/late.json",
                        &out),
            0)
      << out;
  const auto late = json::parse(read_file(dir_ + "/late.json"), nullptr, false);
  ASSERT_EQ(late["cameras"].size(), 1u) << late.dump(1);
  EXPECT_EQ(late["cameras"][0]["id"], "cong");
}

// Several communes in one report: each named, every camera of both, the totals over them all.
TEST_F(Report, SeveralCommunesInOneReport) {
  std::string out;
  ASSERT_EQ(run_command(binary_path("matthan") + " report --config " + cfg_ +
                            " --commune 10105,10200 --from 2026-10-01 --to 2026-10-31"
                            " --format json --out " +
                            dir_ + "/two.json",
                        &out),
            0)
      << out;
  const auto r = json::parse(read_file(dir_ + "/two.json"), nullptr, false);
  ASSERT_EQ(r["communes"].size(), 2u) << r.dump(1);
  std::set<std::string> ids;
  for (const auto& c : r["cameras"]) ids.insert(c["id"]);
  EXPECT_EQ(ids, (std::set<std::string>{"cong", "cho", "ben"}));
  // ben: one state row, online on 09-20, in the server's first run: a state lasts until the run
  // it was seen in ends (10-05 00:00), and the second run never saw ben online. So 744 h in
  // service, 720 h monitored (the server's 24 h down), 96 h online (10-01 → 10-05); one more
  // event (E8) and one more extraction (X4).
  for (const auto& c : r["cameras"]) {
    if (c["id"] != "ben") continue;
    EXPECT_EQ(c["in_service_s"], 744 * 3600);
    EXPECT_EQ(c["monitored_s"], 720 * 3600);
    EXPECT_EQ(c["online_s"], 96 * 3600);
  }
  EXPECT_NEAR(r["totals"]["uptime"].get<double>(),
              (kCongOnlineH + kChoOnlineH + 96) / (kCongMonitoredH + kChoMonitoredH + 720), 1e-12);
  EXPECT_EQ(r["totals"]["events"], 7);
  EXPECT_EQ(r["totals"]["extractions"], 4);
}

// The same report through the server, scoped; cases through the API, checked and audited.
TEST_F(Report, ApiServesTheReportWithinScopeAndKeepsCasesHonest) {
  const std::string bin = binary_path("matthan");
  std::string out;
  for (const auto& [user, args] : std::vector<std::pair<std::string, std::string>>{
           {"can-bo", "--role viewer --communes 10105"},
           {"ben", "--role viewer --communes 10200"},
           {"cong-an", "--role reviewer --communes 10105"},
           {"quan-tri", "--role admin"},
           {"xa-cu", "--role viewer --communes 09877"}}) {
    ASSERT_EQ(run_command("printf 'Mat-khau-2026\\n' | " + bin + " user add " + user + " " + args +
                              " --config " + cfg_,
                          &out),
              0)
        << out;
  }
  ChildProcess server({bin, "run", "--config", cfg_}, dir_ + "/server.log");
  const auto listening = server.wait_for_line("LISTENING ", 20s);
  ASSERT_TRUE(listening.has_value()) << read_file(dir_ + "/server.log");
  const int port = std::atoi(listening->substr(listening->rfind(':') + 1).c_str());
  std::map<std::string, std::string> s;
  for (const auto* user : {"can-bo", "ben", "cong-an", "quan-tri", "xa-cu"}) {
    int status = 0;
    s[user] = session_login(port, user, "Mat-khau-2026", &status);
    ASSERT_EQ(status, 200) << user;
  }
  // A scope written with the commune's former code (before the merger) is that commune's.
  {
    std::set<std::string> seen;
    const auto listed = json::parse(http_request(port, "GET", "/api/cameras", s["xa-cu"]).body);
    for (const auto& c : listed["cameras"]) seen.insert(c["id"]);
    EXPECT_EQ(seen, (std::set<std::string>{"cong", "cho"}));
    EXPECT_EQ(http_request(port, "GET", "/api/cameras/ben", s["xa-cu"]).status, 403);
    const auto old_code = json::parse(
        http_request(port, "GET", "/api/events?commune=09877&limit=100", s["can-bo"]).body);
    const auto new_code = json::parse(
        http_request(port, "GET", "/api/events?commune=10105&limit=100", s["can-bo"]).body);
    ASSERT_TRUE(old_code.contains("events")) << old_code.dump();
    EXPECT_EQ(old_code["events"], new_code["events"]) << "a former code filters its commune";
    EXPECT_GE(old_code["events"].size(), 6u);
  }
  const std::string q = "/api/reports/operation?commune=10105&from=2026-10-01&to=2026-10-31";
  const auto r = http_request(port, "GET", q + "&format=json", s["can-bo"]);
  ASSERT_EQ(r.status, 200) << r.body;
  expect_figures(json::parse(r.body, nullptr, false));
  // The old code names the same commune.
  const auto old = http_request(
      port, "GET", "/api/reports/operation?commune=09877&from=2026-10-01&to=2026-10-31",
      s["can-bo"]);
  EXPECT_EQ(old.status, 200) << old.body;
  EXPECT_EQ(http_request(port, "GET", q + "&format=json", s["ben"]).status, 403);
  // The camera page's uptime speaks the report's language: the day the server was not
  // running is not monitored, not the camera's downtime.
  const auto up = http_request(port, "GET", "/api/cameras/cong/uptime", s["can-bo"]);
  ASSERT_EQ(up.status, 200) << up.body;
  const auto u = json::parse(up.body);
  EXPECT_GT(u["h24"]["not_monitored_s"].get<std::int64_t>(), 86'400 - 120) << up.body;
  EXPECT_LT(u["h24"]["monitored_s"].get<std::int64_t>(), 120) << up.body;
  const auto pdf = http_request(port, "GET", q + "&format=pdf", s["can-bo"]);
  EXPECT_EQ(pdf.status, 200);
  EXPECT_EQ(pdf.body.substr(0, 5), "%PDF-");
  EXPECT_EQ(http_request(port, "GET", q + "&format=doc", s["can-bo"]).status, 400);
  // Dates that are not days, bytes that are not UTF-8: a clear 400 (or the report), never 500.
  for (const std::string bad : {"from=9999-12-31&to=9999-12-31", "from=2026-02-30&to=2026-03-01",
                                "from=1000-01-01&to=1000-01-02", "from=%FF&to=2026-10-31"}) {
    const auto got =
        http_request(port, "GET", "/api/reports/operation?commune=10105&" + bad, s["can-bo"]);
    EXPECT_EQ(got.status, 400) << bad << " " << got.body;
    EXPECT_TRUE(json::parse(got.body, nullptr, false).is_object()) << got.body;
  }
  EXPECT_EQ(http_request(port, "GET", q + "&format=json&prepared_by=%FF", s["can-bo"]).status, 200);

  // Cases: bad categories and dangling links are refused with the reason.
  const auto bad = http_request(port, "POST", "/api/cases", s["cong-an"],
                                R"({"commune":"10105","category":"arson","title":"x",)"
                                R"("occurred":"2026-11-01T10:00:00+07:00"})");
  EXPECT_EQ(bad.status, 400);
  EXPECT_NE(bad.body.find("bad_category"), std::string::npos) << bad.body;
  EXPECT_EQ(http_request(port, "POST", "/api/cases", s["cong-an"],
                         R"({"commune":"10105","category":"theft","title":"x"})")
                .status,
            400);  // no time
  const auto made = http_request(port, "POST", "/api/cases", s["cong-an"],
                                 R"({"commune":"09877","category":"theft","title":"Mất xe máy",)"
                                 R"("requesting_unit":"Công an xã","occurred":)"
                                 R"("2026-11-01T10:00:00+07:00"})");
  ASSERT_EQ(made.status, 201) << made.body;
  const auto c = json::parse(made.body);
  EXPECT_EQ(c["commune"], "10105");  // stored under the current code
  const std::string id = c["id"];
  const auto dangling = http_request(port, "POST", "/api/cases/" + id + "/links", s["cong-an"],
                                     R"({"kind":"event","id":"NO-SUCH-EVENT"})");
  EXPECT_EQ(dangling.status, 400);
  EXPECT_NE(dangling.body.find("dangling_link"), std::string::npos) << dangling.body;
  const auto no_export = http_request(port, "POST", "/api/cases/" + id + "/links", s["cong-an"],
                                      R"({"kind":"export","id":"NO-SUCH-EXPORT"})");
  EXPECT_EQ(no_export.status, 400);
  EXPECT_NE(no_export.body.find("dangling_link"), std::string::npos) << no_export.body;
  // The other commune's event is not this reviewer's to link.
  EXPECT_EQ(http_request(port, "POST", "/api/cases/" + id + "/links", s["cong-an"],
                         R"({"kind":"event","id":"E8"})")
                .status,
            403);
  const auto linked = http_request(port, "POST", "/api/cases/" + id + "/links", s["cong-an"],
                                   R"({"kind":"event","id":"E1"})");
  ASSERT_EQ(linked.status, 200) << linked.body;
  EXPECT_EQ(json::parse(linked.body)["events"][0]["id"], "E1");
  const auto patched = http_request(port, "PATCH", "/api/cases/" + id, s["cong-an"],
                                    R"({"status":"clarified","footage_helped":true})");
  ASSERT_EQ(patched.status, 200) << patched.body;
  EXPECT_EQ(json::parse(patched.body)["status"], "clarified");
  EXPECT_EQ(
      http_request(port, "PATCH", "/api/cases/" + id, s["cong-an"], R"({"status":"won"})").status,
      400);
  const auto list =
      http_request(port, "GET", "/api/cases?category=theft&status=clarified", s["cong-an"]);
  ASSERT_EQ(list.status, 200);
  const auto cases = json::parse(list.body)["cases"];
  // C1 (under the old code) and the new one; C4 is the other commune's.
  ASSERT_EQ(cases.size(), 2u) << list.body;
  EXPECT_EQ(cases[0]["id"], id);
  EXPECT_EQ(http_request(port, "GET", "/api/cases", s["can-bo"]).status, 403);  // viewer
  const auto org = http_request(port, "GET", "/api/organisation", s["ben"]);
  ASSERT_EQ(org.status, 200);
  const auto o = json::parse(org.body);
  ASSERT_EQ(o["communes"].size(), 1u);
  EXPECT_EQ(o["communes"][0]["code"], "10200");
  ASSERT_EQ(o["cameras"].size(), 1u);
  EXPECT_EQ(o["cameras"][0]["id"], "ben");

  // The admin edits the organisation and the inventory in the page: checked like the config,
  // kept across a restart, used by the reports at once.
  auto edit = json::parse(http_request(port, "GET", "/api/organisation", s["quan-tri"]).body);
  ASSERT_EQ(edit["communes"].size(), 2u);
  edit["communes"][0]["name"] = "Xã Minh Phú Mới";
  json overlay{{"organisation", {{"province", edit["province"]}, {"communes", edit["communes"]}}},
               {"cameras", {{"cho", {{"model", "IPC-HFW1230"}, {"installed", "2026-10-09"}}}}}};
  EXPECT_EQ(http_request(port, "PUT", "/api/organisation", s["cong-an"], overlay.dump()).status,
            403);
  json orphan = overlay;
  orphan["organisation"]["communes"][0]["hamlets"] =
      json::array({{{"code", "dong"}, {"name", "Đông"}}});
  const auto refused = http_request(port, "PUT", "/api/organisation", s["quan-tri"], orphan.dump());
  EXPECT_EQ(refused.status, 400);
  EXPECT_NE(refused.body.find("no hamlet 'tay'"), std::string::npos) << refused.body;
  const auto saved = http_request(port, "PUT", "/api/organisation", s["quan-tri"], overlay.dump());
  ASSERT_EQ(saved.status, 200) << saved.body;
  const auto renamed = json::parse(http_request(port, "GET", q + "&format=json", s["can-bo"]).body);
  EXPECT_EQ(renamed["communes"][0]["name"], "Xã Minh Phú Mới");
  EXPECT_EQ(renamed["cameras"][1]["model"], "IPC-HFW1230");
  // Installed a day earlier, but first seen 10-10 08:00: the figures do not move.
  EXPECT_EQ(renamed["cameras"][1]["in_service_s"], 520 * 3600);

  EXPECT_EQ(server.signal_and_wait(SIGTERM, 15s), 0);
  // After a restart (and for the CLI) the edits hold.
  ASSERT_EQ(run_command(bin + " check-config " + cfg_, &out), 0) << out;
  EXPECT_NE(out.find("inventory.json"), std::string::npos) << out;
  ASSERT_EQ(run_command(bin + " report --config " + cfg_ +
                            " --commune 10105 --from 2026-10-01 --to 2026-10-31 --format json"
                            " --out " +
                            dir_ + "/after.json",
                        &out),
            0)
      << out;
  EXPECT_EQ(json::parse(read_file(dir_ + "/after.json"))["communes"][0]["name"], "Xã Minh Phú Mới");
  // Every change and every report is in the audit log.
  ASSERT_EQ(run_command("sqlite3 " + dir_ +
                            "/var/matthan.db \"SELECT action FROM audit WHERE action IN ('report',"
                            " 'case_create', 'case_link', 'case_update', 'organisation_update')"
                            " ORDER BY seq\"",
                        &out),
            0);
  EXPECT_EQ(
      out,
      "report\nreport\nreport\nreport\ncase_create\ncase_link\ncase_update\norganisation_update\n"
      "report\nreport\n");
}

}  // namespace
}  // namespace matthan::test
