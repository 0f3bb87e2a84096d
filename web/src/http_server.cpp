// Beast HTTP/1.1 server: one listener, one session object per connection on its own strand,
// bounded request size, idle timeout, keep-alive. Bad requests get a JSON error, never a crash.
#include "matthan/web/http_server.hpp"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <spdlog/spdlog.h>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <boost/beast/websocket.hpp>
#include <boost/beast/websocket/ssl.hpp>
#include <nlohmann/json.hpp>

#include <atomic>
#include <deque>

namespace matthan::web {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
namespace ssl = asio::ssl;
using TlsStream = beast::ssl_stream<beast::tcp_stream>;
using tcp = asio::ip::tcp;

HttpResponse json_error(int status, const std::string& code, const std::string& message) {
  nlohmann::json body{{"error", {{"code", code}, {"message", message}}}};
  // Messages quote what the client sent, which may not be UTF-8.
  return {status, "application/json",
          body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace)};
}

namespace {

std::string url_decode(std::string_view in) {
  std::string out;
  for (std::size_t i = 0; i < in.size(); ++i) {
    if (in[i] == '%' && i + 2 < in.size() && std::isxdigit(static_cast<unsigned char>(in[i + 1])) &&
        std::isxdigit(static_cast<unsigned char>(in[i + 2]))) {
      out += static_cast<char>(std::stoi(std::string(in.substr(i + 1, 2)), nullptr, 16));
      i += 2;
    } else if (in[i] == '+') {
      out += ' ';
    } else {
      out += in[i];
    }
  }
  return out;
}

HttpRequest to_request(const http::request<http::string_body>& req) {
  HttpRequest out;
  out.method = std::string(req.method_string());
  out.target = std::string(req.target());
  const auto q = out.target.find('?');
  out.path = url_decode(out.target.substr(0, q));
  if (q != std::string::npos) {
    std::string_view rest(out.target);
    rest.remove_prefix(q + 1);
    while (!rest.empty()) {
      const auto amp = rest.find('&');
      const auto pair = rest.substr(0, amp);
      const auto eq = pair.find('=');
      out.query[url_decode(pair.substr(0, eq))] =
          eq == std::string_view::npos ? "" : url_decode(pair.substr(eq + 1));
      if (amp == std::string_view::npos) break;
      rest.remove_prefix(amp + 1);
    }
  }
  for (const auto field : {http::field::range, http::field::if_range, http::field::cookie,
                           http::field::authorization}) {
    if (auto it = req.find(field); it != req.end()) {
      std::string name(it->name_string());
      for (auto& ch : name) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
      out.headers[name] = std::string(it->value());
    }
  }
  if (auto it = req.find("X-CSRF-Token"); it != req.end()) {
    out.headers["x-csrf-token"] = std::string(it->value());
  }
  if (auto it = req.find(http::field::origin); it != req.end())
    out.headers["origin"] = std::string(it->value());
  if (auto it = req.find(http::field::host); it != req.end())
    out.headers["host"] = std::string(it->value());
  out.body = req.body();
  return out;
}

}  // namespace

std::optional<HttpRequest> parse_request(std::string_view raw, std::string* error) {
  http::request_parser<http::string_body> parser;
  parser.body_limit(1 << 20);
  parser.header_limit(16 << 10);
  parser.eager(true);
  beast::error_code ec;
  std::size_t used = 0;
  while (used < raw.size() && !parser.is_done()) {
    const std::size_t n = parser.put(asio::buffer(raw.data() + used, raw.size() - used), ec);
    if (ec == http::error::need_more) break;
    if (ec) {
      if (error != nullptr) *error = ec.message();
      return std::nullopt;
    }
    if (n == 0) break;
    used += n;
  }
  if (!parser.is_done()) {
    if (error != nullptr) *error = "incomplete request";
    return std::nullopt;
  }
  return to_request(parser.get());
}

namespace {

// An accepted WebSocket: its own strand (the HTTP session's), a write queue, a read loop for the
// client's text messages. Lives as long as the socket or a holder of its channel.
template <class Stream>
class WsSession : public WsChannel, public std::enable_shared_from_this<WsSession<Stream>> {
 public:
  WsSession(Stream stream, WsAccept accept)
      : ws_(std::move(stream)), accept_(std::move(accept)), cut_(ws_.get_executor()) {}
  using std::enable_shared_from_this<WsSession<Stream>>::shared_from_this;

