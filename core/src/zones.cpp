#include "matthan/core/zones.hpp"

#include <cstdio>
#include <ctime>

namespace matthan {

bool Schedule::armed_at_minute(int minute) const {
  if (ranges.empty()) return true;
  for (const auto& [from, to] : ranges) {
    if (from < to ? (minute >= from && minute < to) : (minute >= from || minute < to)) return true;
  }
  return false;
}

std::string Schedule::to_string() const {
  if (ranges.empty()) return "always";
  std::string out;
  char buf[40];
  for (const auto& [from, to] : ranges) {
    std::snprintf(buf, sizeof buf, "%02d:%02d-%02d:%02d", from / 60, from % 60, to / 60, to % 60);
    out += (out.empty() ? "" : ", ") + std::string(buf);
  }
  return out;
}

bool parse_time_range(const std::string& text, std::pair<int, int>* out, std::string* error) {
  int h1 = 0, m1 = 0, h2 = 0, m2 = 0;
  char tail = 0;
  if (std::sscanf(text.c_str(), "%d:%d-%d:%d%c", &h1, &m1, &h2, &m2, &tail) != 4 || h1 < 0 ||
      h1 > 24 || h2 < 0 || h2 > 24 || m1 < 0 || m1 > 59 || m2 < 0 || m2 > 59 ||
      (h1 == 24 && m1 != 0) || (h2 == 24 && m2 != 0)) {
    *error = "must be HH:MM-HH:MM in local time, e.g. 22:00-05:00 (got '" + text + "')";
    return false;
  }
  out->first = h1 * 60 + m1;
  out->second = h2 * 60 + m2;
  if (out->first == out->second) {
    *error = "an empty range (from equals to): leave armed out to alarm at all hours";
    return false;
  }
  return true;
}

int local_minute_of_day(std::int64_t utc_us) {
  const std::time_t t = static_cast<std::time_t>(utc_us / 1000000);
  std::tm tm{};
  localtime_r(&t, &tm);
  return tm.tm_hour * 60 + tm.tm_min;
}

bool point_in_polygon(const Polygon& poly, double x, double y) {
  bool inside = false;
  for (std::size_t i = 0, j = poly.size() - 1; i < poly.size(); j = i++) {
    const auto [xi, yi] = poly[i];
    const auto [xj, yj] = poly[j];
    if ((yi > y) != (yj > y) && x < (xj - xi) * (y - yi) / (yj - yi) + xi) inside = !inside;
  }
  return inside;
}

}  // namespace matthan
