// Detection zones and armed hours: where a camera alarms, how big an object must be there, and
// when an alarm is worth waking someone for. Shared by config, analytics and alerts.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace matthan {

using Polygon = std::vector<std::pair<double, double>>;  // relative 0..1 points

// Armed hours in the server's local time: a list of [from, to) minute-of-day ranges that may
// wrap midnight (22:00-05:00). Empty means always armed.
struct Schedule {
  std::vector<std::pair<int, int>> ranges;  // minutes 0..1440
  bool always() const { return ranges.empty(); }
  bool armed_at_minute(int minute_of_day) const;
  std::string to_string() const;  // "22:00-05:00, 12:00-13:00" or "always"
};

// Parses "HH:MM-HH:MM"; false (and `error`) for anything else, including from == to.
bool parse_time_range(const std::string& text, std::pair<int, int>* out, std::string* error);

// Minute of the day in the process's local time zone (TZ, set from server.time_zone).
int local_minute_of_day(std::int64_t utc_us);

struct Zone {
  std::string name;
  Polygon polygon;
  double min_area = -1;  // relative, per blob; < 0: analytics.min_area
  Schedule armed;        // empty: the camera's
  bool has_schedule = false;
};

bool point_in_polygon(const Polygon& polygon, double x, double y);

}  // namespace matthan
