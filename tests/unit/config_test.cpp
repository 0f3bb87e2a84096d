#include "matthan/core/config.hpp"

#include <gtest/gtest.h>

namespace matthan {
namespace {

std::optional<std::string> fake_env(const std::string& name) {
  if (name == "CAM_PASS") return std::string("p@ss:w/rd");
  return std::nullopt;
}

std::vector<ConfigError> errors_of(const std::string& yaml) {
  auto result = load_config_text(yaml, "test.yaml", fake_env);
  if (result) return {};
  return result.error();
}

bool has_error(const std::vector<ConfigError>& errors, const std::string& key, int line,
               const std::string& fragment) {
  for (const auto& e : errors) {
    if (e.key == key && (line == 0 || e.line == line) &&
        e.message.find(fragment) != std::string::npos) {
      return true;
    }
  }
  return false;
}

TEST(Config, ValidConfigWithPresetAndExplicitUrls) {
  const auto config = load_config_text(R"(node_id: xa-an-binh-1
server:
  listen: 127.0.0.1:9090
  data_dir: /tmp/m
defaults:
  analysis_fps: 4
  rtsp_client: libavformat
cameras:
  - id: cong-ap-1
    name: "Cổng ấp 1"
    commune: xa-an-binh
    hamlet: ap-1
    brand: hikvision
    host: 192.168.1.64
    username: admin
    password: ${CAM_PASS}
    channel: 2
  - id: cho
    main_url: rtsp://10.0.0.5/live/main
    sub_url: rtsp://10.0.0.5/live/sub
    transport: udp
    rtsp_client: builtin
    analysis_fps: 2
    enabled: false
)",
                                       "test.yaml", fake_env);
  ASSERT_TRUE(config.has_value()) << config.error().front().to_string();
  EXPECT_EQ(config->node_id, "xa-an-binh-1");
  EXPECT_EQ(config->server.listen_port, 9090);
  ASSERT_EQ(config->cameras.size(), 2u);
  const auto& c = config->cameras[0];
  EXPECT_EQ(c.password, "p@ss:w/rd");
  EXPECT_EQ(c.main_url, "rtsp://admin:p%40ss%3Aw%2Frd@192.168.1.64/Streaming/Channels/201");
  EXPECT_EQ(c.sub_url, "rtsp://admin:p%40ss%3Aw%2Frd@192.168.1.64/Streaming/Channels/202");
  EXPECT_DOUBLE_EQ(c.analysis_fps, 4.0);
  EXPECT_EQ(config->cameras[1].transport, Transport::udp);
  EXPECT_FALSE(c.builtin_rtsp);  // from the defaults
  EXPECT_TRUE(config->cameras[1].builtin_rtsp);
  EXPECT_FALSE(config->cameras[1].enabled);
  EXPECT_DOUBLE_EQ(config->cameras[1].analysis_fps, 2.0);
}

TEST(Config, UnknownKeysAreErrorsWithLine) {
  const auto errors = errors_of("node_id: a\nserver:\n  listen: 127.0.0.1:80\n  colour: red\n");
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_TRUE(has_error(errors, "server.colour", 4, "unknown key"));
  EXPECT_EQ(errors[0].file, "test.yaml");
  EXPECT_NE(errors[0].to_string().find("test.yaml:4: server.colour"), std::string::npos);
}

TEST(Config, EveryErrorIsReportedAtOnce) {
  const auto errors = errors_of(R"(cameras:
  - id: Bad Id
    brand: sony
  - id: ok1
    brand: dahua
  - id: ok2
    main_url: http://x/y
    analysis_fps: 500
  - id: ok2
    main_url: rtsp://x/y
    password: ${MISSING_VAR}
)");
  EXPECT_TRUE(has_error(errors, "cameras[0].id", 2, "must be"));
  EXPECT_TRUE(has_error(errors, "cameras[0].brand", 3, "unknown brand 'sony'"));
  EXPECT_TRUE(has_error(errors, "cameras[1].host", 0, "is required for brand dahua"));
  EXPECT_TRUE(has_error(errors, "cameras[2].main_url", 7, "rtsp://"));
  EXPECT_TRUE(has_error(errors, "cameras[2].analysis_fps", 8, "between"));
  EXPECT_TRUE(has_error(errors, "cameras[3].id", 9, "duplicate camera id 'ok2'"));
  EXPECT_TRUE(has_error(errors, "cameras[3].password", 11, "MISSING_VAR is not set"));
}

TEST(Config, RtspClientMustBeBuiltinOrLibavformat) {
  const auto errors = errors_of(
      "defaults:\n  rtsp_client: gstreamer\ncameras:\n  - id: a\n    main_url: rtsp://h/x\n"
      "    rtsp_client: ffmpeg\n");
  EXPECT_TRUE(has_error(errors, "defaults.rtsp_client", 2, "must be builtin or libavformat"));
  EXPECT_TRUE(has_error(errors, "cameras[0].rtsp_client", 6, "must be builtin or libavformat"));
}

TEST(Config, SyntaxErrorNamesTheLine) {
  const auto errors = errors_of("node_id: a\ncameras:\n  - id: [unclosed\n");
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_EQ(errors[0].key, "(syntax)");
  EXPECT_GE(errors[0].line, 3);
}

TEST(Config, BadListenAndGenericWithoutUrl) {
  const auto errors = errors_of("server:\n  listen: nowhere\ncameras:\n  - id: x\n");
  EXPECT_TRUE(has_error(errors, "server.listen", 2, "ADDRESS:PORT"));
  EXPECT_TRUE(has_error(errors, "cameras[0]", 4, "needs main_url"));
}

TEST(Config, MaskPolygonsAreCheckedAndAnalyticsSettingsRead) {
  const auto ok = load_config_text(
      "analytics: {zmq_endpoint: '', min_frames: 4, gap_s: 1.5}\n"
      "cameras:\n  - {id: a, main_url: 'rtsp://h/x', masks: [[[0, 0], [0.5, 0], [0.5, 0.1]]]}\n",
      "test.yaml", fake_env);
  ASSERT_TRUE(ok.has_value()) << ok.error().front().to_string();
  EXPECT_EQ(ok->analytics.zmq_endpoint, "");
  EXPECT_EQ(ok->analytics.min_frames, 4);
  ASSERT_EQ(ok->cameras[0].masks.size(), 1u);
  EXPECT_EQ(ok->cameras[0].masks[0][1], std::make_pair(0.5, 0.0));
  const auto errors = errors_of(
      "analytics: {zmq_endpoint: 'http://x'}\n"
      "cameras:\n  - id: a\n    main_url: rtsp://h/x\n    masks:\n      - [[0, 0], [1, 0]]\n"
      "      - [[0, 0], [1.5, 0], [1, 1]]\n");
  EXPECT_TRUE(has_error(errors, "analytics.zmq_endpoint", 1, "tcp://"));
  EXPECT_TRUE(has_error(errors, "cameras[0].masks[0]", 6, "at least 3"));
  EXPECT_TRUE(has_error(errors, "cameras[0].masks[1]", 7, "between 0 and 1"));
}

TEST(Config, MissingFileIsAnError) {
  auto result = load_config_file("/nonexistent/matthan.yaml");
  ASSERT_FALSE(result.has_value());
  EXPECT_NE(result.error()[0].message.find("cannot be read"), std::string::npos);
}

}  // namespace
}  // namespace matthan

