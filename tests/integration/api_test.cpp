// The API's contract against the real server: an auth matrix over every route the router has
// registered (GET /api/routes; a route without a row here fails the test, as does a row without a
// route), the OpenAPI file naming exactly those routes with the same roles, object-level scoping by
// commune, path traversal on every file route, and malformed input answered with a clear 4xx while
// the server stays up.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>

#include "child_process.hpp"
#include "http_stub.hpp"

namespace matthan::test {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;

// The least role of each route ("public": no login). Every registered route needs a row.
const std::map<std::string, std::string> kMatrix{
    {"POST /api/login", "public"},
    {"GET /healthz", "public"},
    {"GET /", "public"},
    {"GET /{file}", "public"},
    {"GET /api/me", "viewer"},
    {"POST /api/logout", "viewer"},
    {"GET /metrics", "viewer"},
    {"GET /api/cameras", "viewer"},
    {"GET /api/cameras/{id}", "viewer"},
    {"GET /api/cameras/{id}/uptime", "viewer"},
    {"GET /api/cameras/{id}/live", "viewer"},
    {"GET /api/ws", "viewer"},
    {"GET /api/events", "viewer"},
    {"GET /api/events/{id}", "viewer"},
    {"GET /api/events/{id}/snapshot.jpg", "viewer"},
    {"POST /api/events/{id}/ack", "viewer"},
    {"POST /api/events/{id}/review", "reviewer"},
    {"GET /api/events/{id}/clip.mp4", "reviewer"},
    {"GET /api/cameras/{id}/clip.mp4", "reviewer"},
    {"GET /api/cameras/{id}/recordings", "reviewer"},
    {"GET /api/cameras/{id}/rollups", "reviewer"},
    {"GET /api/cameras/{id}/tune", "reviewer"},
    {"GET /api/node/key", "reviewer"},
    {"GET /api/storage", "reviewer"},
    {"GET /api/holds", "reviewer"},
    {"POST /api/holds", "reviewer"},
    {"GET /api/exports", "reviewer"},
    {"POST /api/exports", "reviewer"},
    {"GET /api/exports/{id}", "reviewer"},
    {"GET /api/exports/{id}/files/{name}", "reviewer"},
    {"GET /api/exports/{id}/record", "reviewer"},
    {"POST /api/holds/{id}/release", "admin"},
    {"GET /api/routes", "admin"},
    {"GET /api/users", "admin"},
    {"POST /api/users", "admin"},
    {"POST /api/users/{name}/unlock", "admin"},
    {"PATCH /api/users/{name}", "admin"},
    {"GET /api/admin/cameras", "admin"},
    {"POST /api/admin/cameras", "admin"},
    {"PATCH /api/admin/cameras/{id}", "admin"},
    {"DELETE /api/admin/cameras/{id}", "admin"},
    {"POST /api/admin/restart", "admin"},
    {"GET /api/audit", "admin"},
    {"GET /api/organisation", "viewer"},
    {"PUT /api/organisation", "admin"},
    {"GET /api/reports/operation", "viewer"},
    {"GET /api/cases", "reviewer"},
    {"POST /api/cases", "reviewer"},
    {"GET /api/cases/{id}", "reviewer"},
    {"PATCH /api/cases/{id}", "reviewer"},
    {"POST /api/cases/{id}/links", "reviewer"},
};

const std::map<std::string, int> kRank{{"public", 0}, {"viewer", 1}, {"reviewer", 2}, {"admin", 3}};

std::string fill(std::string pattern, const std::map<std::string, std::string>& values) {
  for (const auto& [name, value] : values) {
    const std::string key = "{" + name + "}";
    for (auto at = pattern.find(key); at != std::string::npos; at = pattern.find(key))
      pattern.replace(at, key.size(), value);
  }
  return pattern;
}

// A WebSocket upgrade: the status of the server's answer (101 when accepted).
int upgrade(int port, const std::string& path, const std::string& headers) {
  const std::string raw =
      http_raw(port,
               "GET " + path +
                   " HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                   "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n" +
                   headers + "\r\n",
               1500ms);
  return raw.size() < 12 ? 0 : std::atoi(raw.substr(9, 3).c_str());
}

class Api : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = temp_dir("matthan-api");
    cfg_ = dir_ + "/matthan.yaml";
    std::ofstream(cfg_) << "node_id: api-node\nserver: {listen: '127.0.0.1:0', data_dir: '" << dir_
                        << "/var'}\nanalytics: {zmq_endpoint: '', people: false}\n"
                        << "cameras:\n"
                        << "  - {id: gate, commune: xa-a, main_url: 'rtsp://127.0.0.1:9/none'}\n"
                        << "  - {id: market, commune: xa-b, main_url: 'rtsp://127.0.0.1:9/none'}\n";
    const std::string bin = binary_path("matthan");
    for (const auto& [user, args] : std::vector<std::pair<std::string, std::string>>{
             {"xem", "--role viewer"},
             {"xem-a", "--role viewer --communes xa-a"},
             {"cong-an", "--role reviewer"},
             {"cong-an-b", "--role reviewer --communes xa-b"},
             {"quan-tri", "--role admin"},
             {"xem-cho", "--role viewer --cameras market"}}) {
      std::string out;
      ASSERT_EQ(run_command("printf 'Mat-khau-2026\\n' | " + bin + " user add " + user + " " +
                                args + " --config " + cfg_,
                            &out),
                0)
          << out;
    }
    server_ = std::make_unique<ChildProcess>(std::vector<std::string>{bin, "run", "--config", cfg_},
                                             dir_ + "/server.log");
    const auto listening = server_->wait_for_line("LISTENING ", 20s);
    ASSERT_TRUE(listening.has_value()) << read_file(dir_ + "/server.log");
    port_ = std::atoi(listening->substr(listening->rfind(':') + 1).c_str());
    // One event per camera, written as the analytics would (the server reads the same file).
    std::string out;
    ASSERT_EQ(run_command("sqlite3 -cmd '.timeout 5000' " + dir_ +
                              "/var/matthan.db \"INSERT INTO event (id, node_id, camera_id, type,"
                              " start_us, end_us) VALUES ('01GATEEVENT', 'api-node', 'gate',"
                              " 'motion', 1000000, 2000000), ('01MARKETEVENT', 'api-node',"
                              " 'market', 'motion', 3000000, 4000000)\"",
                          &out),
              0)
        << out;
    for (const auto& user : {"xem", "xem-a", "cong-an", "cong-an-b", "quan-tri", "xem-cho"}) {
      int status = 0;
      sessions_[user] = session_login(port_, user, "Mat-khau-2026", &status);
      ASSERT_EQ(status, 200) << user;
    }
  }
  void TearDown() override {
    if (server_) {
      EXPECT_EQ(server_->signal_and_wait(SIGTERM, 15s), 0);
    }
    if (!HasFailure()) std::filesystem::remove_all(dir_);
  }
  json routes() {
    const auto r = http_request(port_, "GET", "/api/routes", sessions_["quan-tri"]);
    EXPECT_EQ(r.status, 200) << r.body;
    return json::parse(r.body, nullptr, false)["routes"];
  }

  std::string dir_, cfg_;
  int port_ = 0;
  std::unique_ptr<ChildProcess> server_;
  std::map<std::string, std::string> sessions_;
};

