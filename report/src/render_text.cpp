// HTML (print-ready, charts as inline SVG), CSV (UTF-8 with BOM, one block per table) and JSON.
#include <nlohmann/json.hpp>

#include <algorithm>
#include <regex>

#include "format.hpp"

namespace matthan::report {
namespace {

std::string esc(const std::string& s) {
  std::string out;
  for (const char ch : s) {
    switch (ch) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      default:
        out += ch;
    }
  }
  return out;
}

std::string csv_cell(std::string s) {
  // A text a spreadsheet would run as a formula (=HYPERLINK(...) in a requesting unit) is
  // written as text; numbers like -5 or +1 stay numbers.
  static const std::regex number("^[+-]?[0-9]+([.,][0-9]+)?( %)?$");
  if (!s.empty() && std::string("=+-@\t\r").find(s[0]) != std::string::npos &&
      !std::regex_match(s, number))
    s = std::string(1, '\'') + s;
  if (s.find_first_of(",\"\n\r") == std::string::npos) return s;
  std::string out = "\"";
  for (const char ch : s) out += ch == '"' ? std::string("\"\"") : std::string(1, ch);
  return out + "\"";
}

// Horizontal bars, one per row: label, value 0..max, text at the bar's end.
std::string svg_bars(const std::vector<std::tuple<std::string, double, std::string>>& bars,
                     double max, double mark) {
  const int row = 22, left = 180, width = 420;
  const int height = row * static_cast<int>(bars.size()) + 10;
  std::string s = "<svg class=\"chart\" xmlns=\"http://www.w3.org/2000/svg\" width=\"" +
                  std::to_string(left + width + 90) + "\" height=\"" + std::to_string(height) +
                  "\" role=\"img\">";
  for (std::size_t i = 0; i < bars.size(); ++i) {
    const auto& [label, value, text] = bars[i];
    const int y = 5 + static_cast<int>(i) * row;
    const int w = max > 0 ? static_cast<int>(width * std::clamp(value / max, 0.0, 1.0)) : 0;
    s += "<text x=\"" + std::to_string(left - 6) + "\" y=\"" + std::to_string(y + 14) +
         "\" text-anchor=\"end\">" + esc(label) + "</text>";
    s += "<rect x=\"" + std::to_string(left) + "\" y=\"" + std::to_string(y + 2) + "\" width=\"" +
         std::to_string(w) + "\" height=\"" + std::to_string(row - 6) + "\" class=\"" +
         (mark > 0 && value < mark ? "bad" : "ok") + "\"/>";
    s += "<text x=\"" + std::to_string(left + w + 4) + "\" y=\"" + std::to_string(y + 14) + "\">" +
         esc(text) + "</text>";
  }
  return s + "</svg>";
}

}  // namespace

std::string render_html(const ReportData& d) {
  std::string h =
      R"(<!doctype html>
<html lang="vi"><head><meta charset="utf-8">
<title>)" +
      esc(kTitle) + R"(</title>
