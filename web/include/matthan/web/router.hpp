// The server's route table: every route the server answers, its method, path pattern, the least
// role it needs and its kind. The auth gate, the dispatcher, GET /api/routes and the tests that
// check the auth matrix and the OpenAPI file all read this one table.
#pragma once

#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "matthan/web/auth.hpp"
#include "matthan/web/http_server.hpp"

namespace matthan::web {

enum class RouteKind { json, file, websocket, text, page };
std::string_view to_string(RouteKind kind);

struct Route {
  std::string method;        // GET, POST, DELETE; websockets are GET upgrades
  std::string pattern;       // "/api/cameras/{id}/clip.mp4": {name} is one path segment
  std::optional<Role> role;  // nullopt: public (login, health, the UI's files)
  RouteKind kind = RouteKind::json;
  std::string summary;
};

struct RouteMatch {
  std::size_t index = 0;  // into routes()
  std::map<std::string, std::string> params;
};

// Filled once before the server starts, then read-only (safe from any strand).
class Router {
 public:
  void add(Route route, Handler handler);
  void add_websocket(Route route, WsHandler handler);
  // The route for a request: a 404 answer when no pattern matches the path, 405 when only the
  // method differs. Literal segments win over {params}.
  std::variant<RouteMatch, HttpResponse> match(const std::string& method,
                                               const std::string& path) const;
  const std::vector<Route>& routes() const { return routes_; }
  const Handler& handler(std::size_t index) const { return handlers_[index]; }
  const WsHandler& ws_handler(std::size_t index) const { return ws_handlers_[index]; }

 private:
  std::vector<Route> routes_;
  std::vector<Handler> handlers_;
  std::vector<WsHandler> ws_handlers_;
};

}  // namespace matthan::web
