// The admin's management of accounts and cameras, against the real server (and, for cameras, the
// real simulator over RTSP): what an admin changes is checked, kept, audited, never leaks a
// password, and cameras added in the page record after the restart that applies them.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <chrono>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>

#include "child_process.hpp"

namespace matthan::test {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;

const std::string kPassword = "Mat-khau-2026";
const std::string kCameraSecret = "Cam-Secret-7781";

json body_of(const HttpReply& r) {
  return json::parse(r.body, nullptr, false);
}

int listening_port(ChildProcess& server, const std::string& log) {
  const auto line = server.wait_for_line("LISTENING ", 30s);
  EXPECT_TRUE(line.has_value()) << read_file(log);
  return line ? std::atoi(line->substr(line->rfind(':') + 1).c_str()) : 0;
}

void add_user(const std::string& cfg, const std::string& name, const std::string& args) {
  std::string out;
  ASSERT_EQ(run_command("printf '" + kPassword + "\\n' | " + binary_path("matthan") + " user add " +
                            name + " " + args + " --config " + cfg,
                        &out),
            0)
      << out;
}

TEST(Admin, AccountsChangeRoleScopeStateAndPasswordButNeverLoseTheLastAdmin) {
  const auto dir = temp_dir("matthan-admin-users");
  const auto cfg = dir + "/matthan.yaml";
  std::ofstream(cfg) << "node_id: admin-node\nserver: {listen: '127.0.0.1:0', data_dir: '" << dir
                     << "/var'}\nanalytics: {zmq_endpoint: '', people: false}\ncameras:\n"
                     << "  - {id: gate, commune: xa-a, main_url: 'rtsp://127.0.0.1:9/none'}\n"
                     << "  - {id: market, commune: xa-b, main_url: 'rtsp://127.0.0.1:9/none'}\n";
  add_user(cfg, "chief", "--role admin");
  add_user(cfg, "xa-admin", "--role admin --communes xa-a");
  add_user(cfg, "guard", "--role viewer --communes xa-a");
  ChildProcess server({binary_path("matthan"), "run", "--config", cfg}, dir + "/server.log");
  const int port = listening_port(server, dir + "/server.log");
  ASSERT_GT(port, 0);
  int st = 0;
  const auto chief = session_login(port, "chief", kPassword, &st);
  ASSERT_EQ(st, 200);
  auto guard = session_login(port, "guard", kPassword, &st);
  ASSERT_EQ(st, 200);
  auto patch = [&](const std::string& who, const std::string& headers, const json& body) {
    return http_request(port, "PATCH", "/api/users/" + who, headers, body.dump());
  };

  // Role and scope apply to the user's next request, without a new login.
  auto r = patch("guard", chief, {{"role", "reviewer"}, {"communes", {"xa-b"}}});
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(body_of(r)["role"], "reviewer");
  auto me = body_of(http_request(port, "GET", "/api/me", guard));
  EXPECT_EQ(me["role"], "reviewer");
  EXPECT_EQ(me["communes"], json({"xa-b"}));
  EXPECT_EQ(http_request(port, "GET", "/api/cameras/gate", guard).status, 403);
  EXPECT_EQ(http_request(port, "GET", "/api/cameras/market", guard).status, 200);
  EXPECT_EQ(http_request(port, "GET", "/api/holds", guard).status, 200);  // reviewer now

  // Disabled: the session ends at once and the password no longer logs in.
  r = patch("guard", chief, {{"disabled", true}});
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(body_of(r)["disabled"], true);
  EXPECT_EQ(http_request(port, "GET", "/api/me", guard).status, 401);
  session_login(port, "guard", kPassword, &st);
  EXPECT_EQ(st, 401);

  // Enabled again with a new password: the old one is refused, the new one works.
  const std::string fresh = "Mat-khau-moi-2027";
  r = patch("guard", chief, {{"disabled", false}, {"password", fresh}});
  ASSERT_EQ(r.status, 200) << r.body;
  session_login(port, "guard", kPassword, &st);
  EXPECT_EQ(st, 401);
  guard = session_login(port, "guard", fresh, &st);
  EXPECT_EQ(st, 200);

  // Refusals change nothing.
  EXPECT_EQ(patch("guard", chief, {{"password", "short"}}).status, 400);
  session_login(port, "guard", fresh, &st);
  EXPECT_EQ(st, 200) << "a refused weak password must leave the old one";
  EXPECT_EQ(patch("guard", chief, {{"role", "boss"}}).status, 400);
  EXPECT_EQ(patch("guard", chief, {{"username", "x"}}).status, 400);
  EXPECT_EQ(patch("guard", chief, json::object()).status, 400);
  EXPECT_EQ(http_request(port, "PATCH", "/api/users/guard", chief, "{not json").status, 400);
  EXPECT_EQ(patch("nobody", chief, {{"role", "viewer"}}).status, 404);
  // A commune's admin cannot change accounts (they could widen their own scope).
  const auto xa_admin = session_login(port, "xa-admin", kPassword, &st);
  ASSERT_EQ(st, 200);
  EXPECT_EQ(patch("xa-admin", xa_admin, {{"communes", json::array()}}).status, 403);
  EXPECT_EQ(http_request(port, "GET", "/api/admin/cameras", xa_admin).status, 403)
      << "every commune's camera hosts are not a commune admin's";
  // Emptying one list of a scoped user does not open everything by accident.
  r = patch("xa-admin", chief, {{"communes", json::array()}});
  EXPECT_EQ(r.status, 400) << r.body;
  EXPECT_EQ(body_of(r)["error"]["code"], "bad_scope");
  // A scope that changes closes nothing here, but it applies at once (see above).
  // The last admin of every commune stays: not demoted, scoped or disabled.
  for (const json& change :
       {json{{"role", "viewer"}}, json{{"communes", {"xa-a"}}}, json{{"disabled", true}}}) {
    r = patch("chief", chief, change);
    EXPECT_EQ(r.status, 409) << change.dump() << ": " << r.body;
    EXPECT_EQ(body_of(r)["error"]["code"], "last_admin");
  }
  EXPECT_EQ(http_request(port, "GET", "/api/me", chief).status, 200);
  // With a second admin of every commune, the first may step down.
  ASSERT_EQ(
      patch("xa-admin", chief, {{"communes", json::array()}, {"cameras", json::array()}}).status,
      200);
  EXPECT_EQ(patch("chief", chief, {{"role", "reviewer"}}).status, 200);
  EXPECT_EQ(http_request(port, "GET", "/api/users", chief).status, 403);

  // Every change is audited, the passwords never.
  const auto xa = session_login(port, "xa-admin", kPassword, &st);
  const auto audit = http_request(port, "GET", "/api/audit?limit=200", xa);
  ASSERT_EQ(audit.status, 200) << audit.body;
  int updates = 0;
  const auto entries = body_of(audit)["entries"];
  for (const auto& e : entries) updates += e["action"] == "user_update" ? 1 : 0;
  EXPECT_EQ(updates, 5) << audit.body;
  EXPECT_EQ(audit.body.find(fresh), std::string::npos) << "a password in the audit log";
  EXPECT_NE(audit.body.find("password_reset"), std::string::npos);
  EXPECT_EQ(server.signal_and_wait(SIGTERM, 15s), 0);
  EXPECT_EQ(read_file(dir + "/server.log").find(fresh), std::string::npos);
  std::filesystem::remove_all(dir);
}

class AdminCameras : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = temp_dir("matthan-admin-cams");
    camsim_ = std::make_unique<ChildProcess>(
        std::vector<std::string>{binary_path("matthan-camsim"), "--cameras", "2", "--duration", "6",
                                 "--seed", "5", "--auth", "cam2=admin:" + kCameraSecret, "--cache",
                                 dir_ + "/../matthan-it-cache"},
        dir_ + "/camsim.log");
    const auto line = camsim_->wait_for_line("CAMSIM ", 180s);
    ASSERT_TRUE(line.has_value()) << read_file(dir_ + "/camsim.log");
    base_ = line->substr(7);
    cfg_ = dir_ + "/matthan.yaml";
    std::ofstream(cfg_) << "node_id: admin-node\nserver: {listen: '127.0.0.1:0', data_dir: '"
                        << dir_ << "/var', heartbeat_s: 1}\n"
                        << "analytics: {zmq_endpoint: '', people: false}\n"
                        << "recording: {segment_s: 4}\ncameras:\n"
                        << "  - {id: cam1, commune: xa-it, main_url: '" << base_
                        << "/cam1/main', sub_url: '" << base_ << "/cam1/sub'}\n";
    add_user(cfg_, "chief", "--role admin");
    start();
  }
  void TearDown() override {
    if (server_) {
      EXPECT_EQ(server_->signal_and_wait(SIGTERM, 20s), 0);
    }
    if (!HasFailure()) std::filesystem::remove_all(dir_);
  }
  void start() {
    server_ = std::make_unique<ChildProcess>(
        std::vector<std::string>{binary_path("matthan"), "run", "--config", cfg_},
        dir_ + "/server.log");
    port_ = listening_port(*server_, dir_ + "/server.log");
    int st = 0;
    chief_ = session_login(port_, "chief", kPassword, &st);
    ASSERT_EQ(st, 200);
  }
  // POST /api/admin/restart: the same process starts again (a new port: listen is :0).
  void restart() {
    const int pid = server_->pid();
    const auto r = http_request(port_, "POST", "/api/admin/restart", chief_, R"({"confirm":true})");
    ASSERT_EQ(r.status, 202) << r.body;
    port_ = listening_port(*server_, dir_ + "/server.log");
    ASSERT_GT(port_, 0);
    // The same process (our child, never reaped) listens again: it re-executed itself.
    EXPECT_TRUE(server_->running());
    EXPECT_EQ(read_file("/proc/" + std::to_string(pid) + "/comm").substr(0, 7), "matthan");
    // Sessions are in the database: the admin stays logged in across the restart.
    EXPECT_EQ(http_request(port_, "GET", "/api/me", chief_).status, 200);
  }
  json cameras() { return body_of(http_request(port_, "GET", "/api/cameras", chief_))["cameras"]; }
  std::string state_of(const std::string& id) {
    for (const auto& c : cameras()) {
      if (c["id"] == id) return c["state"];
    }
    return "(absent)";
  }
  bool wait_state(const std::string& id, const std::string& state, std::chrono::seconds limit) {
    const auto until = std::chrono::steady_clock::now() + limit;
    while (std::chrono::steady_clock::now() < until) {
      if (state_of(id) == state) return true;
      std::this_thread::sleep_for(250ms);
    }
    return false;
  }

  std::string dir_, cfg_, base_, chief_;
  int port_ = 0;
  std::unique_ptr<ChildProcess> camsim_, server_;
};

