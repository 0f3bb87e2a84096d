#include "child_process.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#ifndef MATTHAN_BIN_DIR
#error "MATTHAN_BIN_DIR must be defined"
#endif

namespace matthan::test {

ChildProcess::ChildProcess(const std::vector<std::string>& argv, const std::string& stderr_file) {
  int in_pipe[2];
  int out_pipe[2];
  if (pipe(in_pipe) != 0 || pipe(out_pipe) != 0) return;
  pid_ = fork();
  if (pid_ == 0) {
    dup2(in_pipe[0], STDIN_FILENO);
    dup2(out_pipe[1], STDOUT_FILENO);
    if (!stderr_file.empty()) {
      const int fd = open(stderr_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      if (fd >= 0) dup2(fd, STDERR_FILENO);
    }
    close(in_pipe[1]);
    close(out_pipe[0]);
    // The test runner may block signals; the child must see SIGTERM.
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    execv(args[0], args.data());
    _exit(127);
  }
  close(in_pipe[0]);
  close(out_pipe[1]);
  stdin_fd_ = in_pipe[1];
  stdout_fd_ = out_pipe[0];
}

ChildProcess::~ChildProcess() {
  if (running()) signal_and_wait(SIGKILL, std::chrono::seconds(5));
  if (stdin_fd_ >= 0) close(stdin_fd_);
  if (stdout_fd_ >= 0) close(stdout_fd_);
}

bool ChildProcess::running() {
  if (pid_ <= 0 || exited_) return false;
  int status = 0;
  if (waitpid(pid_, &status, WNOHANG) == pid_) {
    exited_ = true;
    status_ = status;
    return false;
  }
  return true;
}

std::optional<std::string> ChildProcess::read_line(std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    const auto nl = buffer_.find('\n');
    if (nl != std::string::npos) {
      std::string line = buffer_.substr(0, nl);
      buffer_.erase(0, nl + 1);
      return line;
    }
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return std::nullopt;
    pollfd pfd{stdout_fd_, POLLIN, 0};
    if (poll(&pfd, 1, static_cast<int>(left.count())) <= 0) continue;
    char buf[4096];
    const ssize_t n = read(stdout_fd_, buf, sizeof buf);
    if (n <= 0) return std::nullopt;
    buffer_.append(buf, static_cast<std::size_t>(n));
  }
}

std::optional<std::string> ChildProcess::wait_for_line(const std::string& prefix,
                                                       std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    auto line = read_line(std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now()));
    if (!line) return std::nullopt;
    if (line->rfind(prefix, 0) == 0) return line;
  }
  return std::nullopt;
}

bool ChildProcess::write_line(const std::string& line) {
  const std::string data = line + "\n";
  return write(stdin_fd_, data.data(), data.size()) == static_cast<ssize_t>(data.size());
}

int ChildProcess::signal_and_wait(int sig, std::chrono::milliseconds timeout) {
  if (pid_ <= 0) return -1;
  if (!exited_) kill(pid_, sig);
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!exited_ && std::chrono::steady_clock::now() < deadline) {
    if (!running()) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  if (!exited_) return -1;
  return WIFEXITED(status_) ? WEXITSTATUS(status_) : 128 + WTERMSIG(status_);
}

namespace {
int connect_local(int port, std::chrono::milliseconds timeout) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<std::uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  timeval tv{static_cast<time_t>(timeout.count() / 1000),
             static_cast<suseconds_t>((timeout.count() % 1000) * 1000)};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}
}  // namespace

std::string http_raw(int port, const std::string& request, std::chrono::milliseconds timeout) {
  const int fd = connect_local(port, timeout);
  if (fd < 0) return "";
  send(fd, request.data(), request.size(), MSG_NOSIGNAL);
  std::string out;
  char buf[8192];
  for (;;) {
    const ssize_t n = recv(fd, buf, sizeof buf, 0);
    if (n <= 0) break;
    out.append(buf, static_cast<std::size_t>(n));
  }
  close(fd);
  return out;
}

namespace {
std::string& default_header_lines() {
  static std::string lines;
  return lines;
}
}  // namespace

void set_default_headers(const std::string& lines) {
  default_header_lines() = lines;
}

const std::string& default_headers() {
  return default_header_lines();
}