  void start(http::request<http::string_body> req) {
    beast::get_lowest_layer(ws_).expires_never();
    // At most 32 KiB not yet sent may sit in the kernel: what a slow client has not taken waits
    // in our queue, where the live view sees it and skips ahead, instead of seconds of video
    // hiding in an autotuned send buffer (up to 4 MiB). Data in flight is not limited, so fast
    // links keep their throughput.
    const int lowat = 32 << 10;
    ::setsockopt(beast::get_lowest_layer(ws_).socket().native_handle(), IPPROTO_TCP,
                 TCP_NOTSENT_LOWAT, &lowat, sizeof lowat);
    ws_.set_option(websocket::stream_base::timeout::suggested(beast::role_type::server));
    ws_.set_option(websocket::stream_base::decorator(
        [](websocket::response_type& res) { res.set(http::field::server, "matthan"); }));
    ws_.read_message_max(64 << 10);
    ws_.async_accept(req, [self = shared_from_this()](beast::error_code ec) {
      if (ec) {
        self->finish();
        return;
      }
      self->open_ = true;
      if (self->accept_.on_open) self->accept_.on_open(self);
      self->read();
    });
  }

  void send(std::shared_ptr<const std::string> message, bool binary) override {
    queued_ += message->size();
    // defer: from an io thread (run_on_io) the strand's work stays on this thread's queue.
    asio::defer(ws_.get_executor(), [self = shared_from_this(), message, binary] {
      if (self->closed_) {
        self->queued_ -= message->size();
        return;
      }
      self->out_.emplace_back(message, binary);
      if (self->out_.size() == 1) self->write_next();
    });
  }
  std::size_t queued_bytes() const override { return queued_.load(); }
  void run_on_io(std::function<void()> work) override {
    auto& ctx = asio::query(ws_.get_executor(), asio::execution::context);
    asio::post(static_cast<asio::io_context&>(ctx), std::move(work));
  }
  void close() override {
    asio::post(ws_.get_executor(), [self = shared_from_this()] {
      if (self->closed_ || self->closing_ || !self->open_) return;
      self->closing_ = true;
      self->ws_.async_close(websocket::close_code::normal,
                            [self](beast::error_code) { self->finish(); });
      // A peer that never answers the close frame is cut off.
      self->cut_.expires_after(std::chrono::seconds(2));
      self->cut_.async_wait([self](beast::error_code ec) {
        if (ec || self->closed_) return;
        beast::error_code ignored;
        beast::get_lowest_layer(self->ws_).socket().close(ignored);
      });
    });
  }

 private:
  void read() {
    ws_.async_read(in_, [self = shared_from_this()](beast::error_code ec, std::size_t) {
      if (ec) {
        self->finish();
        return;
      }
      if (self->ws_.got_text() && self->accept_.on_message)
        self->accept_.on_message(beast::buffers_to_string(self->in_.data()));
      self->in_.consume(self->in_.size());
      self->read();
    });
  }
  void write_next() {
    // The handler holds the message: finish() may clear out_ while this write is in flight.
    const auto message = out_.front().first;
    ws_.binary(out_.front().second);
    ws_.async_write(asio::buffer(*message),
                    [self = shared_from_this(), message](beast::error_code ec, std::size_t) {
                      if (self->closed_) return;  // finish() emptied out_ and its count
                      self->queued_ -= message->size();
                      self->out_.pop_front();
                      if (ec) {
                        self->finish();
                        return;
                      }
                      if (!self->out_.empty()) self->write_next();
                    });
  }
  void finish() {
    if (closed_) return;
    closed_ = true;
    cut_.cancel();
    for (const auto& m : out_) queued_ -= m.first->size();
    out_.clear();
    if (accept_.on_close) accept_.on_close();
    beast::error_code ignored;
    beast::get_lowest_layer(ws_).socket().close(ignored);
  }

  websocket::stream<Stream> ws_;
  WsAccept accept_;
  beast::flat_buffer in_;
  std::deque<std::pair<std::shared_ptr<const std::string>, bool>> out_;  // strand only
  std::atomic<std::size_t> queued_{0};
  asio::steady_timer cut_;  // strand only
  bool open_ = false;       // strand only
  bool closing_ = false;    // strand only: a close frame is on its way
  bool closed_ = false;     // strand only
};

// One connection, plain TCP or TLS (Stream), on its own strand.
template <class Stream>
class Session : public std::enable_shared_from_this<Session<Stream>> {
 public:
  using std::enable_shared_from_this<Session<Stream>>::shared_from_this;
  Session(Stream stream, std::shared_ptr<const Handler> handler,
          std::shared_ptr<const WsHandler> ws_handler, std::shared_ptr<asio::thread_pool> workers)
      : stream_(std::move(stream)),
        handler_(std::move(handler)),
        ws_handler_(std::move(ws_handler)),
        workers_(std::move(workers)) {}

