// The HTTP server (Boost.Beast on the runtime's io_context). Beast stays inside http_server.cpp:
// one translation unit costs ~22 s to compile, so handlers see only these plain types.
#pragma once

#include <cstdint>
#include <expected>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

namespace boost::asio {
class io_context;
}

namespace matthan::web {

struct HttpRequest {
  std::string method;
  std::string target;  // path and query, as sent
  std::string path;    // decoded path without the query
  std::map<std::string, std::string> query;
  std::map<std::string, std::string> params;   // the route pattern's {name} segments
  std::map<std::string, std::string> headers;  // lower-case names (only those handlers use)
  std::string body;
  std::string remote;   // the peer's address
  bool secure = false;  // came over TLS
  bool head = false;    // a HEAD served by its GET handler: not a view, so not audited
  std::string user;     // set by the server's auth gate: who is asking (for the audit log)
  std::string role;     // set by the auth gate: viewer, reviewer or admin
  std::string csrf;     // set by the auth gate for cookie sessions
  // Set by the auth gate: the scope. A camera is in it when its commune is in `communes` or its
  // id in `cameras`; both empty means everything.
  std::vector<std::string> communes;
  std::vector<std::string> cameras;
  bool scoped() const { return !communes.empty() || !cameras.empty(); }
};

struct HttpResponse {
  HttpResponse() = default;
  HttpResponse(int status_code, std::string type, std::string content,
               std::vector<std::pair<std::string, std::string>> extra = {})
      : status(status_code),
        content_type(std::move(type)),
        body(std::move(content)),
        headers(std::move(extra)) {}
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;  // extra response headers
};

// Called on one of the server's worker threads when it has any (else on the connection's strand,
// and then it must not block); may be called from several threads at once.
using Handler = std::function<HttpResponse(const HttpRequest&)>;

// A WebSocket the server accepted. Thread-safe: send() may be called from any thread; messages
// go out in order on the connection's strand.
class WsChannel {
 public:
  virtual ~WsChannel() = default;
  virtual void send(std::shared_ptr<const std::string> message, bool binary) = 0;
  // Bytes handed to send() and not yet written to the socket: a slow client shows here.
  virtual std::size_t queued_bytes() const = 0;
  virtual void close() = 0;
  // Runs `work` on one of the server's io threads. Sends made from there queue on that thread
  // without waking others: one hand-off for a message to many sockets instead of one each.
  virtual void run_on_io(std::function<void()> work) = 0;
};

// What to do with an accepted WebSocket; each callback runs on the connection's strand.
struct WsAccept {
  std::function<void(const std::shared_ptr<WsChannel>&)> on_open;
  std::function<void(const std::string&)> on_message;  // text from the client
  std::function<void()> on_close;                      // once, however it ends
};

// For upgrade requests: an HTTP answer (refused) or the callbacks of the accepted socket.
using WsHandler = std::function<std::variant<HttpResponse, WsAccept>(const HttpRequest&)>;

// Thread-safe start/stop; connections live on strands of the io_context.
class HttpServer {
 public:
  // With `workers` > 0, HTTP handlers run on that many threads of the server's own, so a slow
  // one (a password hash, a clip cut) never holds the io threads that carry live video.
  // WebSocket upgrades are answered on the connection's strand.
  HttpServer(boost::asio::io_context& io, Handler handler, WsHandler ws_handler = {},
             int workers = 0);
  ~HttpServer();
  // Binds and listens; returns the bound port (port 0 picks a free one). With a certificate and
  // key (PEM files) every connection is TLS.
  std::expected<int, std::string> start(const std::string& address, int port,
                                        const std::string& tls_cert = "",
                                        const std::string& tls_key = "");
  void stop();

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

HttpResponse json_error(int status, const std::string& code, const std::string& message);

// One request read from raw bytes exactly as a connection reads it (the same parser limits: 16
// KiB of header, 1 MiB of body), as the handlers see it; nullopt with *error when the server
// would answer 400/413. For the fuzz targets (bench/fuzz) and tests.
std::optional<HttpRequest> parse_request(std::string_view raw, std::string* error = nullptr);

}  // namespace matthan::web
