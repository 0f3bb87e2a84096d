#include "matthan/camsim/scenario.hpp"

#include <gtest/gtest.h>

#include <set>

namespace matthan::camsim {
namespace {

TEST(Scenario, ParsesCamerasAndActors) {
  auto s = parse_scenario(R"(seed: 9
fps: 20
duration_s: 12
cameras:
  - id: gate
    codec: h265
    main: {width: 1920, height: 1080, bitrate_kbps: 4000}
    auth: {user: admin, password: x}
    actors:
      - {kind: person, start_s: 1, duration_s: 4, from: [0.1, 0.9], to: [0.8, 0.8], size: 0.4}
      - {kind: ir_switch, start_s: 6, duration_s: 6}
      - {kind: outage, start_s: 8, duration_s: 2}
)");
  ASSERT_TRUE(s.has_value()) << s.error();
  EXPECT_EQ(s->fps, 20);
  EXPECT_EQ(s->gop_frames, 40);
  ASSERT_EQ(s->cameras.size(), 1u);
  EXPECT_EQ(s->cameras[0].codec, SceneCodec::h265);
  EXPECT_EQ(s->cameras[0].main.width, 1920);
  ASSERT_EQ(s->cameras[0].actors.size(), 3u);
  EXPECT_EQ(s->cameras[0].actors[2].kind, ActorKind::outage);
}

TEST(Scenario, ErrorsNameLineAndProblem) {
  auto s = parse_scenario("cameras:\n  - id: a\n    actors:\n      - {kind: dragon}\n");
  ASSERT_FALSE(s.has_value());
  EXPECT_NE(s.error().find("line 4"), std::string::npos) << s.error();
  EXPECT_NE(s.error().find("dragon"), std::string::npos);
  auto t = parse_scenario("cameras:\n  - id: a\n    colour: red\n");
  ASSERT_FALSE(t.has_value());
  EXPECT_NE(t.error().find("colour"), std::string::npos);
}

TEST(Scenario, DemoCommuneSpansThreeHamletsAndCacheKeysDiffer) {
  const auto s = demo_commune(8, 1, 40);
  ASSERT_EQ(s.cameras.size(), 8u);
  std::set<std::string> hamlets, keys;
  for (const auto& c : s.cameras) {
    hamlets.insert(c.hamlet);
    keys.insert(cache_key(s, c));
  }
  EXPECT_EQ(hamlets.size(), 3u);
  EXPECT_EQ(keys.size(), 8u);
  EXPECT_EQ(cache_key(s, s.cameras[0]), cache_key(demo_commune(8, 1, 40), s.cameras[0]));
  EXPECT_NE(cache_key(s, s.cameras[0]), cache_key(demo_commune(8, 2, 40), s.cameras[0]));
}

}  // namespace
}  // namespace matthan::camsim