<style>
@page { size: A4; margin: 18mm 15mm; }
body { font-family: "DejaVu Sans", "Noto Sans", Arial, sans-serif; font-size: 11pt; color: #111; max-width: 190mm; margin: auto; }
h1 { text-align: center; font-size: 15pt; margin: 0.4em 0 0.8em; }
h2 { font-size: 12.5pt; margin: 1.2em 0 0.4em; break-after: avoid; }
h3 { font-size: 11pt; margin: 0.8em 0 0.3em; }
table { border-collapse: collapse; width: 100%; margin-bottom: 0.6em; break-inside: auto; }
th, td { border: 1px solid #999; padding: 2px 5px; text-align: left; font-size: 10pt; }
th { background: #eee; }
td.num { text-align: right; }
.chart text { font-size: 10px; font-family: inherit; }
.chart .ok { fill: #2e7d32; } .chart .bad { fill: #c62828; }
.sign { display: flex; justify-content: space-between; margin-top: 2em; text-align: center; }
.sign div { width: 45%; } .sign p { margin: 0.2em; }
.head { display: flex; justify-content: space-between; text-align: center; font-size: 10pt; }
@media print { .noprint { display: none; } }
</style></head><body>
<div class="head"><div>)" +
      esc(d.communes.empty() ? "" : "UBND " + d.communes.front().name) +
      R"(</div><div><b>CỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM</b><br>Độc lập - Tự do - Hạnh phúc</div></div>
<h1>)" +
      esc(kTitle) + "</h1>\n";
  for (const auto& s : sections(d)) {
    h += "<h2>" + esc(s.heading) + "</h2>\n";
    for (const auto& line : s.lines) h += "<p>" + esc(line) + "</p>\n";
    if (s.chart == Section::Chart::uptime) {
      std::vector<std::tuple<std::string, double, std::string>> bars;
      for (const auto& c : d.cameras)
        bars.emplace_back(c.name, c.uptime.value_or(0.0), percent_vi(c.uptime));
      h += svg_bars(bars, 1.0, d.repair_below) + "\n";
    }
    if (s.chart == Section::Chart::weeks) {
      std::vector<std::tuple<std::string, double, std::string>> bars;
      double max = 0;
      for (const auto& [w, k] : d.events_by_week) max = std::max(max, static_cast<double>(k));
      for (const auto& [w, k] : d.events_by_week)
        bars.emplace_back("Tuần " + day_vi(w), static_cast<double>(k), std::to_string(k));
      h += svg_bars(bars, max, 0) + "\n";
    }
    for (const auto& t : s.tables) {
      h += "<h3>" + esc(t.title) + "</h3>\n<table><thead><tr>";
      for (const auto& c : t.header) h += "<th>" + esc(c) + "</th>";
      h += "</tr></thead><tbody>\n";
      for (const auto& r : t.rows) {
        h += "<tr>";
        for (std::size_t i = 0; i < r.size(); ++i)
          h += std::string(i > 0 && !r[i].empty() &&
                                   (std::isdigit(static_cast<unsigned char>(r[i][0])) ||
                                    r[i][0] == '+' || r[i][0] == '-')
                               ? "<td class=\"num\">"
                               : "<td>") +
               esc(r[i]) + "</td>";
        h += "</tr>\n";
      }
      h += "</tbody></table>\n";
    }
  }
  h +=
      R"(<div class="sign"><div><p><b>NGƯỜI LẬP BÁO CÁO</b></p><p><i>(Ký, ghi rõ họ tên)</i></p><br><br><br><p>)" +
      esc(d.prepared_by) +
      R"(</p></div><div><p><b>TM. ỦY BAN NHÂN DÂN XÃ</b></p><p><i>(Ký, đóng dấu)</i></p></div></div>
</body></html>
)";
  return h;
}

