// Accounts end to end against the real server: every /api route needs a session or token (401),
// roles gate footage and administration (403), state changes need the CSRF token, five failed
// logins lock the account from that address only for 5 minutes, API tokens work without
// cookies, and logins, failures and locks are in the audit log.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>
#include <sstream>

#include "child_process.hpp"

namespace matthan::test {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;
using Reply = HttpReply;

// A login sent from another loopback address (127.0.0.2): another source, as another phone
// would be. The answer's status code, 0 when the connection fails.
int login_from_other_address(int port, const std::string& user, const std::string& password) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return 0;
  sockaddr_in from{};
  from.sin_family = AF_INET;
  ::inet_pton(AF_INET, "127.0.0.2", &from.sin_addr);
  sockaddr_in to{};
  to.sin_family = AF_INET;
  to.sin_port = htons(static_cast<std::uint16_t>(port));
  ::inet_pton(AF_INET, "127.0.0.1", &to.sin_addr);
  int status = 0;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&from), sizeof from) == 0 &&
      ::connect(fd, reinterpret_cast<sockaddr*>(&to), sizeof to) == 0) {
    const std::string body = nlohmann::json{{"username", user}, {"password", password}}.dump();
    const std::string req =
        "POST /api/login HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        "Content-Type: application/json\r\nContent-Length: " +
        std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n" + body;
    if (::send(fd, req.data(), req.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(req.size())) {
      char buf[64] = {};
      timeval tv{10, 0};
      ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
      if (::recv(fd, buf, sizeof buf - 1, 0) > 12) status = std::atoi(buf + 9);
    }
  }
  ::close(fd);
  return status;
}

std::string login(int port, const std::string& user, const std::string& password, int* status) {
  return session_login(port, user, password, status);
}
Reply request(int port, const std::string& method, const std::string& path,
              const std::string& headers, const std::string& body = "") {
  return http_request(port, method, path, headers, body);
}
int run(const std::string& command, std::string* out = nullptr) {
  return run_command(command, out);
}

