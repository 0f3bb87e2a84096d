// The HTTP server (Boost.Beast on the runtime's io_context). Beast stays inside http_server.cpp:
// one translation unit costs ~22 s to compile, so handlers see only these plain types.
#pragma once

#include <cstdint>
#include <expected>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
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
  std::map<std::string, std::string> headers;  // lower-case names (only those handlers use)
  std::string body;
  std::string remote;  // the peer's address
  std::string user;    // set by the server's auth gate: who is asking (for the audit log)
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

// Called on the connection's strand; must not block.
using Handler = std::function<HttpResponse(const HttpRequest&)>;

// Thread-safe start/stop; connections live on strands of the io_context.
class HttpServer {
 public:
  HttpServer(boost::asio::io_context& io, Handler handler);
  ~HttpServer();
  // Binds and listens; returns the bound port (port 0 picks a free one).
  std::expected<int, std::string> start(const std::string& address, int port);
  void stop();

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

HttpResponse json_error(int status, const std::string& code, const std::string& message);

}  // namespace matthan::web
