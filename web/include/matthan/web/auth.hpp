// Accounts, sessions, API tokens and roles (migration 0006). Passwords are Argon2id (libsodium);
// a session is an HttpOnly, SameSite=Strict cookie with a CSRF token for state changes; API
// tokens (Authorization: Bearer) are for integrations. No default account: the first admin is
// made with `matthan user add NAME --role admin`. After 5 failed logins within 30 s, that
// account is locked for 5 minutes from that source address only, so a stranger cannot lock the
// police out.
#pragma once

#include <cstdint>
#include <expected>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "matthan/storage/database.hpp"
#include "matthan/web/http_server.hpp"

namespace matthan::web {

enum class Role { viewer = 1, reviewer = 2, admin = 3 };
std::optional<Role> role_from_string(std::string_view text);
std::string_view to_string(Role role);

struct Principal {
  std::int64_t user_id = 0;
  std::string username;
  Role role = Role::viewer;
  bool bearer = false;  // an API token: no cookie, so no CSRF check
  std::string csrf;
  // The scope: cameras of these communes and these cameras; both empty: everything.
  std::vector<std::string> communes;
  std::vector<std::string> cameras;
};

struct LoginOk {
  std::string token;  // the session cookie's value
  std::string csrf;
  Principal who;
};

enum class LoginError { bad_credentials, locked };

// Thread-safe: the database serialises writes; mutex_ guards the failure counts.
class Auth {
 public:
  explicit Auth(storage::Database& db) : db_(db) {}

  // At least 10 characters, not the user name, not all one character class.
  static std::expected<void, std::string> check_password_policy(const std::string& username,
                                                                const std::string& password);
  std::expected<void, std::string> add_user(const std::string& username,
                                            const std::string& password, Role role,
                                            std::int64_t now_us,
                                            const std::vector<std::string>& communes = {},
                                            const std::vector<std::string>& cameras = {});
  std::expected<void, std::string> set_password(const std::string& username,
                                                const std::string& password);
  // A new API token for the user (shown once; only its hash is stored).
  std::expected<std::string, std::string> new_api_token(const std::string& username,
                                                        const std::string& label,
                                                        std::int64_t now_us);
  // An admin's change to an account; unset fields stay. Refused when no enabled admin of every
  // commune would be left (nobody could manage the server). Disabling ends the user's sessions
  // and API tokens; role and scope apply from the next request (read per request).
  struct UserChange {
    std::optional<Role> role;
    std::optional<std::vector<std::string>> communes;
    std::optional<std::vector<std::string>> cameras;
    std::optional<bool> disabled;
  };
  std::expected<void, std::string> update_user(const std::string& username,
                                               const UserChange& change);
  struct UserRow {
    std::string username;
    Role role = Role::viewer;
    std::vector<std::string> communes;
    std::vector<std::string> cameras;
    bool disabled = false;
  };
  std::vector<UserRow> users() const;

  // Runs Argon2id (~0.1 s, 64 MiB): the caller's thread is busy meanwhile.
  std::expected<LoginOk, LoginError> login(const std::string& username, const std::string& password,
                                           const std::string& source, std::int64_t now_us);
  void logout(const std::string& token);
  void unlock(const std::string& username);
  // From the session cookie or a bearer token; nullopt when neither is valid.
  std::optional<Principal> authenticate(const HttpRequest& req, std::int64_t now_us) const;
  // State changes through a cookie session must carry the session's X-CSRF-Token.
  static bool csrf_ok(const Principal& who, const HttpRequest& req);
  // The session token a request carries (the last matthan_session cookie), or "".
  static std::string session_token(const HttpRequest& req);
  static std::string session_cookie(const std::string& token, bool secure);
  static std::string cleared_cookie(bool secure);

 private:
  storage::Database& db_;
  mutable std::mutex mutex_;  // guards failures_, locked_until_
  std::map<std::pair<std::string, std::string>, std::vector<std::int64_t>> failures_;
  std::map<std::pair<std::string, std::string>, std::int64_t> locked_until_;
};

}  // namespace matthan::web