TEST_F(AdminCameras, AddedChangedAndRemovedInThePageApplyAfterARestartAndKeepTheirFootage) {
  ASSERT_TRUE(wait_state("cam1", "online", 30s)) << read_file(dir_ + "/server.log");
  auto post = [&](const json& body) {
    return http_request(port_, "POST", "/api/admin/cameras", chief_, body.dump());
  };
  // Mistakes answer with the config's own message and change nothing.
  auto r = post({{"id", "Cổng Chợ"}, {"main_url", base_ + "/cam2/main"}});
  EXPECT_EQ(r.status, 400);
  EXPECT_NE(r.body.find(".id"), std::string::npos) << r.body;
  r = post({{"id", "cam2"}, {"main_url", "http://127.0.0.1/cam2"}});
  EXPECT_EQ(r.status, 400);
  EXPECT_NE(r.body.find("main_url"), std::string::npos) << r.body;
  EXPECT_EQ(post({{"id", "cam1"}, {"main_url", base_ + "/cam1/main"}}).status, 409);
  EXPECT_EQ(post({{"id", "cam2"}, {"masks", json::array()}}).status, 400);
  EXPECT_EQ(post({{"id", "cam2"}, {"main_url", "${HOME}"}}).status, 400);

  // A password-protected camera added in the page: the password is kept but never shown.
  r = post({{"id", "cam2"},
            {"name", "Cổng chợ"},
            {"commune", "xa-it"},
            {"hamlet", "ap-2"},
            {"main_url", base_ + "/cam2/main"},
            {"sub_url", base_ + "/cam2/sub"},
            {"username", "admin"},
            {"password", kCameraSecret}});
  ASSERT_EQ(r.status, 201) << r.body;
  EXPECT_EQ(body_of(r)["password_set"], true);
  EXPECT_EQ(body_of(r)["restart_needed"], true);
  EXPECT_EQ(r.body.find(kCameraSecret), std::string::npos) << r.body;
  // A URL typed with its credentials: kept, but shown and audited without them.
  r = http_request(
      port_, "PATCH", "/api/admin/cameras/cam2", chief_,
      json{{"main_url", "rtsp://admin:" + kCameraSecret + "@" + base_.substr(7) + "/cam2/main"}}
          .dump());
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.body.find(kCameraSecret), std::string::npos) << r.body;
  // cam1 disabled in the same batch of edits.
  r = http_request(port_, "PATCH", "/api/admin/cameras/cam1", chief_, R"({"enabled": false})");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(http_request(port_, "PATCH", "/api/admin/cameras/nope", chief_, "{}").status, 404);
  auto list = http_request(port_, "GET", "/api/admin/cameras", chief_);
  ASSERT_EQ(list.status, 200);
  EXPECT_EQ(body_of(list)["restart_needed"], true);
  EXPECT_EQ(list.body.find(kCameraSecret), std::string::npos) << list.body;
  // Until the restart, the running cameras are as they were.
  EXPECT_EQ(state_of("cam2"), "(absent)");
  EXPECT_EQ(state_of("cam1"), "online");
  // The edits are kept beside the database, readable by the server's user only.
  struct stat sb {};
  ASSERT_EQ(::stat((dir_ + "/var/inventory.json").c_str(), &sb), 0);
  EXPECT_EQ(sb.st_mode & 077, 0u) << "inventory.json holds camera passwords";
  EXPECT_EQ(http_request(port_, "POST", "/api/admin/restart", chief_, "{}").status, 400);

  ASSERT_NO_FATAL_FAILURE(restart());
  EXPECT_TRUE(wait_state("cam2", "online", 30s))
      << "the added camera (with its password) did not come online: " << state_of("cam2") << "\n"
      << read_file(dir_ + "/server.log");
  EXPECT_EQ(state_of("cam1"), "disabled");
  list = http_request(port_, "GET", "/api/admin/cameras", chief_);
  EXPECT_EQ(body_of(list)["restart_needed"], false) << list.body;
  // Let cam2 record a segment, then take it out: its footage stays.
  std::this_thread::sleep_for(6s);
  r = http_request(port_, "DELETE", "/api/admin/cameras/cam2", chief_);
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(body_of(r)["removed_until_restart"], json({"cam2"}));
  ASSERT_NO_FATAL_FAILURE(restart());
  EXPECT_EQ(state_of("cam2"), "(absent)");
  std::string out;
  ASSERT_EQ(run_command("sqlite3 -cmd '.timeout 5000' " + dir_ +
                            "/var/matthan.db \"SELECT COUNT(*) FROM segment WHERE camera_id ="
                            " 'cam2' AND end_us > start_us\"",
                        &out),
            0)
      << out;
  EXPECT_GE(std::atoi(out.c_str()), 1) << "cam2's recordings were kept";
  // ...and stay reachable for review and export until retention takes them.
  const auto rec =
      http_request(port_, "GET", "/api/cameras/cam2/recordings?from=now-10m&to=now", chief_);
  ASSERT_EQ(rec.status, 200) << rec.body;
  EXPECT_GE(body_of(rec)["segments"].size(), 1u) << rec.body;
  // The overlay keeps it as taken out today, for the reports of the days it served.
  const auto overlay = json::parse(read_file(dir_ + "/var/inventory.json"), nullptr, false);
  EXPECT_EQ(overlay["cameras"]["cam2"]["removed"], true) << overlay.dump();
  EXPECT_TRUE(overlay["cameras"]["cam2"].contains("removed_on")) << overlay.dump();

  // Audited, and the camera's password is in no answer, audit entry or log line.
  const auto audit = http_request(port_, "GET", "/api/audit?limit=200", chief_);
  for (const std::string action :
       {"camera_add", "camera_update", "camera_remove", "server_restart"}) {
    EXPECT_NE(audit.body.find("\"" + action + "\""), std::string::npos) << action;
  }
  EXPECT_EQ(audit.body.find(kCameraSecret), std::string::npos);
  EXPECT_EQ(read_file(dir_ + "/server.log").find(kCameraSecret), std::string::npos);
}

}  // namespace
}  // namespace matthan::test