TEST_F(Api, EveryRouteHasAnAuthMatrixRowAndAnswersAsDesigned) {
  const json list = routes();
  ASSERT_TRUE(list.is_array());
  std::set<std::string> registered;
  const std::map<std::string, std::string> values{
      {"id", "gate"}, {"name", "manifest.json"}, {"file", "app.js"}};
  for (const auto& r : list) {
    const std::string method = r["method"], pattern = r["path"], role = r["role"];
    const std::string key = method + " " + pattern;
    registered.insert(key);
    const auto row = kMatrix.find(key);
    if (row == kMatrix.end()) {
      ADD_FAILURE() << "route " << key << " has no row in the auth matrix";
      continue;
    }
    EXPECT_EQ(role, row->second) << key << ": the router's role differs from the matrix";
    // Concrete values: events and exports by id, the rest as named above.
    auto v = values;
    if (pattern.starts_with("/api/events/{id}")) v["id"] = "01GATEEVENT";
    if (pattern.starts_with("/api/exports/{id}") || pattern.starts_with("/api/holds/{id}"))
      v["id"] = "no-such-id";
    if (pattern.starts_with("/api/users/{name}")) v["name"] = "xem";
    std::string path = fill(pattern, v);
    if (pattern.ends_with("clip.mp4") || pattern.ends_with("/recordings"))
      path += "?from=now-1m&to=now";
    if (pattern.ends_with("/tune")) path += "?clip=x.mp4";
    const bool ws = r["kind"] == "websocket";
    const std::string body = method == "POST" ? "{}" : "";
    auto call = [&](const std::string& headers) {
      return ws ? upgrade(port_, path, headers)
                : http_request(port_, method, path, headers, body).status;
    };
    // Without a login: 401 unless public.
    const int anonymous = call("");
    if (row->second == "public") {
      EXPECT_NE(anonymous, 401) << key;
      EXPECT_NE(anonymous, 403) << key;
    } else {
      EXPECT_EQ(anonymous, 401) << key;
    }
    for (const auto& [user, rank] :
         std::vector<std::pair<std::string, int>>{{"xem", 1}, {"cong-an", 2}, {"quan-tri", 3}}) {
      std::string headers = sessions_[user];
      if (key == "POST /api/logout") {  // a session of its own: logout ends it
        int status = 0;
        headers = session_login(port_, user, "Mat-khau-2026", &status);
      }
      const int got = call(headers);
      if (rank >= kRank.at(row->second)) {
        EXPECT_NE(got, 401) << key << " as " << user;
        EXPECT_NE(got, 403) << key << " as " << user;
        EXPECT_LT(got, 500) << key << " as " << user;
        EXPECT_GT(got, 0) << key << " as " << user;
        if (ws) {
          EXPECT_EQ(got, 101) << key << " as " << user;
        }
      } else {
        EXPECT_EQ(got, 403) << key << " as " << user;
      }
    }
  }
  for (const auto& [key, role] : kMatrix) {
    EXPECT_TRUE(registered.contains(key)) << "matrix row " << key << " has no route";
  }
  // The same table is documented: docs/ref/openapi.json names every route with its role.
  std::ifstream in(std::string(MATTHAN_SOURCE_DIR) + "/docs/ref/openapi.json");
  const json spec = json::parse(in, nullptr, false);
  ASSERT_TRUE(spec.is_object()) << "docs/ref/openapi.json is not JSON";
  EXPECT_TRUE(spec.value("openapi", "").starts_with("3.")) << "not an OpenAPI 3 file";
  std::set<std::string> documented;
  for (const auto& [path, ops] : spec["paths"].items()) {
    for (const auto& [method, op] : ops.items()) {
      std::string m = method;
      for (auto& ch : m) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
      const std::string key = m + " " + path;
      documented.insert(key);
      const auto row = kMatrix.find(key);
      if (row == kMatrix.end() || !registered.contains(key)) {
        ADD_FAILURE() << "openapi.json documents " << key << ", which the server does not serve";
        continue;
      }
      EXPECT_EQ(op.value("x-matthan-role", ""), row->second) << key << " in openapi.json";
      EXPECT_FALSE(op.value("summary", "").empty()) << key << " has no summary in openapi.json";
    }
  }
  for (const auto& key : registered) {
    EXPECT_TRUE(documented.contains(key)) << key << " is not in docs/ref/openapi.json";
  }
}

