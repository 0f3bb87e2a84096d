// Test support: a tiny HTTP/1.1 server on 127.0.0.1 standing in for a webhook receiver, the
// Telegram Bot API or the Zalo OA API. Plain POSIX sockets, one thread, one request per
// connection ("Connection: close"). It records every request and answers from a script, and can
// be stopped and started again on the same port (a receiver that is down, then comes back).
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

namespace matthan::test {

struct StubRequest {
  std::string method;
  std::string target;
  std::vector<std::pair<std::string, std::string>> headers;  // names in lower case
  std::string body;
  std::chrono::steady_clock::time_point at;  // when the request was complete
  // Value of the first header with this name (any case), empty when missing.
  std::string header(std::string_view name) const;
};

struct StubResponse {
  int status = 200;
  std::string body = "{}";
  std::string content_type = "application/json";
  std::vector<std::pair<std::string, std::string>> headers{};
  bool hang = false;  // read the request and never answer (the connection stays open until stop)
};

// Thread-safe: the server thread owns the sockets; mutex_ guards the script, the default answer
// and the recorded requests.
class HttpStub {
 public:
  // Binds 127.0.0.1:port (0 picks a free port) and starts serving.
  explicit HttpStub(std::uint16_t port = 0);
  ~HttpStub();
  HttpStub(const HttpStub&) = delete;
  HttpStub& operator=(const HttpStub&) = delete;

  std::uint16_t port() const { return port_; }
  std::string url() const;  // "http://127.0.0.1:PORT"

  // Closes the listener and every open connection: clients now get "connection refused".
  void stop();
  // Serves again on the same port.
  void start();

  // Answers for the next requests, in order; when they run out the default answer is used.
  void script(std::vector<StubResponse> responses);
  void set_default(StubResponse response);

  std::vector<StubRequest> requests() const;
  std::size_t request_count() const;
  // Waits until at least n requests were recorded.
  bool wait_for_requests(std::size_t n, std::chrono::milliseconds timeout) const;

 private:
  void serve(int listen_fd);
  bool handle(int fd);  // false: keep the connection open (hang)

  std::uint16_t port_ = 0;
  int listen_fd_ = -1;
  std::thread thread_;
  bool running_ = false;  // touched by the test thread only (start/stop)

  mutable std::mutex mutex_;
  mutable std::condition_variable cv_;
  bool stopping_ = false;
  std::deque<StubResponse> script_;
  StubResponse default_;
  std::vector<StubRequest> requests_;
};

}  // namespace matthan::test