HttpReply http_request(int port, const std::string& method, const std::string& path,
                       const std::string& headers, const std::string& body,
                       std::chrono::milliseconds timeout) {
  const std::string raw = http_raw(
      port,
      method + " " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\n" + headers +
          (body.empty() ? "" : "Content-Type: application/json\r\n") +
          "Content-Length: " + std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n" + body,
      timeout);
  HttpReply r;
  if (raw.size() < 12) return r;
  r.status = std::atoi(raw.substr(9, 3).c_str());
  const auto end = raw.find("\r\n\r\n");
  r.head = raw.substr(0, end);
  if (end != std::string::npos) r.body = raw.substr(end + 4);
  return r;
}

std::string session_login(int port, const std::string& user, const std::string& password,
                          int* status) {
  const auto r = http_request(port, "POST", "/api/login", "",
                              nlohmann::json{{"username", user}, {"password", password}}.dump());
  *status = r.status;
  const auto at = r.head.find("Set-Cookie: ");
  if (r.status != 200 || at == std::string::npos) return "";
  const auto value = r.head.substr(at + 12, r.head.find(';', at) - at - 12);
  return "Cookie: " + value +
         "\r\nX-CSRF-Token: " + nlohmann::json::parse(r.body)["csrf"].get<std::string>() + "\r\n";
}

int run_command(const std::string& command, std::string* out) {
  std::FILE* p = ::popen((command + " 2>&1").c_str(), "r");
  char buf[512];
  std::string text;
  while (std::fgets(buf, sizeof buf, p) != nullptr) text += buf;
  const int status = ::pclose(p);
  if (out != nullptr) *out = text;
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

HttpResult http_post(int port, const std::string& path, const std::string& json_body,
                     std::chrono::milliseconds timeout) {
  const std::string raw = http_raw(port,
                                   "POST " + path +
                                       " HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: "
                                       "application/json\r\nContent-Length: " +
                                       std::to_string(json_body.size()) + "\r\n" +
                                       default_headers() + "Connection: close\r\n\r\n" + json_body,
                                   timeout);
  HttpResult result;
  if (raw.size() < 12) return result;
  result.status = std::atoi(raw.substr(9, 3).c_str());
  const auto body = raw.find("\r\n\r\n");
  if (body != std::string::npos) result.body = raw.substr(body + 4);
  return result;
}

std::string login_admin(int port, const std::string& config_path) {
  const std::string password = "Test-Passw0rd!";
  const std::string add = "printf '%s\\n' '" + password + "' | '" + binary_path("matthan") +
                          "' user add tester --role admin --config '" + config_path +
                          "' >/dev/null 2>&1";
  (void)std::system(add.c_str());  // fails harmlessly when tester exists already
  set_default_headers("");
  const std::string body = "{\"username\": \"tester\", \"password\": \"" + password + "\"}";
  const std::string raw =
      http_raw(port,
               "POST /api/login HTTP/1.1\r\nHost: 127.0.0.1\r\n"
               "Content-Type: application/json\r\nContent-Length: " +
                   std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n" + body,
               std::chrono::seconds(30));
  const auto cookie_at = raw.find("Set-Cookie: matthan_session=");
  const auto csrf_at = raw.find("\"csrf\":\"");
  if (cookie_at == std::string::npos || csrf_at == std::string::npos) return "login failed: " + raw;
  const auto value_at = cookie_at + std::string("Set-Cookie: ").size();
  const std::string cookie = raw.substr(value_at, raw.find(';', value_at) - value_at);
  const auto csrf_from = csrf_at + 8;
  const std::string csrf = raw.substr(csrf_from, raw.find('"', csrf_from) - csrf_from);
  set_default_headers("Cookie: " + cookie + "\r\nX-CSRF-Token: " + csrf + "\r\n");
  return "";
}

HttpResult http_get(int port, const std::string& path, std::chrono::milliseconds timeout) {
  const std::string raw = http_raw(port,
                                   "GET " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\n" +
                                       default_headers() + "Connection: close\r\n\r\n",
                                   timeout);
  HttpResult result;
  if (raw.size() < 12) return result;
  result.status = std::atoi(raw.substr(9, 3).c_str());
  const auto body = raw.find("\r\n\r\n");
  if (body != std::string::npos) result.body = raw.substr(body + 4);
  return result;
}

std::string binary_path(const std::string& name) {
  return std::string(MATTHAN_BIN_DIR) + "/" + name;
}

std::string temp_dir(const std::string& prefix) {
  std::string tmpl = (std::filesystem::temp_directory_path() / (prefix + "-XXXXXX")).string();
  std::vector<char> buf(tmpl.begin(), tmpl.end());
  buf.push_back('\0');
  if (mkdtemp(buf.data()) == nullptr) return {};
  return buf.data();
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace matthan::test