TEST_F(Api, AViewerOfOneCommuneSeesOnlyItsCamerasEventsAndFootage) {
  const auto& a = sessions_["xem-a"];
  const auto cams = json::parse(http_request(port_, "GET", "/api/cameras", a).body);
  ASSERT_EQ(cams["cameras"].size(), 1u);
  EXPECT_EQ(cams["cameras"][0]["id"], "gate");
  EXPECT_EQ(http_request(port_, "GET", "/api/cameras/gate", a).status, 200);
  EXPECT_EQ(http_request(port_, "GET", "/api/cameras/market", a).status, 403);
  EXPECT_EQ(http_request(port_, "GET", "/api/cameras/market/uptime", a).status, 403);
  EXPECT_EQ(upgrade(port_, "/api/cameras/market/live", a), 403);
  EXPECT_EQ(upgrade(port_, "/api/cameras/gate/live", a), 101);
  const auto events = json::parse(http_request(port_, "GET", "/api/events", a).body);
  std::set<std::string> ids;
  for (const auto& e : events["events"]) ids.insert(e["id"]);
  EXPECT_EQ(ids, std::set<std::string>{"01GATEEVENT"});
  EXPECT_EQ(http_request(port_, "GET", "/api/events?camera=market", a).status, 403);
  EXPECT_EQ(http_request(port_, "GET", "/api/events?commune=xa-b", a).status, 403);
  EXPECT_EQ(http_request(port_, "GET", "/api/events/01MARKETEVENT", a).status, 403);
  EXPECT_EQ(http_request(port_, "GET", "/api/events/01MARKETEVENT/snapshot.jpg", a).status, 403);
  EXPECT_EQ(http_request(port_, "POST", "/api/events/01MARKETEVENT/ack", a, "{}").status, 403);
  EXPECT_EQ(http_request(port_, "POST", "/api/events/01GATEEVENT/ack", a, "{}").status, 200);
  // A reviewer of commune B: no footage, exports or holds of commune A's camera.
  const auto& b = sessions_["cong-an-b"];
  EXPECT_EQ(http_request(port_, "GET", "/api/events/01GATEEVENT/clip.mp4", b).status, 403);
  EXPECT_EQ(http_request(port_, "GET", "/api/cameras/gate/clip.mp4?from=now-1m&to=now", b).status,
            403);
  EXPECT_EQ(http_request(port_, "GET", "/api/cameras/gate/recordings?from=now-1m&to=now", b).status,
            403);
  const auto range = [](const std::string& cam) {
    return json{{"cameras", {cam}}, {"from", "now-10m"}, {"to", "now"}, {"reason", "Vụ 12"}}.dump();
  };
  EXPECT_EQ(http_request(port_, "POST", "/api/exports", b, range("gate")).status, 403);
  EXPECT_EQ(http_request(port_, "POST", "/api/holds", b, range("gate")).status, 403);
  EXPECT_EQ(http_request(port_, "POST", "/api/holds", b, range("market")).status, 201);
  const auto storage = json::parse(http_request(port_, "GET", "/api/storage", b).body);
  for (const auto& f : storage.value("forecast", json::array()))
    EXPECT_EQ(f["camera"], "market") << "a forecast of another commune's camera";
  // Review of an event is the reviewer's and lands in the audit log.
  const auto& r = sessions_["cong-an"];
  // The playback timeline's events come with the recordings of the range (this camera's only).
  const auto timeline =
      http_request(port_, "GET",
                   "/api/cameras/gate/"
                   "recordings?from=1970-01-01T00:00:00%2B00:00&to=1970-01-01T00:00:10%2B00:00",
                   r);
  ASSERT_EQ(timeline.status, 200) << timeline.body;
  const auto tl = json::parse(timeline.body);
  ASSERT_EQ(tl["events"].size(), 1u) << timeline.body;
  EXPECT_EQ(tl["events"][0]["id"], "01GATEEVENT");
  EXPECT_EQ(tl["events"][0]["from"], "1970-01-01T00:00:01.000000Z");
  const auto reviewed = http_request(port_, "POST", "/api/events/01GATEEVENT/review", r,
                                     json{{"state", "false_alarm"}, {"note", "gió"}}.dump());
  ASSERT_EQ(reviewed.status, 200) << reviewed.body;
  EXPECT_EQ(json::parse(reviewed.body)["review"]["state"], "false_alarm");
  EXPECT_EQ(json::parse(reviewed.body)["review"]["by"], "cong-an");
  const auto filtered = json::parse(
      http_request(port_, "GET", "/api/events?review=false_alarm", sessions_["xem"]).body);
  ASSERT_EQ(filtered["events"].size(), 1u);
  EXPECT_EQ(filtered["events"][0]["id"], "01GATEEVENT");
  EXPECT_EQ(filtered["events"][0]["ack"]["by"], "xem-a");
  const auto audit =
      json::parse(http_request(port_, "GET", "/api/audit?limit=1000", sessions_["quan-tri"]).body);
  std::multiset<std::string> actions;
  for (const auto& e : audit["entries"]) actions.insert(e["action"].get<std::string>());
  EXPECT_EQ(actions.count("event_review"), 1u);
  EXPECT_EQ(actions.count("alert_ack"), 1u);
  EXPECT_EQ(actions.count("live_view"), 1u);  // the one accepted live socket above

  // What commune A's reviewer-wide colleague made stays out of commune B's reach: a hold, an
  // export and its files and record, a case; /metrics lists only the caller's cameras.
  const auto hold = http_request(port_, "POST", "/api/holds", r, range("gate"));
  ASSERT_EQ(hold.status, 201) << hold.body;
  const auto holds = json::parse(http_request(port_, "GET", "/api/holds", b).body);
  for (const auto& h : holds["holds"]) EXPECT_NE(h["cameras"], json({"gate"})) << h.dump();
  const auto job = http_request(port_, "POST", "/api/exports", r, range("gate"));
  ASSERT_EQ(job.status, 202) << job.body;
  const std::string export_id = json::parse(job.body)["id"];
  const auto exports = json::parse(http_request(port_, "GET", "/api/exports", b).body);
  for (const auto& e : exports["exports"]) EXPECT_NE(e["id"], export_id);
  for (const std::string path : {"", "/files/manifest.json", "/record"})
    EXPECT_EQ(http_request(port_, "GET", "/api/exports/" + export_id + path, b).status, 403)
        << path;
  const auto made = http_request(port_, "POST", "/api/cases", r,
                                 json{{"commune", "xa-a"},
                                      {"category", "theft"},
                                      {"title", "x"},
                                      {"occurred", "2026-11-01T08:00:00+07:00"}}
                                     .dump());
  ASSERT_EQ(made.status, 201) << made.body;
  const std::string case_id = json::parse(made.body)["id"];
  EXPECT_EQ(http_request(port_, "GET", "/api/cases/" + case_id, b).status, 403);
  EXPECT_EQ(json::parse(http_request(port_, "GET", "/api/cases", b).body)["cases"].size(), 0u);
  const auto metrics = http_request(port_, "GET", "/metrics", a).body;
  EXPECT_NE(metrics.find("camera=\"gate\""), std::string::npos);
  EXPECT_EQ(metrics.find("camera=\"market\""), std::string::npos);
}