TEST(Auth, RolesSessionsCsrfLockoutAndTokens) {
  const auto dir = temp_dir("matthan-auth");
  const std::string cfg = dir + "/matthan.yaml";
  std::ofstream(cfg) << "node_id: auth-node\nserver: {listen: '127.0.0.1:0', data_dir: '" << dir
                     << "/var'}\nanalytics: {zmq_endpoint: '', people: false}\n"
                     << "cameras:\n  - {id: gate, main_url: 'rtsp://127.0.0.1:9/none'}\n";
  const std::string bin = binary_path("matthan");
  // No account exists and none is made by default: nobody can log in.
  ChildProcess server({bin, "run", "--config", cfg}, dir + "/server.log");
  const auto listening = server.wait_for_line("LISTENING ", 20s);
  ASSERT_TRUE(listening.has_value()) << read_file(dir + "/server.log");
  const int port = std::atoi(listening->substr(listening->rfind(':') + 1).c_str());
  int status = 0;
  EXPECT_EQ(login(port, "admin", "admin", &status), "");
  EXPECT_EQ(status, 401);

  // Without a session: every API route 401, the health check and the page open.
  for (const auto& [method, path] : std::vector<std::pair<std::string, std::string>>{
           {"GET", "/api/cameras"},
           {"GET", "/api/cameras/gate"},
           {"GET", "/api/events"},
           {"GET", "/api/cameras/gate/clip.mp4?from=now-1m&to=now"},
           {"GET", "/api/cameras/gate/recordings?from=now-1m&to=now"},
           {"GET", "/api/holds"},
           {"POST", "/api/holds"},
           {"GET", "/api/exports"},
           {"POST", "/api/exports"},
           {"GET", "/api/audit"},
           {"GET", "/api/storage"},
           {"GET", "/api/node/key"},
           {"GET", "/api/users"},
           {"GET", "/api/me"},
           {"POST", "/api/logout"},
           {"GET", "/api/cameras/gate/tune?clip=x.mp4"},
           {"GET", "/api/events/x/clip.mp4"}}) {
    EXPECT_EQ(request(port, method, path, "").status, 401) << method << " " << path;
  }
  EXPECT_EQ(request(port, "GET", "/healthz", "").status, 200);
  EXPECT_EQ(request(port, "GET", "/", "").status, 200);

  // Accounts from the CLI; a weak password is refused.
  std::string out;
  EXPECT_NE(
      run("printf 'short\\n' | " + bin + " user add weak --role viewer --config " + cfg, &out), 0);
  EXPECT_NE(out.find("10 characters"), std::string::npos) << out;
  for (const auto& [user, role] : std::vector<std::pair<std::string, std::string>>{
           {"an-ninh", "viewer"}, {"cong-an", "reviewer"}, {"quan-tri", "admin"}}) {
    ASSERT_EQ(run("printf 'Mat-khau-2026\\n' | " + bin + " user add " + user + " --role " + role +
                      " --config " + cfg,
                  &out),
              0)
        << out;
  }
  const auto viewer = login(port, "an-ninh", "Mat-khau-2026", &status);
  ASSERT_EQ(status, 200);
  EXPECT_NE(request(port, "POST", "/api/login", "",
                    json{{"username", "an-ninh"}, {"password", "Mat-khau-2026"}}.dump())
                .head.find("HttpOnly; SameSite=Strict"),
            std::string::npos);
  const auto reviewer = login(port, "cong-an", "Mat-khau-2026", &status);
  ASSERT_EQ(status, 200);
  const auto admin = login(port, "quan-tri", "Mat-khau-2026", &status);
  ASSERT_EQ(status, 200);

  // Roles: viewer sees cameras and events; reviewer footage, holds, exports; admin the rest.
  EXPECT_EQ(request(port, "GET", "/api/cameras", viewer).status, 200);
  EXPECT_EQ(request(port, "GET", "/api/events", viewer).status, 200);
  EXPECT_EQ(request(port, "GET", "/api/holds", viewer).status, 403);
  EXPECT_EQ(request(port, "GET", "/api/cameras/gate/clip.mp4?from=now-1m&to=now", viewer).status,
            403);
  EXPECT_EQ(request(port, "GET", "/api/holds", reviewer).status, 200);
  EXPECT_EQ(request(port, "GET", "/api/audit", reviewer).status, 403);
  EXPECT_EQ(request(port, "GET", "/api/users", reviewer).status, 403);
  EXPECT_EQ(request(port, "GET", "/api/audit", admin).status, 200);
  const auto me = request(port, "GET", "/api/me", reviewer);
  EXPECT_EQ(json::parse(me.body)["role"], "reviewer");

  // CSRF: a state change through the cookie without the token is refused.
  const std::string hold = json{
      {"cameras", {"gate"}},
      {"from", "now-10m"},
      {"to", "now"},
      {"reason", "Vụ việc 7"}}.dump();
  const std::string cookie_only = reviewer.substr(0, reviewer.find("X-CSRF-Token"));
  const auto no_csrf = request(port, "POST", "/api/holds", cookie_only, hold);
  EXPECT_EQ(no_csrf.status, 403);
  EXPECT_NE(no_csrf.body.find("csrf"), std::string::npos);
  EXPECT_EQ(request(port, "POST", "/api/holds", reviewer, hold).status, 201);

  // API token: no cookie, no CSRF; the audit log names its user.
  ASSERT_EQ(run(bin + " user token cong-an --label vms --config " + cfg, &out), 0) << out;
  const std::string bearer = "Authorization: Bearer " + out.substr(0, out.find('\n')) + "\r\n";
  EXPECT_EQ(request(port, "GET", "/api/holds", bearer).status, 200);
  EXPECT_EQ(request(port, "POST", "/api/holds", bearer, hold).status, 201);
  EXPECT_EQ(request(port, "GET", "/api/holds", "Authorization: Bearer mt_forged\r\n").status, 401);
  // Prometheus metrics: behind auth; every sample line is name{labels} value, every family typed.
  EXPECT_EQ(request(port, "GET", "/metrics", "").status, 401);
  const auto metrics = request(port, "GET", "/metrics", bearer);
  ASSERT_EQ(metrics.status, 200);
  EXPECT_NE(metrics.head.find("text/plain; version=0.0.4"), std::string::npos);
  EXPECT_NE(metrics.body.find("matthan_camera_up{camera=\"gate\",commune=\"\"} 0"),
            std::string::npos)
      << metrics.body;
  EXPECT_NE(metrics.body.find("# TYPE matthan_stream_reconnects_total counter"), std::string::npos);
  // Queue depths: the analysis queue and each consumer of a stream's packets (the recorder).
  EXPECT_NE(metrics.body.find("matthan_analysis_queue_frames{camera=\"gate\",commune=\"\"} 0"),
            std::string::npos);
  EXPECT_NE(metrics.body.find("matthan_queue_packets{camera=\"gate\",commune=\"\",stream=\"main\","
                              "queue=\"recorder\"} 0"),
            std::string::npos)
      << metrics.body;
  const std::regex sample(R"(^[a-zA-Z_:][a-zA-Z0-9_:]*(\{[^}]*\})? -?[0-9.e+-]+$)");
  std::istringstream lines(metrics.body);
  int samples = 0;
  for (std::string line; std::getline(lines, line);) {
    if (line.starts_with("# ")) continue;
    EXPECT_TRUE(std::regex_match(line, sample)) << line;
    ++samples;
  }
  EXPECT_GE(samples, 8);
  // The process's own figures agree with what the kernel says of it (a soak reads them).
  auto figure = [&](const std::string& name) {
    const auto at = metrics.body.find("\n" + name + " ");
    return at == std::string::npos ? -1.0 : std::atof(metrics.body.c_str() + at + name.size() + 2);
  };
  std::ifstream status_file("/proc/" + std::to_string(server.pid()) + "/status");
  const std::string proc_status((std::istreambuf_iterator<char>(status_file)), {});
  const double kernel_rss =
      std::atof(proc_status.c_str() + proc_status.find("VmRSS:") + 6) * 1024;  // kB
  const double rss = figure("process_resident_memory_bytes");
  EXPECT_GT(rss, 0.8 * kernel_rss) << metrics.body;
  EXPECT_LT(rss, 1.25 * kernel_rss) << metrics.body;
  EXPECT_GE(figure("matthan_process_threads"), 3);
  EXPECT_GE(figure("process_open_fds"), 4);  // stdio, the listening socket, the database
  const double in_use = figure("matthan_heap_in_use_bytes");
  EXPECT_GT(in_use, 100e3) << metrics.body;
  EXPECT_LT(in_use, rss) << metrics.body;
  EXPECT_GE(figure("matthan_heap_free_bytes"), 0) << metrics.body;

  // Lockout: five failures in 30 s lock the account from this address; the right password is
  // refused too until an admin unlocks it.
  for (int i = 0; i < 5; ++i) {
    login(port, "an-ninh", "wrong-password-" + std::to_string(i), &status);
    EXPECT_EQ(status, 401) << i;
  }
  login(port, "an-ninh", "Mat-khau-2026", &status);
  EXPECT_EQ(status, 429);
  // Locked from that address only: the owner logs in from their own (a stranger's guesses
  // cannot lock the police out).
  EXPECT_EQ(login_from_other_address(port, "an-ninh", "Mat-khau-2026"), 200);
  EXPECT_EQ(login_from_other_address(port, "an-ninh", "wrong-again"), 401);
  login(port, "cong-an", "Mat-khau-2026", &status);  // other accounts are not affected
  EXPECT_EQ(status, 200);
  EXPECT_EQ(request(port, "POST", "/api/users/an-ninh/unlock", admin).status, 200);
  login(port, "an-ninh", "Mat-khau-2026", &status);
  EXPECT_EQ(status, 200);

  // Logout ends the session.
  EXPECT_EQ(request(port, "POST", "/api/logout", viewer).status, 200);
  EXPECT_EQ(request(port, "GET", "/api/cameras", viewer).status, 401);
  EXPECT_EQ(request(port, "POST", "/api/login", "", "{not json").status, 400);

  // The audit log: logins, failures, the lock, holds by who made them; the chain holds.
  const auto audit = json::parse(request(port, "GET", "/api/audit?limit=1000", admin).body);
  EXPECT_TRUE(audit["chain_ok"].get<bool>());
  std::map<std::string, int> actions;
  std::set<std::string> hold_actors;
  for (const auto& a : audit["entries"]) {
    ++actions[a["action"].get<std::string>()];
    if (a["action"] == "hold") hold_actors.insert(a["actor"].get<std::string>());
  }
  EXPECT_GE(actions["login"], 4);
  EXPECT_GE(actions["login_failed"], 5);
  EXPECT_GE(actions["login_locked"], 1);
  EXPECT_EQ(actions["user_unlock"], 1);
  EXPECT_EQ(hold_actors, std::set<std::string>{"cong-an"});
  EXPECT_EQ(server.signal_and_wait(SIGTERM, 15s), 0);

  // `matthan audit verify`: the chain and the head the server signed at start; an edited row is
  // named.
  ASSERT_EQ(run(bin + " audit verify --config " + cfg, &out), 0) << out;
  EXPECT_NE(out.find("1 signed head(s) verified"), std::string::npos) << out;
  ASSERT_EQ(run("sqlite3 " + dir +
                    "/var/matthan.db \"UPDATE audit SET actor = 'someone' WHERE "
                    "action = 'login_failed' AND seq = (SELECT MIN(seq) FROM audit WHERE action = "
                    "'login_failed')\"",
                &out),
            0)
      << out;
  EXPECT_EQ(run(bin + " audit verify --config " + cfg, &out), 1);
  EXPECT_NE(out.find("FAIL: audit row"), std::string::npos) << out;
  if (!HasFailure()) std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace matthan::test
