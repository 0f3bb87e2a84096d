#include <gtest/gtest.h>

#include <set>

#include "matthan/core/ids.hpp"
#include "matthan/core/time_format.hpp"

namespace matthan {
namespace {

TEST(Ulid, SortableUniqueAndCarriesTime) {
  const std::int64_t t = 1'767'225'600'123'456;
  std::set<std::string> ids;
  std::string prev;
  for (int i = 0; i < 1000; ++i) {
    const auto id = make_ulid(t + i * 1000);
    ASSERT_EQ(id.size(), 26u);
    EXPECT_EQ(ulid_time_ms(id), (t + i * 1000) / 1000);
    if (!prev.empty()) {
      EXPECT_LT(prev, id);  // a later millisecond sorts later
    }
    prev = id;
    ids.insert(id);
  }
  EXPECT_EQ(ids.size(), 1000u);
  EXPECT_EQ(ulid_time_ms("not-a-ulid"), -1);
}

TEST(Iso8601, RoundTripsWithOffsets) {
  const std::int64_t us = 1'767'225'600'123'456;  // 2026-01-01T00:00:00.123456Z
  EXPECT_EQ(format_iso8601_us(us), "2026-01-01T00:00:00.123456Z");
  EXPECT_EQ(parse_iso8601_us("2026-01-01T00:00:00.123456Z"), us);
  EXPECT_EQ(parse_iso8601_us("2026-01-01T07:00:00.123456+07:00"), us);
  EXPECT_EQ(parse_iso8601_us("2025-12-31T23:00:00-01:00"), us - 123'456);
  EXPECT_FALSE(parse_iso8601_us("2026-01-01T00:00:00").has_value());  // offset required
  EXPECT_FALSE(parse_iso8601_us("2026-13-01T00:00:00Z").has_value());
  EXPECT_FALSE(parse_iso8601_us("yesterday").has_value());
}

}  // namespace
}  // namespace matthan