TEST_F(Api, AViewerOfOneCameraSeesThatCameraAndNoCommuneWideFigures) {
  const auto& v = sessions_["xem-cho"];
  const auto me = json::parse(http_request(port_, "GET", "/api/me", v).body);
  EXPECT_EQ(me["cameras"], json({"market"}));
  const auto cams = json::parse(http_request(port_, "GET", "/api/cameras", v).body);
  ASSERT_EQ(cams["cameras"].size(), 1u);
  EXPECT_EQ(cams["cameras"][0]["id"], "market");
  EXPECT_EQ(http_request(port_, "GET", "/api/cameras/gate", v).status, 403);
  EXPECT_EQ(upgrade(port_, "/api/cameras/gate/live", v), 403);
  EXPECT_EQ(upgrade(port_, "/api/cameras/market/live", v), 101);
  const auto events = json::parse(http_request(port_, "GET", "/api/events", v).body);
  ASSERT_EQ(events["events"].size(), 1u);
  EXPECT_EQ(events["events"][0]["id"], "01MARKETEVENT");
  const auto in_b = json::parse(http_request(port_, "GET", "/api/events?commune=xa-a", v).body);
  EXPECT_EQ(in_b["events"].size(), 0u) << "a commune filter narrows to the viewer's cameras";
  EXPECT_EQ(http_request(port_, "GET", "/api/events/01GATEEVENT", v).status, 403);
  // A commune's report and organisation are commune-wide: not for a one-camera viewer.
  EXPECT_EQ(http_request(port_, "GET",
                         "/api/reports/operation?commune=xa-b&from=2026-01-01&to=2026-01-31", v)
                .status,
            403);
  const auto org = json::parse(http_request(port_, "GET", "/api/organisation", v).body);
  EXPECT_EQ(org["communes"].size(), 0u);
  ASSERT_EQ(org["cameras"].size(), 1u);
  EXPECT_EQ(org["cameras"][0]["id"], "market");
  const auto metrics = http_request(port_, "GET", "/metrics", v).body;
  EXPECT_NE(metrics.find("camera=\"market\""), std::string::npos);
  EXPECT_EQ(metrics.find("camera=\"gate\""), std::string::npos);
  // The admin widens the scope with a commune: both cameras from the next request.
  const auto widened = http_request(port_, "PATCH", "/api/users/xem-cho", sessions_["quan-tri"],
                                    json{{"communes", {"xa-a"}}}.dump());
  ASSERT_EQ(widened.status, 200) << widened.body;
  EXPECT_EQ(json::parse(widened.body)["cameras"], json({"market"}));
  EXPECT_EQ(json::parse(http_request(port_, "GET", "/api/cameras", v).body)["cameras"].size(), 2u);
}

