#include "accounts.hpp"

#include <termios.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>

#include "matthan/core/config.hpp"
#include "matthan/core/logging.hpp"
#include "matthan/evidence/audit.hpp"

namespace matthan::app {

using nlohmann::json;
using web::Role;

std::optional<Role> required_role(const std::string& method, const std::string& path) {
  if (path == "/metrics") return Role::viewer;  // scrapers use an API token
  if (path == "/healthz" || !path.starts_with("/api/")) return std::nullopt;
  if (path == "/api/login") return std::nullopt;
  if (path == "/api/me" || path == "/api/logout") return Role::viewer;
  if (method == "GET" && (path == "/api/cameras" || path == "/api/events")) return Role::viewer;
  if (method == "GET" && path.starts_with("/api/cameras/") &&
      path.find('/', std::string("/api/cameras/").size()) == std::string::npos) {
    return Role::viewer;
  }
  if (path.starts_with("/api/audit") || path.starts_with("/api/users")) return Role::admin;
  if (method == "POST" && path.starts_with("/api/holds/") && path.ends_with("/release")) {
    return Role::admin;
  }
  return Role::reviewer;  // footage, recordings, exports, holds, storage, tuning
}

namespace {

web::HttpResponse ok_json(int status, const json& body) {
  return {status, "application/json", body.dump()};
}

}  // namespace

std::optional<web::HttpResponse> auth_gate(web::HttpRequest& req, web::Auth& auth,
                                           storage::Database& db, const std::string& node_id,
                                           std::int64_t now_us) {
  if (req.path == "/api/login") {
    if (req.method != "POST") return web::json_error(405, "method_not_allowed", "POST only");
    const json body = json::parse(req.body, nullptr, false);
    if (!body.is_object() || !body.contains("username") || !body.contains("password") ||
        !body["username"].is_string() || !body["password"].is_string()) {
      return web::json_error(400, "bad_request", "send {\"username\": …, \"password\": …}");
    }
    const std::string user = body["username"];
    // Only names an account could have reach the lockout maps and the audit log.
    const bool plausible =
        !user.empty() && user.size() <= 64 && std::all_of(user.begin(), user.end(), [](char ch) {
          const auto c = static_cast<unsigned char>(ch);
          return std::isalnum(c) || c == '.' || c == '_' || c == '-';
        });
    if (!plausible || body["password"].get<std::string>().size() > 1024) {
      return web::json_error(401, "bad_credentials", "wrong user name or password");
    }
    auto ok = auth.login(user, body["password"], req.remote, now_us);
    if (!ok) {
      const bool locked = ok.error() == web::LoginError::locked;
      evidence::append_audit(db, node_id, now_us, user, locked ? "login_locked" : "login_failed",
                             user, json{{"source", req.remote}}.dump());
      if (locked) {
        return web::json_error(429, "locked",
                               "too many failed logins from this address: try again in 5 minutes "
                               "or ask an admin to unlock the account");
      }
      return web::json_error(401, "bad_credentials", "wrong user name or password");
    }
    evidence::append_audit(db, node_id, now_us, user, "login", user,
                           json{{"source", req.remote}}.dump());
    auto res = ok_json(200, {{"username", user},
                             {"role", std::string(web::to_string(ok->who.role))},
                             {"csrf", ok->csrf}});
    res.headers.emplace_back("Set-Cookie", web::Auth::session_cookie(ok->token, false));
    return res;
  }
  const auto need = required_role(req.method, req.path);
  if (!need) return std::nullopt;
  const auto who = auth.authenticate(req, now_us);
  if (!who) return web::json_error(401, "unauthenticated", "log in first (POST /api/login)");
  if (static_cast<int>(who->role) < static_cast<int>(*need)) {
    return web::json_error(403, "forbidden",
                           "this needs the " + std::string(web::to_string(*need)) + " role");
  }
  if (req.method != "GET" && req.method != "HEAD" && !web::Auth::csrf_ok(*who, req)) {
    return web::json_error(403, "csrf", "state changes need the session's X-CSRF-Token header");
  }
  req.user = who->username;
  if (req.path == "/api/me") {
    return ok_json(200, {{"username", who->username},
                         {"role", std::string(web::to_string(who->role))},
                         {"csrf", who->csrf}});
  }
  if (req.path == "/api/logout") {
    if (req.method != "POST") return web::json_error(405, "method_not_allowed", "POST only");
    if (const auto token = web::Auth::session_token(req); !token.empty()) auth.logout(token);
    evidence::append_audit(db, node_id, now_us, who->username, "logout", who->username);
    auto res = ok_json(200, {{"logged_out", true}});
    res.headers.emplace_back("Set-Cookie", web::Auth::cleared_cookie(false));
    return res;
  }
  if (req.path == "/api/users") {
    if (req.method == "GET") {
      json list = json::array();
      for (const auto& [name, role] : auth.users())
        list.push_back({{"username", name}, {"role", std::string(web::to_string(role))}});
      return ok_json(200, {{"users", list}});
    }
    if (req.method == "POST") {
      const json body = json::parse(req.body, nullptr, false);
      if (!body.is_object() || !body.contains("username") || !body.contains("password") ||
          !body.contains("role") || !body["username"].is_string() ||
          !body["password"].is_string() || !body["role"].is_string()) {
        return web::json_error(400, "bad_request", "send username, password and role");
      }
      const auto role = web::role_from_string(body["role"].get<std::string>());
      if (!role) return web::json_error(400, "bad_role", "role is viewer, reviewer or admin");
      auto added = auth.add_user(body["username"], body["password"], *role, now_us);
      if (!added) return web::json_error(400, "bad_user", added.error());
      evidence::append_audit(db, node_id, now_us, who->username, "user_add",
                             body["username"].get<std::string>(),
                             json{{"role", body["role"]}}.dump());
      return ok_json(201, {{"username", body["username"]}, {"role", body["role"]}});
    }
  }
  if (req.path.starts_with("/api/users/") && req.path.ends_with("/unlock") &&
      req.method == "POST") {
    const auto name = req.path.substr(11, req.path.size() - 11 - 7);
    auth.unlock(name);
    evidence::append_audit(db, node_id, now_us, who->username, "user_unlock", name);
    return ok_json(200, {{"username", name}, {"unlocked", true}});
  }
  return std::nullopt;
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

std::int64_t wall_now_us() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace

int user_cli(const std::vector<std::string>& args) {
  std::string config_path = std::getenv("MATTHAN_CONFIG") != nullptr ? std::getenv("MATTHAN_CONFIG")
                                                                     : "/etc/matthan/matthan.yaml";
  std::vector<std::string> rest;
  std::string role_text = "viewer", label;
  for (std::size_t i = 0; i < args.size(); ++i) {
    if (args[i] == "--config" && i + 1 < args.size())
      config_path = args[++i];
    else if (args[i] == "--role" && i + 1 < args.size())
      role_text = args[++i];
    else if (args[i] == "--label" && i + 1 < args.size())
      label = args[++i];
    else
      rest.push_back(args[i]);
  }
  const std::string cmd = rest.empty() ? "" : rest[0];
  if (cmd != "list" && (rest.size() != 2 || (cmd != "add" && cmd != "passwd" && cmd != "token"))) {
    std::fprintf(stderr,
                 "usage: matthan user add NAME --role viewer|reviewer|admin [--config FILE]\n"
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
  const auto now = wall_now_us();
  if (cmd == "list") {
    for (const auto& [name, role] : auth.users())
      std::printf("%s\t%s\n", name.c_str(), std::string(web::to_string(role)).c_str());
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
    if (auto ok = auth.add_user(name, password, *role, now); !ok) {
      std::fprintf(stderr, "user: %s\n", ok.error().c_str());
      return 1;
    }
    evidence::append_audit(**db, config->node_id, now, "cli", "user_add", name,
                           json{{"role", role_text}}.dump());
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