std::string render_csv(const ReportData& d) {
  std::string out = "\xEF\xBB\xBF";  // BOM: Excel then reads UTF-8 Vietnamese
  out += csv_cell(kTitle) + "\n";
  const auto line = [&](const std::vector<std::string>& cells) {
    for (std::size_t i = 0; i < cells.size(); ++i) {
      if (i > 0) out += ',';
      out += csv_cell(cells[i]);
    }
    out += "\n";
  };
  // Machine-readable first: one fact per row, plain numbers.
  out += "\n";
  line({"section", "key", "item", "value"});
  line({"period", "from", "", d.from_day});
  line({"period", "to", "", d.to_day});
  line({"totals", "cameras", "", std::to_string(d.totals.cameras)});
  line({"totals", "online_at_end", "", std::to_string(d.online_at_end)});
  line({"totals", "uptime_pct", "", percent_plain(d.totals.uptime)});
  line({"totals", "coverage_pct", "", percent_plain(d.coverage)});
  line({"totals", "server_not_monitored_h", "", hours_plain(d.server_not_monitored_us)});
  line({"totals", "events", "", std::to_string(d.totals.events)});
  line({"totals", "confirmed", "", std::to_string(d.totals.confirmed)});
  line({"totals", "false_alarms", "", std::to_string(d.totals.false_alarms)});
  line({"totals", "unreviewed", "", std::to_string(d.totals.unreviewed)});
  line({"totals", "extractions", "", std::to_string(d.totals.extractions)});
  line({"totals", "cases", "", std::to_string(d.totals.cases)});
  line({"totals", "cases_helped", "", std::to_string(d.totals.cases_helped)});
  line({"previous", "cameras", "", std::to_string(d.previous.cameras)});
  line({"previous", "uptime_pct", "", percent_plain(d.previous.uptime)});
  line({"previous", "events", "", std::to_string(d.previous.events)});
  line({"previous", "extractions", "", std::to_string(d.previous.extractions)});
  line({"previous", "cases", "", std::to_string(d.previous.cases)});
  for (const auto& c : d.cameras) {
    line({"camera", "uptime_pct", c.id, percent_plain(c.uptime)});
    line({"camera", "online_h", c.id, hours_plain(c.online_us)});
    line({"camera", "monitored_h", c.id, hours_plain(c.monitored_us)});
    line({"camera", "not_monitored_h", c.id, hours_plain(c.not_monitored_us)});
    line({"camera", "recorded_h", c.id, hours_plain(c.recorded_us)});
    line({"camera", "coverage_pct", c.id, percent_plain(c.coverage)});
    line({"camera", "events", c.id, std::to_string(c.events)});
    line({"camera", "state_at_end", c.id, c.state_at_end});
  }
  for (const auto& [type, k] : d.events_by_type)
    line({"events_by_type", type, "", std::to_string(k)});
  for (const auto& [w, k] : d.events_by_week) line({"events_by_week", w, "", std::to_string(k)});
  for (const auto& [u, k] : d.extractions_by_unit)
    line({"extractions_by_unit", u, "", std::to_string(k)});
  for (const auto& [c, k] : d.cases_by_category)
    line({"cases_by_category", c, "", std::to_string(k)});
  for (const auto& id : d.repair) line({"repair", id, "", ""});
  for (std::size_t k = 0; k < d.days.size(); ++k) {
    line({"uptime_day", d.days[k], "", percent_plain(d.daily_uptime[k])});
    for (const auto& c : d.cameras)
      line({"uptime_day", d.days[k], c.id, percent_plain(c.daily_uptime[k])});
  }
  // Then the report's tables as people read them.
  for (const auto& s : sections(d)) {
    out += "\n";
    line({s.heading});
    for (const auto& l : s.lines) line({l});
    for (const auto& t : s.tables) {
      line({t.title});
      line(t.header);
      for (const auto& r : t.rows) line(r);
    }
  }
  return out;
}

std::string render_json(const ReportData& d) {
  using nlohmann::json;
  const auto opt = [](std::optional<double> v) { return v ? json(*v) : json(); };
  json cams = json::array();
  for (const auto& c : d.cameras) {
    cams.push_back({{"id", c.id},
                    {"name", c.name},
                    {"commune", c.commune},
                    {"hamlet", c.hamlet},
                    {"hamlet_name", c.hamlet_name},
                    {"owner", c.owner},
                    {"brand", c.brand},
                    {"model", c.model},
                    {"installed", c.installed},
                    {"removed", c.removed},
                    {"funding", c.funding},
                    {"in_service_s", c.in_service_us / 1'000'000},
                    {"monitored_s", c.monitored_us / 1'000'000},
                    {"online_s", c.online_us / 1'000'000},
                    {"not_monitored_s", c.not_monitored_us / 1'000'000},
                    {"uptime", opt(c.uptime)},
                    {"state_at_end", c.state_at_end},
                    {"recorded_s", c.recorded_us / 1'000'000},
                    {"gap_s", c.gap_us / 1'000'000},
                    {"gaps", c.gaps},
                    {"coverage", opt(c.coverage)},
                    {"events", c.events}});
    json daily = json::array();
    for (const auto& u : c.daily_uptime) daily.push_back(opt(u));
    cams.back()["daily_uptime"] = std::move(daily);
  }
  const auto totals = [&](const Totals& t) {
    return json{{"cameras", t.cameras},
                {"uptime", opt(t.uptime)},
                {"events", t.events},
                {"confirmed", t.confirmed},
                {"false_alarms", t.false_alarms},
                {"unreviewed", t.unreviewed},
                {"extractions", t.extractions},
                {"cases", t.cases},
                {"cases_helped", t.cases_helped}};
  };
  json communes = json::array();
  for (const auto& c : d.communes)
    communes.push_back({{"code", c.code},
                        {"name", c.name},
                        {"model", c.model},
                        {"former_in_period", c.former_in_period}});
  json gaps = json::array();
  for (const auto& g : d.largest_gaps)
    gaps.push_back({{"camera", g.camera},
                    {"reason", g.reason},
                    {"start_us", g.start_us},
                    {"end_us", g.end_us}});
  json days = json::array();
  for (std::size_t k = 0; k < d.days.size(); ++k)
    days.push_back({{"day", d.days[k]}, {"uptime", opt(d.daily_uptime[k])}});
  json weeks = json::array();
  for (const auto& [w, k] : d.events_by_week) weeks.push_back({{"week", w}, {"events", k}});
  return json{{"title", kTitle},
              {"province", d.province},
              {"communes", communes},
              {"from", d.from_day},
              {"to", d.to_day},
              {"prepared_by", d.prepared_by},
              {"node_id", d.node_id},
              {"generated_us", d.generated_us},
              {"cameras", cams},
              {"by_hamlet", d.by_hamlet},
              {"by_owner", d.by_owner},
              {"online_at_end", d.online_at_end},
              {"server_not_monitored_s", d.server_not_monitored_us / 1'000'000},
              {"coverage", opt(d.coverage)},
              {"largest_gaps", gaps},
              {"events_by_type", d.events_by_type},
              {"events_by_week", weeks},
              {"days", days},
              {"extractions_by_unit", d.extractions_by_unit},
              {"cases_by_category", d.cases_by_category},
              {"cases_by_status", d.cases_by_status},
              {"totals", totals(d.totals)},
              {"previous", totals(d.previous)},
              {"previous_from", d.previous_from_day},
              {"previous_to", d.previous_to_day},
              {"repair_below", d.repair_below},
              {"repair", d.repair}}
      .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);  // a bad byte is no 500
}