TEST_F(Api, WebSocketsFromOtherSitesAreRefusedAndCloseWithTheSession) {
  int status = 0;
  const auto session = session_login(port_, "xem", "Mat-khau-2026", &status);
  ASSERT_EQ(status, 200);
  EXPECT_EQ(upgrade(port_, "/api/ws", session + "Origin: http://evil.example\r\n"), 403);
  EXPECT_EQ(upgrade(port_, "/api/ws", session + "Origin: http://127.0.0.1\r\n"), 101);
  // A push socket of this session: it closes within a heartbeat (1 s here) of the logout.
  std::string seen;
  const auto t0 = std::chrono::steady_clock::now();
  std::thread reader([&] {
    seen = http_raw(port_,
                    "GET /api/ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                    "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                    "Sec-WebSocket-Version: 13\r\n" +
                        session + "\r\n",
                    20s);
  });
  std::this_thread::sleep_for(1500ms);
  EXPECT_EQ(http_request(port_, "POST", "/api/logout", session, "{}").status, 200);
  reader.join();
  const auto took = std::chrono::steady_clock::now() - t0;
  EXPECT_TRUE(seen.starts_with("HTTP/1.1 101")) << seen.substr(0, 200);
  // A heartbeat (1 s) and the 2 s cut of a peer that ignores the close frame, with room for a
  // loaded machine; a socket left open would run into the reader's 20 s.
  EXPECT_LT(took, 15s) << "the socket outlived its session";
}