namespace matthan {
namespace {

const char* kZoneCamera = R"(cameras:
  - id: c1
    main_url: rtsp://10.0.0.5/main
    armed: "22:00-05:00"
    zones:
      - name: cong
        polygon: [[0.5, 0.4], [1, 0.4], [1, 1], [0.5, 1]]
        min_area: 0.0005
      - name: san
        polygon: [[0, 0.5], [0.5, 0.5], [0.5, 1]]
        armed: ["00:00-24:00"]
)";

TEST(ConfigZones, ZonesSchedulesAndAlertsParse) {
  const auto config = load_config_text(std::string(kZoneCamera) + R"(alerts:
  - name: hook
    type: webhook
    url: http://127.0.0.1:9/alert
    cameras: [c1]
    zones: [cong]
    types: [person, tamper]
  - name: tg
    type: telegram
    bot_token: ${CAM_PASS}
    chat_id: "-1001"
    armed_only: false
)",
                                       "z.yaml", fake_env);
  ASSERT_TRUE(config) << config.error()[0].to_string();
  const auto& c = config->cameras[0];
  ASSERT_EQ(c.zones.size(), 2u);
  EXPECT_EQ(c.zones[0].name, "cong");
  EXPECT_DOUBLE_EQ(c.zones[0].min_area, 0.0005);
  EXPECT_FALSE(c.zones[0].has_schedule);
  EXPECT_TRUE(c.zones[1].has_schedule);
  EXPECT_EQ(c.armed.to_string(), "22:00-05:00");
  ASSERT_EQ(config->alerts.size(), 2u);
  EXPECT_EQ(config->alerts[0].kind, AlertChannelConfig::Kind::webhook);
  EXPECT_EQ(config->alerts[0].types, (std::vector<std::string>{"person", "tamper"}));
  EXPECT_EQ(config->alerts[1].kind, AlertChannelConfig::Kind::telegram);
  EXPECT_EQ(config->alerts[1].url, "https://api.telegram.org");
  EXPECT_EQ(config->alerts[1].bot_token, "p@ss:w/rd");
  EXPECT_FALSE(config->alerts[1].armed_only);
}

