// A small blocking HTTP POST client over libcurl, private to alerts/: one per channel worker,
// so a receiver that hangs only holds its own channel. A request ends on an answer, its own
// timeout, or when the caller's abort deadline (close()) passes.
#pragma once

#include <curl/curl.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <expected>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace matthan::alerts {

struct FormPart {
  std::string name;
  std::string data;
  std::string filename;      // non-empty: sent as a file
  std::string content_type;  // e.g. image/jpeg; empty for plain fields
};

struct HttpRequest {
  std::string url;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;            // sent as is unless form is set
  std::vector<FormPart> form;  // non-empty: multipart/form-data
  std::chrono::milliseconds timeout{5000};
};

struct HttpResponse {
  int status = 0;
  std::string body;                  // the first 64 KiB
  std::optional<int> retry_after_s;  // Retry-After header, in seconds
};

struct HttpFailure {
  // Everything but `invalid` may get better by itself, so it is retried.
  enum class Kind { connect, timeout, aborted, transport, invalid };
  Kind kind = Kind::transport;
  std::string message;  // plain words with host and port, never the URL path
};

// Not thread-safe: owned by one channel worker thread.
class HttpClient {
 public:
  HttpClient();
  ~HttpClient();
  HttpClient(const HttpClient&) = delete;
  HttpClient& operator=(const HttpClient&) = delete;

  // abort_at_steady_us: a steady_clock instant (µs) after which the request is abandoned;
  // read on every poll round (≤ 50 ms) so close() takes effect while a request hangs.
  std::expected<HttpResponse, HttpFailure> post(
      const HttpRequest& request, const std::atomic<std::int64_t>& abort_at_steady_us);

 private:
  CURLM* multi_ = nullptr;  // keeps connections alive between requests
  CURL* easy_ = nullptr;
  std::string no_proxy_;
};

// "host:port" of a URL for messages: never the path, where Telegram puts its bot token.
std::string url_host(const std::string& url);

std::int64_t steady_now_us();

}  // namespace matthan::alerts