TEST_F(Api, PagesOfEventsFollowTheCursorWithoutGapsOrRepeats) {
  std::string values;
  for (int i = 0; i < 25; ++i) {
    values += std::string(i ? "," : "") + "('01PAGE" + std::to_string(100 + i) +
              "', 'api-node', 'gate', 'motion', " + std::to_string(10'000'000 + (i / 2) * 1000) +
              ")";  // pairs share a start time: the cursor must order by id too
  }
  std::string out;
  ASSERT_EQ(run_command("sqlite3 -cmd '.timeout 5000' " + dir_ +
                            "/var/matthan.db \"INSERT INTO event (id, node_id, camera_id, type,"
                            " start_us) VALUES " +
                            values + "\"",
                        &out),
            0)
      << out;
  std::vector<std::string> seen;
  std::string cursor;
  for (int page = 0; page < 10; ++page) {
    const auto r = http_request(
        port_, "GET",
        "/api/events?camera=gate&limit=4" + (cursor.empty() ? std::string() : "&cursor=" + cursor),
        sessions_["xem"]);
    ASSERT_EQ(r.status, 200) << r.body;
    const auto j = json::parse(r.body);
    for (const auto& e : j["events"]) seen.push_back(e["id"]);
    if (j["next_cursor"].is_null()) break;
    cursor = j["next_cursor"];
  }
  ASSERT_EQ(seen.size(), 26u);  // 25 + the fixture's gate event
  std::vector<std::string> expected;
  for (int i = 24; i >= 0; --i) {
    // Newest first; within a shared start time the larger id first.
    expected.push_back("01PAGE" + std::to_string(100 + i));
  }
  expected.push_back("01GATEEVENT");
  EXPECT_EQ(seen, expected);
}

TEST_F(Api, FileRoutesRefuseTraversalAndBadInputGetsAClearError) {
  const auto& admin = sessions_["quan-tri"];
  // A finished export to aim at: its manifest is served, nothing beside or above it.
  std::string out;
  ASSERT_EQ(run_command("sqlite3 -cmd '.timeout 5000' " + dir_ +
                            "/var/matthan.db \"INSERT INTO export_job (id, node_id, cameras,"
                            " start_us, end_us, reason, created_by, created_us, state) VALUES"
                            " ('EXP1', 'api-node', '[\\\"gate\\\"]', 1, 2, 'test', 'quan-tri', 3,"
                            " 'done')\"",
                        &out),
            0)
      << out;
  std::filesystem::create_directories(dir_ + "/var/exports/EXP1");
  std::ofstream(dir_ + "/var/exports/EXP1/manifest.json") << "{\"ok\": true}";
  std::ofstream(dir_ + "/var/exports/secret.txt") << "root:secret";
  const auto served = http_request(port_, "GET", "/api/exports/EXP1/files/manifest.json", admin);
  ASSERT_EQ(served.status, 200) << served.body;
  EXPECT_EQ(served.body, "{\"ok\": true}");
  for (const std::string evil : {"..%2Fsecret.txt", "%2e%2e%2fsecret.txt", "..", ".%2e",
                                 "%2E%2E%2F..%2Fmatthan.db", "..%5Csecret.txt"}) {
    const auto got = http_request(port_, "GET", "/api/exports/EXP1/files/" + evil, admin);
    EXPECT_EQ(got.status, 404) << evil;
    EXPECT_EQ(got.body.find("root:"), std::string::npos) << evil;
  }
  for (const auto& r : routes()) {
    const std::string pattern = r["path"];
    if (r["kind"] != "file" && r["kind"] != "page") continue;
    for (const std::string evil :
         {"..%2F..%2Fvar%2Fmatthan.db", "%2e%2e%2f%2e%2e%2fmatthan.db", "..", ".matthan.db",
          "%2Fetc%2Fpasswd", "..%5C..%5Cmatthan.db"}) {
      std::map<std::string, std::string> v{{"id", evil}, {"name", evil}, {"file", evil}};
      std::string path = fill(pattern, v);
      if (pattern == "/") path = "/" + evil;
      if (pattern.ends_with("clip.mp4")) path += "?from=now-1m&to=now";
      const auto got = http_request(port_, "GET", path, admin);
      EXPECT_GE(got.status, 400) << path;
      EXPECT_LT(got.status, 500) << path;
      EXPECT_EQ(got.body.find("SQLite format"), std::string::npos) << path;
      EXPECT_EQ(got.body.find("root:"), std::string::npos) << path;
    }
  }
  struct Bad {
    std::string method, path, body, code;
  };
  for (const auto& b : std::vector<Bad>{
           {"POST", "/api/holds", "{not json", "bad_request"},
           {"POST", "/api/exports", "[1, 2", "bad_json"},
           {"POST", "/api/users", "{\"username\": 5}", "bad_request"},
           {"POST", "/api/events/01GATEEVENT/review", "{\"state\": 5}", "bad_request"},
           {"POST", "/api/events/01GATEEVENT/review", "{\"state\": \"maybe\"}", "bad_review"},
           {"GET", "/api/events?cursor=abc", "", "bad_cursor"},
           {"GET", "/api/events?cursor=99999999999999999999999.x", "", "bad_cursor"},
           {"GET", "/api/events?limit=-1", "", "bad_limit"},
           {"GET", "/api/events?from=yesterday", "", "bad_time"},
           {"GET", "/api/events?review=maybe", "", "bad_review"},
           {"GET", "/api/cameras/gate/live?stream=x", "", "upgrade_required"},
           {"DELETE", "/api/cameras", "", "method_not_allowed"},
           {"GET", "/api/cameras/gate/live?format=gif", "", "upgrade_required"},
           {"GET", "/api/no/such/route", "", "not_found"}}) {
    const auto got = http_request(port_, b.method, b.path, admin, b.body);
    EXPECT_GE(got.status, 400) << b.method << " " << b.path;
    EXPECT_LT(got.status, 500) << b.method << " " << b.path;
    const auto j = json::parse(got.body, nullptr, false);
    ASSERT_TRUE(j.is_object()) << b.path << ": " << got.body;
    EXPECT_EQ(j["error"]["code"], b.code) << b.path << ": " << got.body;
    EXPECT_FALSE(j["error"]["message"].get<std::string>().empty()) << b.path;
  }
  EXPECT_NE(http_request(port_, "DELETE", "/api/cameras", admin).head.find("Allow: GET"),
            std::string::npos);
  // Huge headers and a broken request line: 4xx, and the server goes on.
  const auto huge = http_request(port_, "GET", "/api/cameras",
                                 admin + "X-Filler: " + std::string(40000, 'a') + "\r\n");
  EXPECT_GE(huge.status, 400);
  EXPECT_LT(huge.status, 500);
  const std::string garbage = http_raw(port_, "GARBAGE\r\n\r\n");
  EXPECT_TRUE(garbage.starts_with("HTTP/1.1 400")) << garbage;
  EXPECT_EQ(http_request(port_, "GET", "/healthz", "").status, 200);
  EXPECT_EQ(http_request(port_, "GET", "/api/cameras", admin).status, 200);
}

}  // namespace
}  // namespace matthan::test

