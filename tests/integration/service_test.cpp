// Under systemd: the real server, a real notify socket. It says READY=1 once it listens, pings
// WATCHDOG=1 at half the watchdog interval, RELOADING=1 and READY=1 again across a restart in
// place, and STOPPING=1 when told to stop.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cctype>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "child_process.hpp"

namespace matthan::test {
namespace {

using namespace std::chrono_literals;

// Datagrams received within `timeout`, until one contains `want`.
std::string receive_until(int fd, const std::string& want, std::chrono::milliseconds timeout) {
  std::string all;
  const auto until = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < until && all.find(want) == std::string::npos) {
    timeval tv{0, 200'000};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    char buf[512];
    const auto n = recv(fd, buf, sizeof buf, 0);
    if (n > 0) all += std::string(buf, static_cast<std::size_t>(n)) + "\n";
  }
  return all;
}

TEST(Service, TellsSystemdItIsReadyPingsTheWatchdogAndSaysWhenItStops) {
  const auto dir = temp_dir("matthan-service");
  const std::string sock = dir + "/notify.sock";
  const int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(fd, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::snprintf(addr.sun_path, sizeof addr.sun_path, "%s", sock.c_str());
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  std::ofstream(dir + "/matthan.yaml")
      << "node_id: svc\nserver: {listen: '127.0.0.1:0', data_dir: '" << dir
      << "/var'}\nanalytics: {zmq_endpoint: '', people: false}\n"
      << "cameras:\n  - {id: gate, main_url: 'rtsp://127.0.0.1:9/none'}\n";
  // What systemd sets for a Type=notify unit with WatchdogSec=2.
  setenv("NOTIFY_SOCKET", sock.c_str(), 1);
  setenv("WATCHDOG_USEC", "2000000", 1);
  ChildProcess server({binary_path("matthan"), "run", "--config", dir + "/matthan.yaml"},
                      dir + "/server.log");
  unsetenv("NOTIFY_SOCKET");
  unsetenv("WATCHDOG_USEC");
  ASSERT_TRUE(server.wait_for_line("LISTENING ", 20s).has_value())
      << read_file(dir + "/server.log");
  const auto ready = receive_until(fd, "READY=1", 5s);
  EXPECT_NE(ready.find("READY=1"), std::string::npos) << ready;
  EXPECT_NE(ready.find("STATUS=1 camera(s) on http://127.0.0.1:"), std::string::npos) << ready;
  // Pings keep coming (every second here; the bound is loose: shared machines are slow).
  int pings = 0;
  const auto until = std::chrono::steady_clock::now() + 15s;
  while (pings < 3 && std::chrono::steady_clock::now() < until) {
    const auto got = receive_until(fd, "WATCHDOG=1", 3s);
    if (got.find("WATCHDOG=1") != std::string::npos) ++pings;
  }
  EXPECT_EQ(pings, 3);
  // `systemctl reload` (SIGHUP): RELOADING=1, then the same process starts again and says
  // READY=1 (the reload protocol), not STOPPING=1 (systemd would wait for it to exit).
  const int pid = server.pid();
  ASSERT_EQ(::kill(pid, SIGHUP), 0);
  const auto reload = receive_until(fd, "READY=1", 20s);
  EXPECT_NE(reload.find("RELOADING=1"), std::string::npos) << reload;
  EXPECT_EQ(reload.find("STOPPING=1"), std::string::npos) << reload;
  EXPECT_NE(reload.find("READY=1"), std::string::npos) << reload;
  EXPECT_LT(reload.find("RELOADING=1"), reload.find("READY=1")) << reload;
  ASSERT_TRUE(server.wait_for_line("LISTENING ", 20s).has_value())
      << read_file(dir + "/server.log");
  // Our child, never reaped, listens again under its own name: it re-executed itself.
  EXPECT_TRUE(server.running());
  EXPECT_EQ(read_file("/proc/" + std::to_string(pid) + "/comm").substr(0, 7), "matthan");
  EXPECT_EQ(server.signal_and_wait(SIGTERM, 15s), 0);
  const auto bye = receive_until(fd, "STOPPING=1", 2s);
  EXPECT_NE(bye.find("STOPPING=1"), std::string::npos) << bye;
  close(fd);
  std::filesystem::remove_all(dir);
}

// What a package check runs first: the version, and nothing else started.
TEST(Service, PrintsItsVersion) {
  std::string out;
  ASSERT_EQ(run_command(binary_path("matthan") + " --version", &out), 0) << out;
  EXPECT_EQ(out.rfind("matthan ", 0), 0u) << out;
  EXPECT_TRUE(out.size() > 8 && std::isdigit(static_cast<unsigned char>(out[8]))) << out;
}

}  // namespace
}  // namespace matthan::test