std::expected<std::string, std::string> render_record_html(const std::string& manifest_json,
                                                           const std::string& manifest_sha256,
                                                           const std::string& place) {
  auto doc = record_doc(manifest_json, manifest_sha256, place);
  if (!doc) return std::unexpected(doc.error());
  std::string h = R"(<!doctype html>
<html lang="vi"><head><meta charset="utf-8"><title>)" +
                  esc(kRecordTitle) + R"(</title>
<style>
@page { size: A4; margin: 18mm 15mm; }
body { font-family: "DejaVu Sans", "Noto Sans", Arial, sans-serif; font-size: 11pt; max-width: 190mm; margin: auto; }
h1 { text-align: center; font-size: 14pt; } h2 { font-size: 12pt; margin: 1em 0 0.3em; }
.head { text-align: center; } table { border-collapse: collapse; width: 100%; }
th, td { border: 1px solid #999; padding: 2px 4px; font-size: 9pt; text-align: left; word-break: break-all; }
th { background: #eee; } .sign { display: flex; justify-content: space-between; margin-top: 2em; text-align: center; }
.sign div { width: 32%; min-height: 8em; } code { font-size: 9pt; word-break: break-all; }
</style></head><body>
<div class="head"><b>CỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM</b><br>Độc lập - Tự do - Hạnh phúc</div>
<h1>)" + esc(kRecordTitle) +
                  "</h1>\n";
  for (const auto& [heading, lines] : doc->parts) {
    if (!heading.empty()) h += "<h2>" + esc(heading) + "</h2>\n";
    for (const auto& l : lines) h += "<p>" + esc(l) + "</p>\n";
  }
  h += "<h2>III. " + esc(doc->files.title) + "</h2>\n<table><thead><tr>";
  for (const auto& c : doc->files.header) h += "<th>" + esc(c) + "</th>";
  h += "</tr></thead><tbody>\n";
  for (const auto& r : doc->files.rows) {
    h += "<tr>";
    for (const auto& cell : r) h += "<td>" + esc(cell) + "</td>";
    h += "</tr>\n";
  }
  h += "</tbody></table>\n<h2>IV. Tính toàn vẹn của dữ liệu</h2>\n";
  for (const auto& l : doc->integrity) h += "<p>" + esc(l) + "</p>\n";
  h += "<p>Biên bản được lập thành 02 bản, mỗi bên giữ 01 bản.</p>\n<div class=\"sign\">";
  for (const auto& s : doc->signers)
    h += "<div><b>" + esc(s) + "</b><br><i>(Ký, ghi rõ họ tên)</i></div>";
  h += "</div>\n</body></html>\n";
  return h;
}

}  // namespace matthan::report
