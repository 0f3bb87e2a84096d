// Test support: a child process with pipes to its stdin and stdout, and a tiny HTTP client.
// Real processes, real sockets: tests talk to the real server and the real simulator.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <vector>

namespace matthan::test {

// Not thread-safe; owned by one test fixture.
class ChildProcess {
 public:
  // argv[0] is the program path. stderr goes to stderr_file (or is inherited when empty).
  ChildProcess(const std::vector<std::string>& argv, const std::string& stderr_file = "");
  ~ChildProcess();
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  int pid() const { return pid_; }
  // Next line of stdout, or nullopt on timeout/EOF.
  std::optional<std::string> read_line(std::chrono::milliseconds timeout);
  // Reads lines until one starts with prefix.
  std::optional<std::string> wait_for_line(const std::string& prefix,
                                           std::chrono::milliseconds timeout);
  bool write_line(const std::string& line);
  // Sends a signal and waits for exit; returns the exit status or -1 on timeout.
  int signal_and_wait(int sig, std::chrono::milliseconds timeout);
  bool running();

 private:
  int pid_ = -1;
  int stdin_fd_ = -1;
  int stdout_fd_ = -1;
  std::string buffer_;
  bool exited_ = false;
  int status_ = 0;
};

struct HttpResult {
  int status = 0;
  std::string body;
};

// GET on 127.0.0.1:port; status 0 when the connection fails.
HttpResult http_get(int port, const std::string& path,
                    std::chrono::milliseconds timeout = std::chrono::seconds(5));
// Sends raw bytes and returns the raw answer (for malformed-request tests).
std::string http_raw(int port, const std::string& request,
                     std::chrono::milliseconds timeout = std::chrono::seconds(5));

// Headers sent with every http_get (a session cookie and its CSRF token after login_admin), as
// "Name: value\r\n" lines; empty until set.
void set_default_headers(const std::string& lines);
const std::string& default_headers();
// Makes user `tester` (admin) with the CLI, if not made yet, logs in, and makes every later
// http_get carry the session. Empty on success, else what went wrong.
std::string login_admin(int port, const std::string& config_path);
// POST with a JSON body and the default headers.
HttpResult http_post(int port, const std::string& path, const std::string& json_body,
                     std::chrono::milliseconds timeout = std::chrono::seconds(30));

// Any request with extra header lines ("Name: value\r\n"); the status line's code, the head and
// the body. The connection is closed after one answer.
struct HttpReply {
  int status = 0;
  std::string head, body;
};
HttpReply http_request(int port, const std::string& method, const std::string& path,
                       const std::string& headers, const std::string& body = "",
                       std::chrono::milliseconds timeout = std::chrono::seconds(30));
// Logs in; the session's header lines (cookie and CSRF token), or "" (status says why).
std::string session_login(int port, const std::string& user, const std::string& password,
                          int* status);
// Runs a shell command; its exit code, its output (stdout and stderr) in *out.
int run_command(const std::string& command, std::string* out = nullptr);

// The build tree's binaries (set by CMake).
std::string binary_path(const std::string& name);
std::string temp_dir(const std::string& prefix);
std::string read_file(const std::string& path);

}  // namespace matthan::test
