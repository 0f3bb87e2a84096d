#include "accounts.hpp"

#include <termios.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>

#include "matthan/core/clock.hpp"
#include "matthan/core/config.hpp"
#include "matthan/core/logging.hpp"
#include "matthan/evidence/audit.hpp"

namespace matthan::app {

using nlohmann::json;
using web::Role;

namespace {

web::HttpResponse ok_json(int status, const json& body) {
  return {status, "application/json", body.dump()};
}

json user_json(const web::Auth::UserRow& u) {
  return {{"username", u.username},
          {"role", std::string(web::to_string(u.role))},
          {"communes", u.communes},
          {"cameras", u.cameras},
          {"disabled", u.disabled}};
}

// A JSON list of commune codes, or nullopt when it is not one.
std::optional<std::vector<std::string>> commune_list(const json& j) {
  if (!j.is_array()) return std::nullopt;
  std::vector<std::string> out;
  for (const auto& c : j) {
    if (!c.is_string()) return std::nullopt;
    out.push_back(c.get<std::string>());
  }
  return out;
}

// PATCH /api/users/{name}: role, communes, disabled and a new password, each optional.
web::HttpResponse patch_user(web::Auth& auth, storage::Database& db, const std::string& node_id,
                             const web::HttpRequest& req) {
  const auto& name = req.params.at("name");
  if (req.scoped())  // a commune's admin could otherwise widen their own scope
    return web::json_error(403, "out_of_scope", "only an admin of every commune changes accounts");
  const json body = json::parse(req.body, nullptr, false);
  if (!body.is_object() || body.empty())
    return web::json_error(400, "bad_request",
                           "send any of role, communes, disabled and password as a JSON object");
  for (const auto& [key, value] : body.items()) {
    if (key != "role" && key != "communes" && key != "cameras" && key != "disabled" &&
        key != "password")
      return web::json_error(
          400, "bad_request",
          "'" + key + "' cannot be changed (role, communes, cameras, disabled, password)");
  }
  web::Auth::UserChange change;
  json audit = json::object();
  if (body.contains("role")) {
    const auto role = body["role"].is_string()
                          ? web::role_from_string(body["role"].get<std::string>())
                          : std::nullopt;
    if (!role) return web::json_error(400, "bad_role", "role is viewer, reviewer or admin");
    change.role = role;
    audit["role"] = body["role"];
  }
  if (body.contains("communes")) {
    change.communes = commune_list(body["communes"]);
    if (!change.communes)
      return web::json_error(400, "bad_request", "communes is a list of commune codes");
    audit["communes"] = body["communes"];
  }
  if (body.contains("cameras")) {
    change.cameras = commune_list(body["cameras"]);
    if (!change.cameras)
      return web::json_error(400, "bad_request", "cameras is a list of camera ids");
    audit["cameras"] = body["cameras"];
  }
  if (body.contains("disabled")) {
    if (!body["disabled"].is_boolean())
      return web::json_error(400, "bad_request", "disabled is true or false");
    change.disabled = body["disabled"].get<bool>();
    audit["disabled"] = body["disabled"];
  }
  if (body.contains("password") && !body["password"].is_string())
    return web::json_error(400, "bad_request", "password is a string");
  if (body.contains("password")) {
    // Checked before anything changes, so a weak password changes nothing.
    if (auto ok = web::Auth::check_password_policy(name, body["password"]); !ok)
      return web::json_error(400, "bad_password", ok.error());
  }
  if (change.role || change.communes || change.cameras || change.disabled) {
    if (auto ok = auth.update_user(name, change); !ok) {
      if (ok.error().starts_with("no user")) return web::json_error(404, "not_found", ok.error());
      if (ok.error().starts_with("scope:") || ok.error().starts_with("a commune code"))
        return web::json_error(400, "bad_scope", ok.error());
      return web::json_error(409, "last_admin", ok.error());
    }
  }
  if (body.contains("password")) {
    if (auto ok = auth.set_password(name, body["password"]); !ok) {
      const bool missing = ok.error().starts_with("no user");
      return web::json_error(missing ? 404 : 400, missing ? "not_found" : "bad_password",
                             ok.error());
    }
    audit["password_reset"] = true;  // never the password itself
  }
  evidence::append_audit(db, node_id, SystemClock().now_us(), req.user, "user_update", name,
                         audit.dump());
  for (const auto& u : auth.users()) {
    if (u.username == name) return ok_json(200, user_json(u));
  }
  return web::json_error(404, "not_found", "no user '" + name + "'");
}

}  // namespace

std::optional<web::HttpResponse> check_access(web::HttpRequest& req, const web::Route& route,
                                              web::Auth& auth, std::int64_t now_us) {
  if (!route.role) return std::nullopt;
  const auto who = auth.authenticate(req, now_us);
  if (!who) return web::json_error(401, "unauthenticated", "log in first (POST /api/login)");
  if (static_cast<int>(who->role) < static_cast<int>(*route.role)) {
    return web::json_error(403, "forbidden",
                           "this needs the " + std::string(web::to_string(*route.role)) + " role");
  }
  if (req.method != "GET" && req.method != "HEAD" && !web::Auth::csrf_ok(*who, req)) {
    return web::json_error(403, "csrf", "state changes need the session's X-CSRF-Token header");
  }
  req.user = who->username;
  req.role = std::string(web::to_string(who->role));
  req.csrf = who->csrf;
  req.communes = who->communes;
  req.cameras = who->cameras;
  return std::nullopt;
}

void add_account_routes(web::Router& router, web::Auth& auth, storage::Database& db,
                        const std::string& node_id) {
  using web::RouteKind;
  router.add(
      {"POST", "/api/login", std::nullopt, RouteKind::json, "log in: a session cookie"},
      [&auth, &db, node_id](const web::HttpRequest& req) -> web::HttpResponse {
        const auto now_us = SystemClock().now_us();
        const json body = json::parse(req.body, nullptr, false);
        if (!body.is_object() || !body.contains("username") || !body.contains("password") ||
            !body["username"].is_string() || !body["password"].is_string()) {
          return web::json_error(400, "bad_request", "send {\"username\": …, \"password\": …}");
        }
        const std::string user = body["username"];
        // Only names an account could have reach the lockout maps and the audit log.
        const bool plausible = !user.empty() && user.size() <= 64 &&
                               std::all_of(user.begin(), user.end(), [](char ch) {
                                 const auto c = static_cast<unsigned char>(ch);
                                 return std::isalnum(c) || c == '.' || c == '_' || c == '-';
                               });
        if (!plausible || body["password"].get<std::string>().size() > 1024) {
          return web::json_error(401, "bad_credentials", "wrong user name or password");
        }
        auto ok = auth.login(user, body["password"], req.remote, now_us);
        if (!ok) {
          const bool locked = ok.error() == web::LoginError::locked;
          evidence::append_audit(db, node_id, now_us, user,
                                 locked ? "login_locked" : "login_failed", user,
                                 json{{"source", req.remote}}.dump());
          if (locked) {
            return web::json_error(
                429, "locked",
                "too many failed logins from this address: try again in 5 minutes "
                "or ask an admin to unlock the account");
          }
          return web::json_error(401, "bad_credentials", "wrong user name or password");
        }
        evidence::append_audit(db, node_id, now_us, user, "login", user,
                               json{{"source", req.remote}}.dump());
        auto res = ok_json(200, {{"username", user},
                                 {"role", std::string(web::to_string(ok->who.role))},
                                 {"communes", ok->who.communes},
                                 {"cameras", ok->who.cameras},
                                 {"csrf", ok->csrf}});
        res.headers.emplace_back("Set-Cookie", web::Auth::session_cookie(ok->token, req.secure));
        return res;
      });
  router.add({"GET", "/api/me", web::Role::viewer, RouteKind::json, "who is logged in"},
             [](const web::HttpRequest& req) {
               return ok_json(200, {{"username", req.user},
                                    {"role", req.role},
                                    {"communes", req.communes},
                                    {"cameras", req.cameras},
                                    {"csrf", req.csrf}});
             });
  router.add({"POST", "/api/logout", web::Role::viewer, RouteKind::json, "end the session"},
             [&auth, &db, node_id](const web::HttpRequest& req) {
               if (const auto token = web::Auth::session_token(req); !token.empty())
                 auth.logout(token);
               evidence::append_audit(db, node_id, SystemClock().now_us(), req.user, "logout",
                                      req.user);
               auto res = ok_json(200, {{"logged_out", true}});
               res.headers.emplace_back("Set-Cookie", web::Auth::cleared_cookie(req.secure));
               return res;
             });
  router.add({"GET", "/api/users", web::Role::admin, RouteKind::json, "accounts"},
             [&auth](const web::HttpRequest&) {
               json list = json::array();
               for (const auto& u : auth.users()) list.push_back(user_json(u));
               return ok_json(200, {{"users", list}});
             });
  router.add(
      {"POST", "/api/users", web::Role::admin, RouteKind::json, "add an account"},
      [&auth, &db, node_id](const web::HttpRequest& req) -> web::HttpResponse {
        const json body = json::parse(req.body, nullptr, false);
        if (!body.is_object() || !body.contains("username") || !body.contains("password") ||
            !body.contains("role") || !body["username"].is_string() ||
            !body["password"].is_string() || !body["role"].is_string()) {
          return web::json_error(400, "bad_request", "send username, password and role");
        }
        const auto role = web::role_from_string(body["role"].get<std::string>());
        if (!role) return web::json_error(400, "bad_role", "role is viewer, reviewer or admin");
        std::vector<std::string> communes;
        if (body.contains("communes")) {
          auto list = commune_list(body["communes"]);
          if (!list)
            return web::json_error(400, "bad_request", "communes is a list of commune codes");
          communes = std::move(*list);
        }
        std::vector<std::string> cameras;
        if (body.contains("cameras")) {
          auto list = commune_list(body["cameras"]);
          if (!list) return web::json_error(400, "bad_request", "cameras is a list of camera ids");
          cameras = std::move(*list);
        }
        const auto now_us = SystemClock().now_us();
        auto added =
            auth.add_user(body["username"], body["password"], *role, now_us, communes, cameras);
        if (!added) return web::json_error(400, "bad_user", added.error());
        evidence::append_audit(
            db, node_id, now_us, req.user, "user_add", body["username"].get<std::string>(),
            json{{"role", body["role"]}, {"communes", communes}, {"cameras", cameras}}.dump());
        return ok_json(201, {{"username", body["username"]},
                             {"role", body["role"]},
                             {"communes", communes},
                             {"cameras", cameras}});
      });
  router.add({"PATCH", "/api/users/{name}", web::Role::admin, RouteKind::json,
              "change an account: role, communes, disabled, a new password (audited)"},
             [&auth, &db, node_id](const web::HttpRequest& req) {
               return patch_user(auth, db, node_id, req);
             });
  router.add({"POST", "/api/users/{name}/unlock", web::Role::admin, RouteKind::json,
              "lift a login lockout"},
             [&auth, &db, node_id](const web::HttpRequest& req) {
               const auto& name = req.params.at("name");
               auth.unlock(name);
               evidence::append_audit(db, node_id, SystemClock().now_us(), req.user, "user_unlock",
                                      name);
               return ok_json(200, {{"username", name}, {"unlocked", true}});
             });
}

namespace {

// One line from stdin; without echo when it is a terminal.
std::string read_password(const std::string& prompt) {
  const bool tty = ::isatty(STDIN_FILENO) != 0;
  termios old{};
  if (tty) {
    std::fprintf(stderr, "%s", prompt.c_str());
    tcgetattr(STDIN_FILENO, &old);
    termios quiet = old;
    quiet.c_lflag &= ~static_cast<tcflag_t>(ECHO);
    tcsetattr(STDIN_FILENO, TCSANOW, &quiet);
  }
  std::string line;
  std::getline(std::cin, line);
  if (tty) {
    tcsetattr(STDIN_FILENO, TCSANOW, &old);
    std::fprintf(stderr, "\n");
  }
  return line;
}

}  // namespace

int user_cli(const std::vector<std::string>& args) {
  std::string config_path = std::getenv("MATTHAN_CONFIG") != nullptr ? std::getenv("MATTHAN_CONFIG")
                                                                     : "/etc/matthan/matthan.yaml";
  std::vector<std::string> rest;
  std::string role_text = "viewer", label;
  std::vector<std::string> communes, cameras;
  for (std::size_t i = 0; i < args.size(); ++i) {
    if (args[i] == "--config" && i + 1 < args.size())
      config_path = args[++i];
    else if (args[i] == "--role" && i + 1 < args.size())
      role_text = args[++i];
    else if (args[i] == "--label" && i + 1 < args.size())
      label = args[++i];
    else if ((args[i] == "--communes" || args[i] == "--cameras") && i + 1 < args.size()) {
      auto& into = args[i] == "--communes" ? communes : cameras;
      std::string list = args[++i];
      for (std::size_t at = 0; at <= list.size();) {
        const auto comma = std::min(list.find(',', at), list.size());
        if (comma > at) into.push_back(list.substr(at, comma - at));
        at = comma + 1;
      }
    } else
      rest.push_back(args[i]);
  }
  const std::string cmd = rest.empty() ? "" : rest[0];
  if (cmd != "list" && (rest.size() != 2 || (cmd != "add" && cmd != "passwd" && cmd != "token"))) {
    std::fprintf(stderr,
                 "usage: matthan user add NAME --role viewer|reviewer|admin [--communes A,B]"
                 " [--cameras X,Y]"
                 " [--config FILE]\n"
                 "       matthan user passwd NAME | token NAME [--label TEXT] | list\n"
                 "  (the password is read from stdin: typed without echo, or piped)\n");
    return 2;
  }
  init_logging("warn", "");
  auto config = load_config_file(config_path);
  if (!config) {
    for (const auto& e : config.error()) std::fprintf(stderr, "%s\n", e.to_string().c_str());
    return 1;
  }
  auto db = storage::Database::open(config->server.data_dir + "/matthan.db");
  if (!db) {
    std::fprintf(stderr, "%s\n", db.error().c_str());
    return 1;
  }
  web::Auth auth(**db);
  const auto now = SystemClock().now_us();
  if (cmd == "list") {
    for (const auto& u : auth.users()) {
      std::string scope;
      for (const auto& c : u.communes) scope += (scope.empty() ? "" : ",") + c;
      for (const auto& c : u.cameras) scope += (scope.empty() ? "camera:" : ",camera:") + c;
      std::printf("%s\t%s\t%s\n", u.username.c_str(), std::string(web::to_string(u.role)).c_str(),
                  scope.empty() ? "*" : scope.c_str());
    }
    return 0;
  }
  const std::string& name = rest[1];
  if (cmd == "token") {
    auto token = auth.new_api_token(name, label, now);
    if (!token) {
      std::fprintf(stderr, "user: %s\n", token.error().c_str());
      return 1;
    }
    evidence::append_audit(**db, config->node_id, now, "cli", "api_token", name,
                           json{{"label", label}}.dump());
    (*db)->flush();
    std::printf("%s\n", token->c_str());
    return 0;
  }
  const std::string password = read_password("Mật khẩu / password for " + name + ": ");
  if (cmd == "add") {
    const auto role = web::role_from_string(role_text);
    if (!role) {
      std::fprintf(stderr, "user: --role is viewer, reviewer or admin\n");
      return 2;
    }
    if (auto ok = auth.add_user(name, password, *role, now, communes, cameras); !ok) {
      std::fprintf(stderr, "user: %s\n", ok.error().c_str());
      return 1;
    }
    evidence::append_audit(
        **db, config->node_id, now, "cli", "user_add", name,
        json{{"role", role_text}, {"communes", communes}, {"cameras", cameras}}.dump());
  } else {
    if (auto ok = auth.set_password(name, password); !ok) {
      std::fprintf(stderr, "user: %s\n", ok.error().c_str());
      return 1;
    }
    evidence::append_audit(**db, config->node_id, now, "cli", "user_passwd", name);
  }
  (*db)->flush();
  std::printf("%s: ok\n", name.c_str());
  return 0;
}

}  // namespace matthan::app