namespace matthan::test {
namespace {

// TLS when a certificate is configured (HTTPS, WSS, Secure cookies); beyond loopback only with
// TLS or an explicit, logged override.
TEST(ApiTls, HttpsWithSecureCookiesAndNoClearTextBeyondLoopback) {
  const auto dir = temp_dir("matthan-tls");
  std::string out;
  ASSERT_EQ(run_command("openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=127.0.0.1 "
                        "-keyout " +
                            dir + "/key.pem -out " + dir + "/cert.pem",
                        &out),
            0)
      << out;
  const std::string bin = binary_path("matthan");
  auto write = [&](const std::string& name, const std::string& listen, const std::string& extra) {
    std::ofstream(dir + "/" + name)
        << "node_id: tls-node\nserver: {listen: '" << listen << "', data_dir: '" << dir << "/var'"
        << extra << "}\nanalytics: {zmq_endpoint: '', people: false}\n"
        << "cameras:\n  - {id: gate, main_url: 'rtsp://127.0.0.1:9/x'}\n";
    return dir + "/" + name;
  };
  const std::string tls = ", tls_cert: '" + dir + "/cert.pem', tls_key: '" + dir + "/key.pem'";
  const auto cfg = write("tls.yaml", "127.0.0.1:0", tls);
  ASSERT_EQ(
      run_command(
          "printf 'Mat-khau-2026\\n' | " + bin + " user add qt --role admin --config " + cfg, &out),
      0)
      << out;
  {
    ChildProcess server({bin, "run", "--config", cfg}, dir + "/tls.log");
    const auto listening = server.wait_for_line("LISTENING ", 20s);
    ASSERT_TRUE(listening.has_value()) << read_file(dir + "/tls.log");
    ASSERT_NE(listening->find("https://"), std::string::npos) << *listening;
    const std::string url = listening->substr(listening->find("https://"));
    EXPECT_EQ(run_command("curl -sk -o /dev/null -w '%{http_code}' " + url + "healthz", &out), 0);
    EXPECT_EQ(out, "200");
    EXPECT_EQ(run_command("curl -sk -D - -o /dev/null -H 'Content-Type: application/json' -d "
                          "'{\"username\":\"qt\",\"password\":\"Mat-khau-2026\"}' " +
                              url + "api/login",
                          &out),
              0);
    EXPECT_NE(out.find("HttpOnly; SameSite=Strict"), std::string::npos) << out;
    EXPECT_NE(out.find("; Secure"), std::string::npos) << out;
    // Clear text to the TLS port gets no HTTP answer.
    const int port = std::atoi(listening->substr(listening->rfind(':') + 1).c_str());
    EXPECT_EQ(http_request(port, "GET", "/healthz", "", "", 3s).status, 0);
    EXPECT_EQ(server.signal_and_wait(SIGTERM, 15s), 0);
  }
  // Beyond loopback: refused without TLS, served with TLS or with the logged override.
  const auto open = write("open.yaml", "0.0.0.0:0", "");
  EXPECT_EQ(run_command(bin + " run --config " + open, &out), 1);
  EXPECT_NE(out.find("not a loopback address"), std::string::npos) << out;
  EXPECT_NE(out.find("tls_cert"), std::string::npos) << out;
  for (const auto& [name, extra, warn] : std::vector<std::tuple<std::string, std::string, bool>>{
           {"open-tls.yaml", tls, false},
           {"open-insecure.yaml", ", insecure_listen: true", true}}) {
    const auto c = write(name, "0.0.0.0:0", extra);
    ChildProcess server({bin, "run", "--config", c}, dir + "/" + name + ".log");
    ASSERT_TRUE(server.wait_for_line("LISTENING ", 20s).has_value())
        << read_file(dir + "/" + name + ".log");
    EXPECT_EQ(server.signal_and_wait(SIGTERM, 15s), 0);
    EXPECT_EQ(read_file(dir + "/" + name + ".log").find("WITHOUT TLS") != std::string::npos, warn)
        << name;
  }
  if (!HasFailure()) std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace matthan::test

namespace matthan::test {
namespace {

// An alert nobody answered before the server stopped still goes on to the next contact after a
// restart; an acknowledged one does not, nor one whose escalation was due long ago.
TEST(ApiEscalation, WaitingEscalationsSurviveARestart) {
  const auto dir = temp_dir("matthan-esc");
  HttpStub stub;
  const std::string cfg = dir + "/matthan.yaml";
  std::ofstream(cfg) << "node_id: esc-node\nserver: {listen: '127.0.0.1:0', data_dir: '" << dir
                     << "/var'}\nanalytics: {zmq_endpoint: '', people: false}\n"
                     << "cameras:\n  - {id: gate, main_url: 'rtsp://127.0.0.1:9/none'}\n"
                     << "alerts:\n  - {name: guard, type: webhook, url: '" << stub.url()
                     << "/guard', armed_only: false, escalate_after_s: 3, escalate_to: officer}\n"
                     << "  - {name: officer, type: webhook, url: '" << stub.url()
                     << "/officer', escalation_only: true}\n";
  const std::string bin = binary_path("matthan");
  std::string out;
  // Makes the database (and an account nobody uses here).
  ASSERT_EQ(
      run_command(
          "printf 'Mat-khau-2026\\n' | " + bin + " user add qt --role admin --config " + cfg, &out),
      0)
      << out;
  const auto now = std::chrono::duration_cast<std::chrono::microseconds>(
                       std::chrono::system_clock::now().time_since_epoch())
                       .count();
  const auto at = [&](std::int64_t ago_s) { return std::to_string(now - ago_s * 1'000'000); };
  ASSERT_EQ(
      run_command("sqlite3 -cmd '.timeout 5000' " + dir +
                      "/var/matthan.db \"INSERT INTO event (id, node_id, camera_id, type,"
                      " start_us) VALUES ('01WAITING', 'esc-node', 'gate', 'motion', " +
                      at(1) + "), ('01ANSWERED', 'esc-node', 'gate', 'motion', " + at(1) +
                      "), ('01OLDNEWS', 'esc-node', 'gate', 'motion', " + at(3 * 3600) +
                      "); INSERT INTO alert_ack (event_id, node_id, acked_by, acked_us) VALUES"
                      " ('01ANSWERED', 'esc-node', 'an-ninh', " +
                      at(0) + ")\"",
                  &out),
      0)
      << out;
  ChildProcess server({bin, "run", "--config", cfg}, dir + "/server.log");
  ASSERT_TRUE(server.wait_for_line("LISTENING ", 20s).has_value())
      << read_file(dir + "/server.log");
  ASSERT_TRUE(stub.wait_for_requests(1, 15s)) << read_file(dir + "/server.log");
  std::this_thread::sleep_for(4s);  // anything else due would have come by now
  std::vector<std::string> escalated;
  for (const auto& r : stub.requests()) {
    EXPECT_EQ(r.target, "/officer") << r.body.substr(0, 200);
    escalated.push_back(nlohmann::json::parse(r.body)["event"]["id"]);
  }
  EXPECT_EQ(escalated, std::vector<std::string>{"01WAITING"});
  EXPECT_EQ(server.signal_and_wait(SIGTERM, 15s), 0);
  ASSERT_EQ(run_command("sqlite3 " + dir +
                            "/var/matthan.db \"SELECT event_id, to_channel FROM alert_escalation\"",
                        &out),
            0);
  EXPECT_EQ(out, "01WAITING|officer\n");
  if (!HasFailure()) std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace matthan::test
