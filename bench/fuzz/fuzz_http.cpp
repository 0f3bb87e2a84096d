// libFuzzer target: raw request bytes through what the server does with them before a handler
// answers: Beast's parser with the server's limits and the conversion to HttpRequest
// (web::parse_request), the route table with every real route pattern (read from
// docs/ref/openapi.json, which a test keeps equal to the registered routes), the auth gate
// (session cookie or bearer token looked up in a real SQLite database) and the JSON body.
#include <spdlog/spdlog.h>
#include <cstdint>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "matthan/storage/database.hpp"
#include "matthan/web/auth.hpp"
#include "matthan/web/http_server.hpp"
#include "matthan/web/router.hpp"

namespace {

using namespace matthan;

struct World {
  web::Router router;
  std::unique_ptr<storage::Database> db;
  std::unique_ptr<web::Auth> auth;
};

World& world() {
  static World w = [] {
    spdlog::set_level(spdlog::level::off);
    World out;
    std::ifstream in(std::string(MATTHAN_SOURCE_DIR) + "/docs/ref/openapi.json");
    const auto api = nlohmann::json::parse(in, nullptr, false);
    auto handler = [](const web::HttpRequest& req) {
      // What the JSON handlers do first: parse the body, read the fields they need.
      const auto body = nlohmann::json::parse(req.body, nullptr, false);
      if (body.is_object() && body.contains("username") && body["username"].is_string() &&
          body.contains("password") && body["password"].is_string()) {
        (void)web::Auth::check_password_policy(body["username"].get<std::string>(),
                                               body["password"].get<std::string>());
      }
      return web::HttpResponse{200, "application/json", body.is_discarded() ? "{}" : body.dump()};
    };
    if (api.is_object() && api.contains("paths")) {
      for (const auto& [path, methods] : api["paths"].items()) {
        for (const auto& [method, op] : methods.items()) {
          std::string m = method;
          for (auto& c : m) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
          out.router.add({m, path, web::Role::viewer, web::RouteKind::json, ""}, handler);
        }
      }
    }
    auto db = storage::Database::open("/tmp/matthan-fuzz-http.db");
    if (db) {
      out.db = std::move(*db);
      out.auth = std::make_unique<web::Auth>(*out.db);
    }
    return out;
  }();
  return w;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  auto& w = world();
  auto req = web::parse_request(std::string_view(reinterpret_cast<const char*>(data), size));
  if (!req) return 0;
  (void)web::Auth::session_token(*req);
  if (w.auth) {
    if (const auto who = w.auth->authenticate(*req, 1'795'000'000'000'000)) {
      (void)web::Auth::csrf_ok(*who, *req);
    }
  }
  const auto match = w.router.match(req->method, req->path);
  if (const auto* m = std::get_if<web::RouteMatch>(&match)) {
    req->params = m->params;
    (void)w.router.handler(m->index)(*req);
  }
  return 0;
}