std::string camera_with_zone(const std::string& zone_lines) {
  return "cameras:\n  - id: c1\n    main_url: rtsp://10.0.0.5/main\n    zones:\n" + zone_lines;
}

TEST(ConfigZones, MalformedPolygonsAreRejectedWithWhere) {
  // Outside the picture (pixels instead of relative coordinates).
  auto e =
      errors_of(camera_with_zone("      - {name: a, polygon: [[0, 0], [640, 0], [640, 360]]}\n"));
  EXPECT_TRUE(has_error(e, "cameras[0].zones[0].polygon", 5, "outside the picture")) << e.size();
  // Too few points.
  e = errors_of(camera_with_zone("      - {name: a, polygon: [[0, 0], [1, 0]]}\n"));
  EXPECT_TRUE(has_error(e, "cameras[0].zones[0].polygon", 5, "at least 3"));
  // On one line.
  e = errors_of(camera_with_zone("      - {name: a, polygon: [[0, 0], [0.5, 0.5], [1, 1]]}\n"));
  EXPECT_TRUE(has_error(e, "cameras[0].zones[0].polygon", 5, "no area"));
  // A bow tie.
  e = errors_of(
      camera_with_zone("      - {name: a, polygon: [[0, 0], [1, 1], [1, 0.2], [0, 0.6]]}\n"));
  EXPECT_TRUE(has_error(e, "cameras[0].zones[0].polygon", 5, "cross"));
  // No polygon, a bad name, a duplicate, a bad schedule, an unknown key.
  e = errors_of(camera_with_zone(
      "      - {name: a}\n"
      "      - {name: 'Cổng', polygon: [[0, 0], [1, 0], [1, 1]]}\n"
      "      - {name: a, polygon: [[0, 0], [1, 0], [1, 1]], armed: '22:00-29:00'}\n"
      "      - {name: b, polygon: [[0, 0], [1, 0], [1, 1]], minarea: 0.1}\n"));
  EXPECT_TRUE(has_error(e, "cameras[0].zones[0].polygon", 5, "is required"));
  EXPECT_TRUE(has_error(e, "cameras[0].zones[1].name", 6, "a-z"));
  EXPECT_TRUE(has_error(e, "cameras[0].zones[2].name", 7, "twice"));
  EXPECT_TRUE(has_error(e, "cameras[0].zones[2].armed", 7, "HH:MM-HH:MM"));
  EXPECT_TRUE(has_error(e, "cameras[0].zones[3].minarea", 8, "unknown key"));
}

