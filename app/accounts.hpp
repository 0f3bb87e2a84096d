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
#include "matthan/web/router.hpp"

namespace matthan::app {

// The gate in front of every route that has a role: 401 without a session or token, 403 for a
// role too low or a state change without the session's CSRF token. nullopt: go on (req.user,
// req.role, req.communes set).
std::optional<web::HttpResponse> check_access(web::HttpRequest& req, const web::Route& route,
                                              web::Auth& auth, std::int64_t now_us);

// Login, logout, me, users, unlock.
void add_account_routes(web::Router& router, web::Auth& auth, storage::Database& db,
                        const std::string& node_id);

int user_cli(const std::vector<std::string>& args);

}  // namespace matthan::app
