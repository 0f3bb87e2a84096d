// Accounts as the server and the CLI offer them: the auth gate in front of every /api route,
// login/logout/me, the users API, and `matthan user add | passwd | token | list`.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "matthan/storage/database.hpp"
#include "matthan/web/auth.hpp"
#include "matthan/web/http_server.hpp"

namespace matthan::app {

// The least role a route needs; nullopt: public (/healthz, POST /api/login, the UI's files).
std::optional<web::Role> required_role(const std::string& method, const std::string& path);

// Login, logout, me, users; and the gate: 401 without a session or token, 403 for a role too
// low or a missing CSRF token. Returns a response to send, or nullopt to go on (req.user set).
std::optional<web::HttpResponse> auth_gate(web::HttpRequest& req, web::Auth& auth,
                                           storage::Database& db, const std::string& node_id,
                                           std::int64_t now_us);

int user_cli(const std::vector<std::string>& args);

}  // namespace matthan::app