TEST(ConfigZones, AlertsNeedTheirSecretsAndNameRealCamerasAndZones) {
  const auto e = errors_of(std::string(kZoneCamera) + R"(alerts:
  - {name: a, type: telegram, chat_id: "1"}
  - {name: b, type: zalo, access_token: x}
  - {name: c, type: webhook}
  - {name: d, type: sms, url: http://x}
  - {name: e, type: webhook, url: ftp://x}
  - {name: f, type: webhook, url: http://x, cameras: [c9], zones: [cong, ngo]}
)");
  EXPECT_TRUE(has_error(e, "alerts[0]", 13, "bot_token and chat_id"));
  EXPECT_TRUE(has_error(e, "alerts[1]", 14, "access_token and user_id"));
  EXPECT_TRUE(has_error(e, "alerts[2].url", 15, "required"));
  EXPECT_TRUE(has_error(e, "alerts[3].type", 16, "webhook, telegram or zalo"));
  EXPECT_TRUE(has_error(e, "alerts[4].url", 17, "http://"));
  EXPECT_TRUE(has_error(e, "alerts[5].cameras", 18, "no camera 'c9'"));
  EXPECT_TRUE(has_error(e, "alerts[5].zones", 18, "zone 'ngo'"));
  EXPECT_FALSE(has_error(e, "alerts[5].zones", 18, "zone 'cong'"));
}

TEST(ConfigZones, UnknownTimeZoneIsAnError) {
  const auto e = errors_of("server:\n  time_zone: Asia/Hanoi_City\n");
  EXPECT_TRUE(has_error(e, "server.time_zone", 2, "unknown time zone"));
  EXPECT_TRUE(errors_of("server:\n  time_zone: Asia/Ho_Chi_Minh\n").empty());
}

}  // namespace
}  // namespace matthan

namespace matthan {
namespace {

TEST(Config, OrganisationAndInventoryAreReadAndCamerasMustNameTheirCommune) {
  const auto ok = load_config_text(R"(organisation:
  province: {code: '01', name: Hà Nội}
  communes:
    - code: '10105'
      name: Xã Minh Phú
      former: [{code: '09877', name: Xã Minh Trí, until: '2025-07-01'}]
      hamlets: [{code: dong, name: Thôn Đông}]
cameras:
  - {id: cong, commune: '10105', hamlet: dong, main_url: 'rtsp://x/y', owner: household,
     installed: '2024-03-01', model: DS-2CD1023, funding: xã hội hóa, lat: 21.02, lon: 105.8}
)",
                                   "test.yaml", fake_env);
  ASSERT_TRUE(ok.has_value()) << ok.error().front().to_string();
  ASSERT_EQ(ok->organisation.communes.size(), 1u);
  EXPECT_EQ(ok->organisation.province_name, "Hà Nội");
  EXPECT_EQ(ok->organisation.communes[0].former[0].until, "2025-07-01");
  // A former code still names the commune (old records, old reports).
  ASSERT_NE(ok->organisation.commune("09877"), nullptr);
  EXPECT_EQ(ok->organisation.commune("09877")->code, "10105");
  EXPECT_EQ(ok->organisation.commune("nowhere"), nullptr);
  const auto& cam = ok->cameras[0];
  EXPECT_EQ(cam.owner, "household");
  EXPECT_EQ(cam.installed, "2024-03-01");
  EXPECT_EQ(cam.model, "DS-2CD1023");
  EXPECT_DOUBLE_EQ(*cam.lat, 21.02);

  const auto errors = errors_of(R"(organisation:
  communes:
    - code: '10105'
      name: Xã Minh Phú
      former: [{code: '09877', name: Xã Minh Trí, until: '2025-13-01'}]
      hamlets: [{code: dong}]
    - {code: '10105', name: Twice}
cameras:
  - {id: a, commune: '09877', hamlet: dong, main_url: 'rtsp://x/y'}
  - {id: b, commune: '10105', hamlet: tay, main_url: 'rtsp://x/y', owner: mayor}
  - {id: c, commune: '77777', main_url: 'rtsp://x/y', installed: yesterday, lat: 200}
)");
  EXPECT_TRUE(has_error(errors, "organisation.communes[0].former[0].until", 5, "YYYY-MM-DD"));
  EXPECT_TRUE(has_error(errors, "organisation.communes[1].code", 7, "duplicate commune code"));
  EXPECT_TRUE(
      has_error(errors, "cameras[0].commune", 9, "former code of Xã Minh Phú; use '10105'"));
  EXPECT_TRUE(has_error(errors, "cameras[1].hamlet", 10, "no hamlet 'tay'"));
  EXPECT_TRUE(has_error(errors, "cameras[1].owner", 10, "model, household, business or agency"));
  EXPECT_TRUE(has_error(errors, "cameras[2].commune", 11, "no commune '77777'"));
  EXPECT_TRUE(has_error(errors, "cameras[2].installed", 11, "YYYY-MM-DD"));
  EXPECT_TRUE(has_error(errors, "cameras[2].lat", 11, "between"));
}

TEST(Config, TheAdminUisEditsLayOverTheConfig) {
  const std::string text = R"(organisation:
  communes: [{code: '10105', name: Xã Minh Phú, hamlets: [{code: dong, name: Thôn Đông}]}]
cameras:
  - {id: cong, commune: '10105', hamlet: dong, main_url: 'rtsp://x/y', model: OLD, funding: xã}
)";
  const auto edited = load_config_text(
      text, "c.yaml", fake_env,
      R"({"organisation": {"communes": [{"code": "10105", "name": "Xã Minh Phú Mới",
          "hamlets": [{"code": "dong", "name": "Thôn Đông"}]}]},
          "cameras": {"cong": {"model": "DS-2CD1023", "funding": null, "installed": "2025-01-02"}}})",
      "inventory.json");
  ASSERT_TRUE(edited.has_value()) << edited.error().front().to_string();
  EXPECT_EQ(edited->organisation.communes[0].name, "Xã Minh Phú Mới");
  EXPECT_EQ(edited->cameras[0].model, "DS-2CD1023");
  EXPECT_EQ(edited->cameras[0].funding, "");  // null removes the key
  EXPECT_EQ(edited->cameras[0].installed, "2025-01-02");
  EXPECT_EQ(edited->cameras[0].main_url.substr(0, 7), "rtsp://");  // the rest as configured

  // An edit that would orphan a camera, a key that is not inventory, a camera that is not there.
  auto bad = load_config_text(
      text, "c.yaml", fake_env,
      R"({"organisation": {"communes": [{"code": "10105", "name": "X"}, {"code": "20000",
          "name": "Y", "hamlets": [{"code": "tay"}]}]}, "cameras": {"cong": {"masks": []}}})",
      "inventory.json");
  ASSERT_FALSE(bad.has_value());
  EXPECT_TRUE(has_error(bad.error(), "cameras.cong.masks", 0, "cannot be set here"));
  // Connection keys go through the config's own checks.
  bad = load_config_text(text, "c.yaml", fake_env,
                         R"({"cameras": {"cong": {"main_url": "http://x/y"}}})", "inventory.json");
  ASSERT_FALSE(bad.has_value());
  EXPECT_TRUE(has_error(bad.error(), "cameras[0].main_url", 0, "rtsp://"));
  bad = load_config_text(text, "c.yaml", fake_env, R"({"cameras": {"ghost": {"model": "x"}}})",
                         "inventory.json");
  ASSERT_FALSE(bad.has_value());
  EXPECT_TRUE(has_error(bad.error(), "cameras.ghost", 0, "no such camera"));
  bad = load_config_text(text, "c.yaml", fake_env,
                         R"({"organisation": {"communes": [{"code": "10105", "name": "X",
                             "hamlets": [{"code": "tay", "name": "Tây"}]}]}})",
                         "inventory.json");
  ASSERT_FALSE(bad.has_value());
  EXPECT_TRUE(has_error(bad.error(), "cameras[0].hamlet", 0, "no hamlet 'dong'"));
  // Edits are data: no reading the server's environment through them.
  bad = load_config_text(text, "c.yaml", fake_env,
                         R"({"cameras": {"cong": {"funding": "${CAM_PASS}"}}})", "inventory.json");
  ASSERT_FALSE(bad.has_value());
  EXPECT_TRUE(has_error(bad.error(), "(overlay)", 0, "'${' is not allowed"));
  // Cameras added, re-pointed, disabled and taken out in the page.
  const auto managed = load_config_text(
      text, "c.yaml", fake_env,
      R"({"cameras": {"cong": {"enabled": false, "main_url": "rtsp://10.0.0.9/live",
          "username": "admin", "password": "p@ss"},
          "cho": {"added": true, "commune": "10105", "hamlet": "dong", "main_url": "rtsp://10.0.0.7/ch1",
          "installed": "2026-11-29"}}})",
      "inventory.json");
  ASSERT_TRUE(managed.has_value()) << managed.error().front().to_string();
  ASSERT_EQ(managed->cameras.size(), 2u);
  EXPECT_FALSE(managed->cameras[0].enabled);
  EXPECT_EQ(managed->cameras[0].main_url, "rtsp://admin:p%40ss@10.0.0.9/live");
  EXPECT_EQ(managed->cameras[0].model, "OLD");  // the file's keys the edit does not name stay
  EXPECT_EQ(managed->cameras[1].id, "cho");
  EXPECT_EQ(managed->cameras[1].installed, "2026-11-29");
  const auto removed = load_config_text(
      text, "c.yaml", fake_env, R"({"cameras": {"cong": {"removed": true}}})", "inventory.json");
  ASSERT_TRUE(removed.has_value()) << removed.error().front().to_string();
  EXPECT_TRUE(removed->cameras.empty());
  EXPECT_TRUE(removed->retired.empty());
  // Taken out on a day (what the page writes): not run, kept with its inventory for reports.
  const auto retired = load_config_text(
      text, "c.yaml", fake_env,
      R"({"cameras": {"cong": {"removed": true, "removed_on": "2026-11-29", "model": "NEW"}}})",
      "inventory.json");
  ASSERT_TRUE(retired.has_value()) << retired.error().front().to_string();
  EXPECT_TRUE(retired->cameras.empty());
  ASSERT_EQ(retired->retired.size(), 1u);
  EXPECT_EQ(retired->retired[0].id, "cong");
  EXPECT_EQ(retired->retired[0].removed, "2026-11-29");
  EXPECT_EQ(retired->retired[0].model, "NEW");
  // Added in the page and since written into the file: an error when editing, the file's when
  // loading.
  const std::string twice = R"({"cameras": {"cong": {"added": true, "main_url": "rtsp://z/z"}}})";
  bad = load_config_text(text, "c.yaml", fake_env, twice, "inventory.json");
  ASSERT_FALSE(bad.has_value());
  EXPECT_TRUE(has_error(bad.error(), "cameras.cong", 0, "exists already"));
  const auto file_wins = load_config_text(text, "c.yaml", fake_env, twice, "inventory.json", false);
  ASSERT_TRUE(file_wins.has_value());
  EXPECT_EQ(file_wins->cameras[0].main_url, "rtsp://x/y");
  // Loading (not editing), a camera since removed from the config is passed over.
  const auto stale =
      load_config_text(text, "c.yaml", fake_env, R"({"cameras": {"ghost": {"model": "x"}}})",
                       "inventory.json", false);
  EXPECT_TRUE(stale.has_value());
}

}  // namespace
}  // namespace matthan