  void run() {
    asio::dispatch(stream_.get_executor(), [self = shared_from_this()] {
      if constexpr (std::is_same_v<Stream, TlsStream>) {
        beast::get_lowest_layer(self->stream_).expires_after(std::chrono::seconds(15));
        self->stream_.async_handshake(ssl::stream_base::server, [self](beast::error_code ec) {
          if (ec) return;  // a scanner or a plain-HTTP client: nothing to answer
          self->read();
        });
      } else {
        self->read();
      }
    });
  }

 private:
  void read() {
    parser_.emplace();
    parser_->body_limit(1 << 20);
    parser_->header_limit(16 << 10);
    beast::get_lowest_layer(stream_).expires_after(std::chrono::seconds(30));
    http::async_read(
        stream_, buffer_, *parser_,
        [self = shared_from_this()](beast::error_code ec, std::size_t) { self->on_read(ec); });
  }

  void on_read(beast::error_code ec) {
    if (ec == http::error::end_of_stream || ec == beast::error::timeout ||
        ec == asio::error::connection_reset || ec == asio::error::eof) {
      close();
      return;
    }
    if (ec) {
      // Malformed request: answer 400 and close rather than guess.
      auto res = std::make_shared<http::response<http::string_body>>(http::status::bad_request, 11);
      res->set(http::field::content_type, "application/json");
      res->body() = json_error(400, "bad_request", "malformed HTTP request: " + ec.message()).body;
      res->keep_alive(false);
      res->prepare_payload();
      write(res);
      return;
    }
    const auto& req = parser_->get();
    HttpResponse out;
    try {
      auto request = to_request(req);
      beast::error_code ep_ec;
      const auto ep = beast::get_lowest_layer(stream_).socket().remote_endpoint(ep_ec);
      if (!ep_ec) request.remote = ep.address().to_string();
      request.secure = std::is_same_v<Stream, TlsStream>;
      if (websocket::is_upgrade(req)) {
        if (!*ws_handler_) {
          out = json_error(404, "not_found", "no WebSocket here");
        } else {
          auto answer = (*ws_handler_)(request);
          if (auto* accept = std::get_if<WsAccept>(&answer)) {
            beast::get_lowest_layer(stream_).expires_never();
            std::make_shared<WsSession<Stream>>(std::move(stream_), std::move(*accept))
                ->start(parser_->release());
            return;
          }
          out = std::get<HttpResponse>(std::move(answer));
        }
      } else if (workers_) {
        // No read is pending while the handler runs, so the session is idle until answer().
        beast::get_lowest_layer(stream_).expires_never();
        asio::post(*workers_, [self = shared_from_this(), request = std::move(request)] {
          auto result = self->call(request);
          asio::dispatch(
              self->stream_.get_executor(),
              [self, result = std::move(result)]() mutable { self->answer(std::move(result)); });
        });
        return;
      } else {
        out = call(request);
      }
    } catch (const std::exception& e) {
      spdlog::error("http: request {} failed: {}", std::string(req.target()), e.what());
      out = json_error(500, "internal", "internal error");
    }
    answer(std::move(out));
  }

  HttpResponse call(const HttpRequest& request) const {
    try {
      return (*handler_)(request);
    } catch (const std::exception& e) {
      spdlog::error("http: handler for {} failed: {}", request.target, e.what());
      return json_error(500, "internal", "internal error");
    }
  }

  // On the strand: the handler's answer for the request parser_ holds.
  void answer(HttpResponse out) {
    const auto& req = parser_->get();
    auto res = std::make_shared<http::response<http::string_body>>(
        static_cast<http::status>(out.status), req.version());
    res->set(http::field::server, "matthan");
    res->set(http::field::content_type, out.content_type);
    res->set(http::field::cache_control, "no-store");
    res->set("X-Content-Type-Options", "nosniff");
    for (const auto& [name, value] : out.headers) res->set(name, value);
    res->keep_alive(req.keep_alive());
    if (req.method() == http::verb::head) {
      res->content_length(out.body.size());  // the size a GET would send, and no body
    } else {
      res->body() = std::move(out.body);
      res->prepare_payload();
    }
    write(res);
  }

  void write(const std::shared_ptr<http::response<http::string_body>>& res) {
    http::async_write(stream_, *res,
                      [self = shared_from_this(), res](beast::error_code ec, std::size_t) {
                        if (ec || !res->keep_alive()) {
                          self->close();
                          return;
                        }
                        self->read();
                      });
  }

