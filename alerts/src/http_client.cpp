#include "http_client.hpp"

#include <charconv>
#include <cstdlib>
#include <stdexcept>

namespace matthan::alerts {
namespace {

constexpr std::size_t kMaxBody = 64 * 1024;  // answers we read are small JSON documents

std::size_t on_body(char* data, std::size_t size, std::size_t count, void* user) {
  auto* out = static_cast<std::string*>(user);
  const std::size_t n = size * count;
  if (out->size() < kMaxBody) out->append(data, std::min(n, kMaxBody - out->size()));
  return n;
}

// Frees what one request allocated, whichever way it ends.
struct RequestResources {
  curl_slist* headers = nullptr;
  curl_mime* mime = nullptr;
  ~RequestResources() {
    curl_slist_free_all(headers);
    curl_mime_free(mime);
  }
};

}  // namespace

std::int64_t steady_now_us() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

std::string url_host(const std::string& url) {
  std::string_view rest(url);
  if (const auto scheme = rest.find("://"); scheme != std::string_view::npos) {
    rest.remove_prefix(scheme + 3);
  }
  rest = rest.substr(0, rest.find_first_of("/?#"));
  if (const auto at = rest.rfind('@'); at != std::string_view::npos) rest.remove_prefix(at + 1);
  return std::string(rest);
}

HttpClient::HttpClient() {
  multi_ = curl_multi_init();
  easy_ = curl_easy_init();
  if (multi_ == nullptr || easy_ == nullptr) throw std::runtime_error("libcurl: out of memory");
  // A proxy cannot reach our loopback: keep the operator's no_proxy and add loopback to it.
  no_proxy_ = "localhost,127.0.0.1,::1";
  for (const char* var : {"no_proxy", "NO_PROXY"}) {
    if (const char* v = std::getenv(var); v != nullptr && *v != '\0') {
      no_proxy_ += ",";
      no_proxy_ += v;
      break;
    }
  }
}

HttpClient::~HttpClient() {
  curl_easy_cleanup(easy_);
  curl_multi_cleanup(multi_);
}

std::expected<HttpResponse, HttpFailure> HttpClient::post(
    const HttpRequest& req, const std::atomic<std::int64_t>& abort_at_steady_us) {
  const std::string host = url_host(req.url);
  CURL* e = easy_;
  curl_easy_reset(e);
  RequestResources res;
  HttpResponse response;
  char error[CURL_ERROR_SIZE] = {};

  const long timeout_ms = static_cast<long>(req.timeout.count());
  curl_easy_setopt(e, CURLOPT_URL, req.url.c_str());
  curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);  // worker threads: no SIGALRM for DNS timeouts
  curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, timeout_ms);
  curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, timeout_ms);
  curl_easy_setopt(e, CURLOPT_NOPROXY, no_proxy_.c_str());
  curl_easy_setopt(e, CURLOPT_USERAGENT, "matthan-alerts/1");
  curl_easy_setopt(e, CURLOPT_ERRORBUFFER, error);
  curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(e, CURLOPT_WRITEDATA, &response.body);

  // "Expect:" off: waiting for 100-continue costs a round trip and some receivers never send it.
  res.headers = curl_slist_append(res.headers, "Expect:");
  for (const auto& [name, value] : req.headers) {
    res.headers = curl_slist_append(res.headers, (name + ": " + value).c_str());
  }
  curl_easy_setopt(e, CURLOPT_HTTPHEADER, res.headers);

  if (!req.form.empty()) {
    res.mime = curl_mime_init(e);
    for (const auto& part : req.form) {
      curl_mimepart* p = curl_mime_addpart(res.mime);
      curl_mime_name(p, part.name.c_str());
      curl_mime_data(p, part.data.data(), part.data.size());
      if (!part.filename.empty()) curl_mime_filename(p, part.filename.c_str());
      if (!part.content_type.empty()) curl_mime_type(p, part.content_type.c_str());
    }
    curl_easy_setopt(e, CURLOPT_MIMEPOST, res.mime);
  } else {
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, req.body.data());
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(req.body.size()));
  }

  curl_multi_add_handle(multi_, e);
  CURLcode result = CURLE_OK;
  bool done = false;
  bool aborted = false;
  while (!done) {
    int running = 0;
    curl_multi_perform(multi_, &running);
    int left = 0;
    while (CURLMsg* m = curl_multi_info_read(multi_, &left)) {
      if (m->msg == CURLMSG_DONE && m->easy_handle == e) {
        result = m->data.result;
        done = true;
      }
    }
    if (done) break;
    if (steady_now_us() >= abort_at_steady_us.load()) {
      aborted = true;
      break;
    }
    curl_multi_poll(multi_, nullptr, 0, 50, nullptr);
  }
  curl_multi_remove_handle(multi_, e);

  if (aborted) {
    return std::unexpected(
        HttpFailure{HttpFailure::Kind::aborted, "stopped waiting for " + host + " at shutdown"});
  }
  if (result != CURLE_OK) {
    using K = HttpFailure::Kind;
    switch (result) {
      case CURLE_COULDNT_CONNECT:
        return std::unexpected(
            HttpFailure{K::connect, "cannot connect to " + host + " (refused or unreachable)"});
      case CURLE_COULDNT_RESOLVE_HOST:
      case CURLE_COULDNT_RESOLVE_PROXY:
        return std::unexpected(HttpFailure{K::connect, "cannot resolve the name of " + host});
      case CURLE_OPERATION_TIMEDOUT:
        return std::unexpected(HttpFailure{K::timeout, "no answer from " + host + " within " +
                                                           std::to_string(timeout_ms) + " ms"});
      case CURLE_GOT_NOTHING:
      case CURLE_RECV_ERROR:
      case CURLE_SEND_ERROR:
      case CURLE_PARTIAL_FILE:
        return std::unexpected(
            HttpFailure{K::transport, host + " closed the connection without a full answer"});
      case CURLE_URL_MALFORMAT:
      case CURLE_UNSUPPORTED_PROTOCOL:
        return std::unexpected(
            HttpFailure{K::invalid, "the channel URL is not a valid http(s) URL"});
      default:
        break;
    }
    // The error buffer names hosts and TLS problems, not paths; the caller masks secrets anyway.
    std::string detail = error[0] != '\0' ? std::string(error) : curl_easy_strerror(result);
    return std::unexpected(HttpFailure{K::transport, "request to " + host + " failed: " + detail});
  }

  long status = 0;
  curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
  response.status = static_cast<int>(status);
  curl_header* h = nullptr;
  if (curl_easy_header(e, "Retry-After", 0, CURLH_HEADER, -1, &h) == CURLHE_OK && h != nullptr) {
    std::string_view v(h->value);
    int secs = 0;
    const auto [ptr, ec] = std::from_chars(v.data(), v.data() + v.size(), secs);
    if (ec == std::errc() && secs >= 0) response.retry_after_s = secs;
  }
  return response;
}

}  // namespace matthan::alerts
