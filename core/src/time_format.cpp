#include "matthan/core/time_format.hpp"

#include <cstdio>
#include <ctime>

namespace matthan {

std::string format_iso8601_us(std::int64_t us) {
  std::int64_t secs = us / 1'000'000;
  std::int64_t frac = us % 1'000'000;
  if (frac < 0) {
    frac += 1'000'000;
    secs -= 1;
  }
  const std::time_t t = static_cast<std::time_t>(secs);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%06lldZ", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                static_cast<long long>(frac));
  return buf;
}

std::optional<std::int64_t> parse_iso8601_us(std::string_view text) {
  int y = 0, mo = 0, d = 0, h = 0, mi = 0, s = 0;
  std::string str(text);
  int consumed = 0;
  if (std::sscanf(str.c_str(), "%4d-%2d-%2dT%2d:%2d:%2d%n", &y, &mo, &d, &h, &mi, &s, &consumed) !=
          6 ||
      consumed != 19) {
    return std::nullopt;
  }
  std::size_t pos = 19;
  std::int64_t frac_us = 0;
  if (pos < str.size() && str[pos] == '.') {
    ++pos;
    int digits = 0;
    while (pos < str.size() && str[pos] >= '0' && str[pos] <= '9') {
      if (digits < 6) frac_us = frac_us * 10 + (str[pos] - '0');
      ++digits;
      ++pos;
    }
    if (digits == 0) return std::nullopt;
    for (int i = digits; i < 6; ++i) frac_us *= 10;
  }
  std::int64_t offset_s = 0;
  if (pos < str.size() && str[pos] == 'Z') {
    ++pos;
  } else if (pos < str.size() && (str[pos] == '+' || str[pos] == '-')) {
    int oh = 0, om = 0;
    if (str.size() - pos != 6 || std::sscanf(str.c_str() + pos + 1, "%2d:%2d", &oh, &om) != 2) {
      return std::nullopt;
    }
    offset_s = (oh * 3600 + om * 60) * (str[pos] == '+' ? 1 : -1);
    pos += 6;
  } else {
    return std::nullopt;
  }
  if (pos != str.size() || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || s > 60) {
    return std::nullopt;
  }
  std::tm tm{};
  tm.tm_year = y - 1900;
  tm.tm_mon = mo - 1;
  tm.tm_mday = d;
  tm.tm_hour = h;
  tm.tm_min = mi;
  tm.tm_sec = s;
  const std::int64_t secs = timegm(&tm) - offset_s;
  return secs * 1'000'000 + frac_us;
}

}  // namespace matthan
