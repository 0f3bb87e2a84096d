#include "http_stub.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <stdexcept>

namespace matthan::test {
namespace {

std::string lower(std::string_view s) {
  std::string out(s);
  for (auto& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::string trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) {
    s.remove_suffix(1);
  }
  return std::string(s);
}

const char* reason(int status) {
  switch (status) {
    case 200:
      return "OK";
    case 400:
      return "Bad Request";
    case 401:
      return "Unauthorized";
    case 403:
      return "Forbidden";
    case 404:
      return "Not Found";
    case 408:
      return "Request Timeout";
    case 429:
      return "Too Many Requests";
    case 500:
      return "Internal Server Error";
    case 502:
      return "Bad Gateway";
    case 503:
      return "Service Unavailable";
    default:
      return "Status";
  }
}

bool send_all(int fd, std::string_view data) {
  while (!data.empty()) {
    const ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n <= 0) return false;
    data.remove_prefix(static_cast<std::size_t>(n));
  }
  return true;
}

}  // namespace

std::string StubRequest::header(std::string_view name) const {
  const std::string key = lower(name);
  for (const auto& [k, v] : headers) {
    if (k == key) return v;
  }
  return {};
}

HttpStub::HttpStub(std::uint16_t port) : port_(port) {
  start();
}

HttpStub::~HttpStub() {
  stop();
}

std::string HttpStub::url() const {
  return "http://127.0.0.1:" + std::to_string(port_);
}

void HttpStub::start() {
  if (running_) return;
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) throw std::runtime_error("http stub: socket failed");
  const int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(port_);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || ::listen(fd, 64) != 0) {
    const std::string why = std::strerror(errno);
    ::close(fd);
    throw std::runtime_error("http stub: cannot listen on port " + std::to_string(port_) + ": " +
                             why);
  }
  socklen_t len = sizeof addr;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  port_ = ntohs(addr.sin_port);
  {
    std::lock_guard lock(mutex_);
    stopping_ = false;
  }
  listen_fd_ = fd;
  running_ = true;
  thread_ = std::thread([this, fd] { serve(fd); });
}

void HttpStub::stop() {
  if (!running_) return;
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  thread_.join();  // the server thread closes its sockets on the way out
  listen_fd_ = -1;
  running_ = false;
}

void HttpStub::script(std::vector<StubResponse> responses) {
  std::lock_guard lock(mutex_);
  for (auto& r : responses) script_.push_back(std::move(r));
}

void HttpStub::set_default(StubResponse response) {
  std::lock_guard lock(mutex_);
  default_ = std::move(response);
}

std::vector<StubRequest> HttpStub::requests() const {
  std::lock_guard lock(mutex_);
  return requests_;
}

std::size_t HttpStub::request_count() const {
  std::lock_guard lock(mutex_);
  return requests_.size();
}

bool HttpStub::wait_for_requests(std::size_t n, std::chrono::milliseconds timeout) const {
  std::unique_lock lock(mutex_);
  return cv_.wait_for(lock, timeout, [&] { return requests_.size() >= n; });
}

void HttpStub::serve(int listen_fd) {
  std::vector<int> held;  // connections of requests we never answer
  auto stopping = [&] {
    std::lock_guard lock(mutex_);
    return stopping_;
  };
  while (!stopping()) {
    pollfd p{listen_fd, POLLIN, 0};
    if (::poll(&p, 1, 20) <= 0) continue;
    const int fd = ::accept4(listen_fd, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) continue;
    if (handle(fd)) {
      ::close(fd);
    } else {
      held.push_back(fd);
    }
  }
  for (const int fd : held) ::close(fd);
  ::close(listen_fd);
}

bool HttpStub::handle(int fd) {
  const auto give_up_at = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  std::string buf;
  auto read_more = [&]() -> bool {
    for (;;) {
      {
        std::lock_guard lock(mutex_);
        if (stopping_) return false;
      }
      if (std::chrono::steady_clock::now() > give_up_at) return false;
      pollfd p{fd, POLLIN, 0};
      if (::poll(&p, 1, 20) <= 0) continue;
      char chunk[16384];
      const ssize_t n = ::recv(fd, chunk, sizeof chunk, 0);
      if (n <= 0) return false;
      buf.append(chunk, static_cast<std::size_t>(n));
      return true;
    }
  };

  std::size_t head_end;
  while ((head_end = buf.find("\r\n\r\n")) == std::string::npos) {
    if (!read_more()) return true;
  }
  StubRequest req;
  {
    std::string_view head(buf.data(), head_end);
    const auto line_end = head.find("\r\n");
    const std::string_view line = head.substr(0, line_end);
    const auto sp1 = line.find(' ');
    const auto sp2 = line.find(' ', sp1 + 1);
    req.method = std::string(line.substr(0, sp1));
    req.target = std::string(line.substr(sp1 + 1, sp2 - sp1 - 1));
    std::string_view rest = line_end == std::string_view::npos ? "" : head.substr(line_end + 2);
    while (!rest.empty()) {
      const auto e = rest.find("\r\n");
      const std::string_view h = rest.substr(0, e);
      if (const auto colon = h.find(':'); colon != std::string_view::npos) {
        req.headers.emplace_back(lower(trim(h.substr(0, colon))), trim(h.substr(colon + 1)));
      }
      rest = e == std::string_view::npos ? "" : rest.substr(e + 2);
    }
  }
  if (lower(req.header("expect")) == "100-continue") {
    send_all(fd, "HTTP/1.1 100 Continue\r\n\r\n");
  }
  std::size_t pos = head_end + 4;
  if (lower(req.header("transfer-encoding")).find("chunked") != std::string::npos) {
    for (;;) {
      std::size_t eol;
      while ((eol = buf.find("\r\n", pos)) == std::string::npos) {
        if (!read_more()) return true;
      }
      const std::size_t size = std::strtoul(buf.c_str() + pos, nullptr, 16);
      pos = eol + 2;
      if (size == 0) break;  // trailers are not used by our clients
      while (buf.size() < pos + size + 2) {
        if (!read_more()) return true;
      }
      req.body.append(buf, pos, size);
      pos += size + 2;
    }
  } else {
    const std::string cl = req.header("content-length");
    const std::size_t length = cl.empty() ? 0 : std::strtoul(cl.c_str(), nullptr, 10);
    while (buf.size() < pos + length) {
      if (!read_more()) return true;
    }
    req.body = buf.substr(pos, length);
  }
  req.at = std::chrono::steady_clock::now();

  StubResponse res;
  {
    std::lock_guard lock(mutex_);
    requests_.push_back(std::move(req));
    if (!script_.empty()) {
      res = std::move(script_.front());
      script_.pop_front();
    } else {
      res = default_;
    }
  }
  cv_.notify_all();
  if (res.hang) return false;

  std::string out = "HTTP/1.1 " + std::to_string(res.status) + " " + reason(res.status) + "\r\n";
  out += "Content-Type: " + res.content_type + "\r\n";
  out += "Content-Length: " + std::to_string(res.body.size()) + "\r\n";
  out += "Connection: close\r\n";
  for (const auto& [k, v] : res.headers) out += k + ": " + v + "\r\n";
  out += "\r\n";
  out += res.body;
  send_all(fd, out);
  return true;
}

}  // namespace matthan::test
