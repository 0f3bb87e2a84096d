#include "matthan/web/router.hpp"

namespace matthan::web {

std::string_view to_string(RouteKind kind) {
  switch (kind) {
    case RouteKind::json:
      return "json";
    case RouteKind::file:
      return "file";
    case RouteKind::websocket:
      return "websocket";
    case RouteKind::text:
      return "text";
    case RouteKind::page:
      return "page";
  }
  return "json";
}

void Router::add(Route route, Handler handler) {
  routes_.push_back(std::move(route));
  handlers_.push_back(std::move(handler));
  ws_handlers_.emplace_back();
}

void Router::add_websocket(Route route, WsHandler handler) {
  route.kind = RouteKind::websocket;
  routes_.push_back(std::move(route));
  handlers_.emplace_back();
  ws_handlers_.push_back(std::move(handler));
}

namespace {

std::vector<std::string_view> split(std::string_view path) {
  std::vector<std::string_view> out;
  if (path.starts_with('/')) path.remove_prefix(1);
  while (true) {
    const auto slash = path.find('/');
    out.push_back(path.substr(0, slash));
    if (slash == std::string_view::npos) break;
    path.remove_prefix(slash + 1);
  }
  return out;
}

// Number of literal segments matched, or -1.
int match_pattern(const std::vector<std::string_view>& pattern,
                  const std::vector<std::string_view>& path,
                  std::map<std::string, std::string>* params) {
  if (pattern.size() != path.size()) return -1;
  int literals = 0;
  for (std::size_t i = 0; i < pattern.size(); ++i) {
    const auto p = pattern[i];
    if (p.size() > 2 && p.front() == '{' && p.back() == '}') {
      if (path[i].empty()) return -1;
      if (params != nullptr) (*params)[std::string(p.substr(1, p.size() - 2))] = path[i];
      continue;
    }
    if (p != path[i]) return -1;
    ++literals;
  }
  return literals;
}

}  // namespace

std::variant<RouteMatch, HttpResponse> Router::match(const std::string& method,
                                                     const std::string& path) const {
  const auto parts = split(path);
  const std::string& m = method == "HEAD" ? std::string("GET") : method;
  int best = -1;
  std::size_t best_index = 0;
  bool path_known = false;
  std::string allowed;
  for (std::size_t i = 0; i < routes_.size(); ++i) {
    const int score = match_pattern(split(routes_[i].pattern), parts, nullptr);
    if (score < 0) continue;
    if (routes_[i].method != m) {
      path_known = true;
      continue;
    }
    if (score > best) {
      best = score;
      best_index = i;
    }
  }
  if (best < 0) {
    if (path_known) {
      for (const auto& r : routes_) {
        if (match_pattern(split(r.pattern), parts, nullptr) >= 0 &&
            allowed.find(r.method) == std::string::npos)
          allowed += (allowed.empty() ? "" : ", ") + r.method;
      }
      auto answer = json_error(405, "method_not_allowed", path + " accepts " + allowed);
      answer.headers.emplace_back("Allow", allowed);
      return answer;
    }
    return json_error(404, "not_found", "no such route: " + path);
  }
  RouteMatch out;
  out.index = best_index;
  match_pattern(split(routes_[best_index].pattern), parts, &out.params);
  return out;
}

}  // namespace matthan::web