  void close() {
    if constexpr (std::is_same_v<Stream, TlsStream>) {
      beast::get_lowest_layer(stream_).expires_after(std::chrono::seconds(5));
      stream_.async_shutdown([self = shared_from_this()](beast::error_code) {
        beast::error_code ignored;
        beast::get_lowest_layer(self->stream_).socket().close(ignored);
      });
    } else {
      beast::error_code ignored;
      stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
    }
  }

  Stream stream_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  std::shared_ptr<const Handler> handler_;
  std::shared_ptr<const WsHandler> ws_handler_;
  std::shared_ptr<asio::thread_pool> workers_;  // null: handlers run on the strand
};

}  // namespace

struct HttpServer::Impl : std::enable_shared_from_this<HttpServer::Impl> {
  Impl(asio::io_context& io_ctx, Handler h, WsHandler ws, int worker_count)
      : io(io_ctx),
        acceptor(asio::make_strand(io_ctx)),
        handler(std::make_shared<const Handler>(std::move(h))),
        ws_handler(std::make_shared<const WsHandler>(std::move(ws))) {
    if (worker_count > 0)
      workers = std::make_shared<asio::thread_pool>(static_cast<std::size_t>(worker_count));
  }

  void accept() {
    acceptor.async_accept(asio::make_strand(io), [self = shared_from_this()](beast::error_code ec,
                                                                             tcp::socket socket) {
      if (ec) {
        if (!self->stopped) spdlog::warn("http: accept failed: {}", ec.message());
        if (ec == asio::error::operation_aborted || self->stopped) return;
      } else if (self->tls) {
        std::make_shared<Session<TlsStream>>(TlsStream(std::move(socket), *self->tls),
                                             self->handler, self->ws_handler, self->workers)
            ->run();
      } else {
        std::make_shared<Session<beast::tcp_stream>>(beast::tcp_stream(std::move(socket)),
                                                     self->handler, self->ws_handler, self->workers)
            ->run();
      }
      self->accept();
    });
  }

  asio::io_context& io;
  tcp::acceptor acceptor;
  std::shared_ptr<const Handler> handler;
  std::shared_ptr<const WsHandler> ws_handler;
  std::shared_ptr<asio::thread_pool> workers;  // null when handlers run inline
  std::optional<ssl::context> tls;             // set before the first accept, then read-only
  std::atomic<bool> stopped{false};
};

HttpServer::HttpServer(asio::io_context& io, Handler handler, WsHandler ws_handler, int workers)
    : impl_(std::make_shared<Impl>(io, std::move(handler), std::move(ws_handler), workers)) {}

HttpServer::~HttpServer() {
  stop();
}

std::expected<int, std::string> HttpServer::start(const std::string& address, int port,
                                                  const std::string& tls_cert,
                                                  const std::string& tls_key) {
  beast::error_code ec;
  if (!tls_cert.empty()) {
    auto& ctx = impl_->tls.emplace(ssl::context::tls_server);
    // TLS 1.2 and 1.3 only; the key and chain as configured.
    ctx.set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                    ssl::context::no_sslv3 | ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1 |
                    ssl::context::single_dh_use);
    ctx.use_certificate_chain_file(tls_cert, ec);
    if (ec) return std::unexpected("cannot use the certificate " + tls_cert + ": " + ec.message());
    ctx.use_private_key_file(tls_key, ssl::context::pem, ec);
    if (ec) return std::unexpected("cannot use the key " + tls_key + ": " + ec.message());
  }
  const auto addr = asio::ip::make_address(address, ec);
  if (ec) return std::unexpected("bad listen address '" + address + "': " + ec.message());
  const tcp::endpoint endpoint(addr, static_cast<unsigned short>(port));
  auto& acc = impl_->acceptor;
  acc.open(endpoint.protocol(), ec);
  if (!ec) acc.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) acc.bind(endpoint, ec);
  if (!ec) acc.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    return std::unexpected("cannot listen on " + address + ":" + std::to_string(port) + ": " +
                           ec.message());
  }
  const int bound = acc.local_endpoint().port();
  impl_->accept();
  return bound;
}

void HttpServer::stop() {
  if (!impl_ || impl_->stopped.exchange(true)) return;
  asio::post(impl_->acceptor.get_executor(), [impl = impl_] {
    beast::error_code ignored;
    impl->acceptor.close(ignored);
  });
  // Handlers reach into their owner's objects: none may run once stop() has returned.
  if (impl_->workers) {
    impl_->workers->stop();
    impl_->workers->join();
  }
}

}  // namespace matthan::web
