#include "matthan/web/auth.hpp"

#include <sodium.h>
#include <spdlog/spdlog.h>
#include <sqlite3.h>

#include <algorithm>
#include <array>
#include <cctype>

namespace matthan::web {

namespace {

constexpr const char* kCookie = "matthan_session";
constexpr std::int64_t kSessionUs = 12LL * 3600 * 1'000'000;  // a guard's shift
constexpr std::int64_t kFailWindowUs = 30'000'000;
constexpr std::int64_t kLockUs = 5LL * 60 * 1'000'000;
constexpr int kMaxFailures = 5;

void ensure_sodium() {
  static const int rc = sodium_init();
  (void)rc;
}

std::string random_token() {
  ensure_sodium();
  std::array<unsigned char, 32> raw{};
  randombytes_buf(raw.data(), raw.size());
  std::string out(sodium_base64_encoded_len(raw.size(), sodium_base64_VARIANT_URLSAFE_NO_PADDING),
                  '\0');
  sodium_bin2base64(out.data(), out.size(), raw.data(), raw.size(),
                    sodium_base64_VARIANT_URLSAFE_NO_PADDING);
  out.resize(std::char_traits<char>::length(out.c_str()));
  return out;
}

std::string token_hash(const std::string& token) {
  ensure_sodium();
  std::array<unsigned char, crypto_hash_sha256_BYTES> h{};
  crypto_hash_sha256(h.data(), reinterpret_cast<const unsigned char*>(token.data()), token.size());
  std::string hex(h.size() * 2 + 1, '\0');
  sodium_bin2hex(hex.data(), hex.size(), h.data(), h.size());
  hex.pop_back();
  return hex;
}

std::string hash_password(const std::string& password) {
  ensure_sodium();
  char out[crypto_pwhash_STRBYTES];
  if (crypto_pwhash_str(out, password.data(), password.size(), crypto_pwhash_OPSLIMIT_INTERACTIVE,
                        crypto_pwhash_MEMLIMIT_INTERACTIVE) != 0) {
    return {};
  }
  return out;
}

std::string header(const HttpRequest& req, const std::string& name) {
  const auto it = req.headers.find(name);
  return it == req.headers.end() ? std::string() : it->second;
}

std::string col(sqlite3_stmt* st, int c) {
  const auto* t = sqlite3_column_text(st, c);
  return t != nullptr ? reinterpret_cast<const char*>(t) : "";
}

}  // namespace

std::optional<Role> role_from_string(std::string_view text) {
  if (text == "viewer") return Role::viewer;
  if (text == "reviewer") return Role::reviewer;
  if (text == "admin") return Role::admin;
  return std::nullopt;
}

std::string_view to_string(Role role) {
  switch (role) {
    case Role::viewer:
      return "viewer";
    case Role::reviewer:
      return "reviewer";
    case Role::admin:
      return "admin";
  }
  return "viewer";
}

std::expected<void, std::string> Auth::check_password_policy(const std::string& username,
                                                             const std::string& password) {
  if (password.size() < 10) return std::unexpected("a password needs at least 10 characters");
  if (password == username) return std::unexpected("the password must not be the user name");
  int classes = 0;
  classes += std::any_of(password.begin(), password.end(),
                         [](unsigned char c) { return std::islower(c); });
  classes += std::any_of(password.begin(), password.end(),
                         [](unsigned char c) { return std::isupper(c); });
  classes += std::any_of(password.begin(), password.end(),
                         [](unsigned char c) { return std::isdigit(c); });
  classes += std::any_of(password.begin(), password.end(),
                         [](unsigned char c) { return !std::isalnum(c); });
  if (classes < 2) {
    return std::unexpected("a password needs two kinds of characters (letters, digits, others)");
  }
  return {};
}

namespace {

// The user's scope in one column (user.communes): commune codes, and cameras as "camera:ID".
constexpr std::string_view kCameraPrefix = "camera:";

std::string join_scope(const std::vector<std::string>& communes,
                       const std::vector<std::string>& cameras) {
  std::string out;
  for (const auto& c : communes) out += (out.empty() ? "" : ",") + c;
  for (const auto& c : cameras) out += (out.empty() ? "" : ",") + std::string(kCameraPrefix) + c;
  return out;
}

struct Scope {
  std::vector<std::string> communes, cameras;
};

Scope split_scope(const std::string& text) {
  Scope out;
  std::size_t at = 0;
  while (at < text.size()) {
    const auto comma = text.find(',', at);
    auto item = text.substr(at, comma == std::string::npos ? std::string::npos : comma - at);
    if (item.starts_with(kCameraPrefix))
      out.cameras.push_back(item.substr(kCameraPrefix.size()));
    else if (!item.empty())
      out.communes.push_back(item);
    if (comma == std::string::npos) break;
    at = comma + 1;
  }
  return out;
}

std::optional<std::string> bad_scope(const std::vector<std::string>& items) {
  for (const auto& c : items) {
    if (c.empty() || c.find(',') != std::string::npos || c.starts_with(kCameraPrefix))
      return "a commune code or camera id is not empty and has no comma";
  }
  return std::nullopt;
}

}  // namespace

std::expected<void, std::string> Auth::add_user(const std::string& username,
                                                const std::string& password, Role role,
                                                std::int64_t now_us,
                                                const std::vector<std::string>& communes,
                                                const std::vector<std::string>& cameras) {
  if (auto bad = bad_scope(communes)) return std::unexpected(*bad);
  if (auto bad = bad_scope(cameras)) return std::unexpected(*bad);
  static const auto valid = [](const std::string& u) {
    return !u.empty() && u.size() <= 64 && std::all_of(u.begin(), u.end(), [](unsigned char c) {
      return std::isalnum(c) || c == '.' || c == '_' || c == '-';
    });
  };
  if (!valid(username)) {
    return std::unexpected("a user name is 1-64 characters of letters, digits, '.', '_' or '-'");
  }
  if (auto ok = check_password_policy(username, password); !ok) return ok;
  const std::string hash = hash_password(password);
  if (hash.empty()) return std::unexpected("cannot hash the password (out of memory?)");
  bool inserted = false;
  db_.write([&](sqlite3* conn) {
    sqlite3_stmt* st = nullptr;
    sqlite3_prepare_v2(conn,
                       "INSERT INTO user (username, password_hash, role, created_us, communes)"
                       " VALUES (?1, ?2, ?3, ?4, ?5)",
                       -1, &st, nullptr);
    sqlite3_bind_text(st, 5, join_scope(communes, cameras).c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 1, username.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 2, hash.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 3, std::string(to_string(role)).c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 4, now_us);
    inserted = sqlite3_step(st) == SQLITE_DONE;
    sqlite3_finalize(st);
  });
  db_.flush();
  if (!inserted) return std::unexpected("user '" + username + "' exists already");
  return {};
}

std::expected<void, std::string> Auth::set_password(const std::string& username,
                                                    const std::string& password) {
  if (auto ok = check_password_policy(username, password); !ok) return ok;
  const std::string hash = hash_password(password);
  if (hash.empty()) return std::unexpected("cannot hash the password (out of memory?)");
  int changed = 0;
  db_.write([&](sqlite3* conn) {
    sqlite3_stmt* st = nullptr;
    sqlite3_prepare_v2(conn, "UPDATE user SET password_hash = ?2 WHERE username = ?1", -1, &st,
                       nullptr);
    sqlite3_bind_text(st, 1, username.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 2, hash.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_step(st);
    changed = sqlite3_changes(conn);
    sqlite3_finalize(st);
    // A new password ends the user's sessions and API tokens.
    for (const char* sql :
         {"DELETE FROM session WHERE user_id = (SELECT id FROM user WHERE username = ?1)",
          "UPDATE api_token SET revoked_us = ?2 WHERE revoked_us IS NULL AND user_id ="
          " (SELECT id FROM user WHERE username = ?1)"}) {
      sqlite3_prepare_v2(conn, sql, -1, &st, nullptr);
      sqlite3_bind_text(st, 1, username.c_str(), -1, SQLITE_TRANSIENT);
      if (std::string(sql).find("?2") != std::string::npos) sqlite3_bind_int64(st, 2, 1);
      sqlite3_step(st);
      sqlite3_finalize(st);
    }
  });
  db_.flush();
  if (changed == 0) return std::unexpected("no user '" + username + "'");
  return {};
}

std::expected<void, std::string> Auth::update_user(const std::string& username,
                                                   const UserChange& change) {
  for (const auto& list : {change.communes, change.cameras}) {
    if (!list) continue;
    if (auto bad = bad_scope(*list)) return std::unexpected(*bad);
  }
  std::string error;
  db_.write([&](sqlite3* conn) {
    // One transaction: the last-admin check and the change see the same rows.
    sqlite3_exec(conn, "SAVEPOINT user_change", nullptr, nullptr, nullptr);
    auto run = [&](const char* sql, auto&& bind) {
      sqlite3_stmt* st = nullptr;
      sqlite3_prepare_v2(conn, sql, -1, &st, nullptr);
      bind(st);
      const int rc = sqlite3_step(st);
      const int value = rc == SQLITE_ROW ? sqlite3_column_int(st, 0) : sqlite3_changes(conn);
      sqlite3_finalize(st);
      return value;
    };
    const auto by_name = [&](sqlite3_stmt* st) {
      sqlite3_bind_text(st, 1, username.c_str(), -1, SQLITE_TRANSIENT);
    };
    if (run("SELECT COUNT(*) FROM user WHERE username = ?1", by_name) == 0) {
      error = "no user '" + username + "'";
    } else {
      if (change.role) {
        run("UPDATE user SET role = ?2 WHERE username = ?1", [&](sqlite3_stmt* st) {
          by_name(st);
          sqlite3_bind_text(st, 2, std::string(to_string(*change.role)).c_str(), -1,
                            SQLITE_TRANSIENT);
        });
      }
      if (change.communes || change.cameras) {
        // One column holds both: the part not changed is kept.
        std::string text;
        sqlite3_stmt* st = nullptr;
        sqlite3_prepare_v2(conn, "SELECT communes FROM user WHERE username = ?1", -1, &st, nullptr);
        by_name(st);
        if (sqlite3_step(st) == SQLITE_ROW) text = col(st, 0);
        sqlite3_finalize(st);
        auto scope = split_scope(text);
        const bool was_scoped = !scope.communes.empty() || !scope.cameras.empty();
        if (change.communes) scope.communes = *change.communes;
        if (change.cameras) scope.cameras = *change.cameras;
        // Emptying one list of a scoped user must not open everything by accident: both lists,
        // given empty together, say "every commune".
        if (was_scoped && scope.communes.empty() && scope.cameras.empty() &&
            !(change.communes && change.cameras))
          error =
              "scope: emptying this list would give access to every commune; send both"
              " communes and cameras empty to mean that";
        run("UPDATE user SET communes = ?2 WHERE username = ?1", [&](sqlite3_stmt* q) {
          by_name(q);
          sqlite3_bind_text(q, 2, join_scope(scope.communes, scope.cameras).c_str(), -1,
                            SQLITE_TRANSIENT);
        });
      }
      if (change.disabled) {
        run("UPDATE user SET disabled = ?2 WHERE username = ?1", [&](sqlite3_stmt* st) {
          by_name(st);
          sqlite3_bind_int(st, 2, *change.disabled ? 1 : 0);
        });
      }
      if (run("SELECT COUNT(*) FROM user WHERE role = 'admin' AND disabled = 0 AND communes = ''",
              [](sqlite3_stmt*) {}) == 0) {
        error =
            "this would leave no enabled admin of every commune: nobody could manage the server";
      }
    }
    if (!error.empty()) {
      sqlite3_exec(conn, "ROLLBACK TO user_change; RELEASE user_change", nullptr, nullptr, nullptr);
      return;
    }
    if (change.disabled.value_or(false)) {
      for (const char* sql :
           {"DELETE FROM session WHERE user_id = (SELECT id FROM user WHERE username = ?1)",
            "UPDATE api_token SET revoked_us = 1 WHERE revoked_us IS NULL AND user_id ="
            " (SELECT id FROM user WHERE username = ?1)"}) {
        run(sql, by_name);
      }
    }
    sqlite3_exec(conn, "RELEASE user_change", nullptr, nullptr, nullptr);
  });
  db_.flush();
  if (!error.empty()) return std::unexpected(error);
  return {};
}

std::expected<std::string, std::string> Auth::new_api_token(const std::string& username,
                                                            const std::string& label,
                                                            std::int64_t now_us) {
  const std::string token = "mt_" + random_token();
  bool ok = false;
  db_.write([&](sqlite3* conn) {
    sqlite3_stmt* st = nullptr;
    sqlite3_prepare_v2(conn,
                       "INSERT INTO api_token (token_hash, user_id, label, created_us)"
                       " SELECT ?1, id, ?3, ?4 FROM user WHERE username = ?2",
                       -1, &st, nullptr);
    sqlite3_bind_text(st, 1, token_hash(token).c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 2, username.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 3, label.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 4, now_us);
    ok = sqlite3_step(st) == SQLITE_DONE && sqlite3_changes(conn) == 1;
    sqlite3_finalize(st);
  });
  db_.flush();
  if (!ok) return std::unexpected("no user '" + username + "'");
  return token;
}

std::vector<Auth::UserRow> Auth::users() const {
  return db_.read([](sqlite3* conn) {
    std::vector<UserRow> out;
    sqlite3_stmt* st = nullptr;
    sqlite3_prepare_v2(conn,
                       "SELECT username, role, communes, disabled FROM user ORDER BY username", -1,
                       &st, nullptr);
    while (sqlite3_step(st) == SQLITE_ROW) {
      auto scope = split_scope(col(st, 2));
      out.push_back({col(st, 0), role_from_string(col(st, 1)).value_or(Role::viewer),
                     std::move(scope.communes), std::move(scope.cameras),
                     sqlite3_column_int(st, 3) != 0});
    }
    sqlite3_finalize(st);
    return out;
  });
}

std::expected<LoginOk, LoginError> Auth::login(const std::string& username,
                                               const std::string& password,
                                               const std::string& source, std::int64_t now_us) {
  const auto key = std::make_pair(username, source);
  {
    std::lock_guard lock(mutex_);
    // Old entries go: the maps stay as small as the recent attempts.
    std::erase_if(locked_until_, [&](const auto& kv) { return kv.second <= now_us; });
    std::erase_if(failures_, [&](const auto& kv) {
      return kv.second.empty() || now_us - kv.second.back() > kFailWindowUs;
    });
    const auto it = locked_until_.find(key);
    if (it != locked_until_.end() && it->second > now_us)
      return std::unexpected(LoginError::locked);
  }
  struct Row {
    std::int64_t id = 0;
    std::string hash;
    Role role = Role::viewer;
    std::string communes;
  };
  const auto row = db_.read([&](sqlite3* conn) -> std::optional<Row> {
    sqlite3_stmt* st = nullptr;
    sqlite3_prepare_v2(conn,
                       "SELECT id, password_hash, role, communes FROM user WHERE username = ?1 AND"
                       " disabled = 0",
                       -1, &st, nullptr);
    sqlite3_bind_text(st, 1, username.c_str(), -1, SQLITE_TRANSIENT);
    std::optional<Row> r;
    if (sqlite3_step(st) == SQLITE_ROW) {
      r = Row{sqlite3_column_int64(st, 0), col(st, 1),
              role_from_string(col(st, 2)).value_or(Role::viewer), col(st, 3)};
    }
    sqlite3_finalize(st);
    return r;
  });
  ensure_sodium();
  // An unknown user costs the same hash as a known one: no telling which names exist.
  static const std::string dummy = hash_password("matthan-no-such-user-1");
  const std::string& hash = row ? row->hash : dummy;
  const bool good = crypto_pwhash_str_verify(hash.c_str(), password.data(), password.size()) == 0;
  if (!row || !good) {
    std::lock_guard lock(mutex_);
    auto& times = failures_[key];
    times.push_back(now_us);
    std::erase_if(times, [&](std::int64_t t) { return now_us - t > kFailWindowUs; });
    if (static_cast<int>(times.size()) >= kMaxFailures) {
      locked_until_[key] = now_us + kLockUs;
      times.clear();
      spdlog::warn("login: '{}' locked for 5 minutes from {} after {} failures", username, source,
                   kMaxFailures);
    }
    return std::unexpected(LoginError::bad_credentials);
  }
  {
    std::lock_guard lock(mutex_);
    failures_.erase(key);
  }
  LoginOk ok{random_token(),
             random_token(),
             {row->id, username, row->role, false, "", split_scope(row->communes).communes,
              split_scope(row->communes).cameras}};
  ok.who.csrf = ok.csrf;
  db_.write(
      [id = row->id, th = token_hash(ok.token), csrf = ok.csrf, source, now_us](sqlite3* conn) {
        sqlite3_stmt* st = nullptr;
        sqlite3_prepare_v2(conn, "DELETE FROM session WHERE expires_us < ?1", -1, &st, nullptr);
        sqlite3_bind_int64(st, 1, now_us);
        sqlite3_step(st);
        sqlite3_finalize(st);
        sqlite3_prepare_v2(conn,
                           "INSERT INTO session (token_hash, user_id, csrf, source, created_us,"
                           " expires_us) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                           -1, &st, nullptr);
        sqlite3_bind_text(st, 1, th.c_str(), -1, SQLITE_TRANSIENT);
        sqlite3_bind_int64(st, 2, id);
        sqlite3_bind_text(st, 3, csrf.c_str(), -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(st, 4, source.c_str(), -1, SQLITE_TRANSIENT);
        sqlite3_bind_int64(st, 5, now_us);
        sqlite3_bind_int64(st, 6, now_us + kSessionUs);
        sqlite3_step(st);
        sqlite3_finalize(st);
      });
  db_.flush();
  return ok;
}

void Auth::logout(const std::string& token) {
  db_.write([th = token_hash(token)](sqlite3* conn) {
    sqlite3_stmt* st = nullptr;
    sqlite3_prepare_v2(conn, "DELETE FROM session WHERE token_hash = ?1", -1, &st, nullptr);
    sqlite3_bind_text(st, 1, th.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_step(st);
    sqlite3_finalize(st);
  });
  db_.flush();
}

void Auth::unlock(const std::string& username) {
  std::lock_guard lock(mutex_);
  std::erase_if(locked_until_, [&](const auto& kv) { return kv.first.first == username; });
  std::erase_if(failures_, [&](const auto& kv) { return kv.first.first == username; });
}

std::optional<Principal> Auth::authenticate(const HttpRequest& req, std::int64_t now_us) const {
  const std::string auth = header(req, "authorization");
  if (auth.starts_with("Bearer ")) {
    const std::string th = token_hash(auth.substr(7));
    return db_.read([&](sqlite3* conn) -> std::optional<Principal> {
      sqlite3_stmt* st = nullptr;
      sqlite3_prepare_v2(
          conn,
          "SELECT u.id, u.username, u.role, u.communes FROM api_token t JOIN user u ON"
          " u.id = t.user_id WHERE t.token_hash = ?1 AND t.revoked_us IS NULL AND"
          " u.disabled = 0",
          -1, &st, nullptr);
      sqlite3_bind_text(st, 1, th.c_str(), -1, SQLITE_TRANSIENT);
      std::optional<Principal> p;
      if (sqlite3_step(st) == SQLITE_ROW) {
        p = Principal{sqlite3_column_int64(st, 0),
                      col(st, 1),
                      role_from_string(col(st, 2)).value_or(Role::viewer),
                      true,
                      "",
                      split_scope(col(st, 3)).communes,
                      split_scope(col(st, 3)).cameras};
      }
      sqlite3_finalize(st);
      return p;
    });
  }
  const std::string token = session_token(req);
  if (token.empty()) return std::nullopt;
  const std::string th = token_hash(token);
  return db_.read([&](sqlite3* conn) -> std::optional<Principal> {
    sqlite3_stmt* st = nullptr;
    sqlite3_prepare_v2(
        conn,
        "SELECT u.id, u.username, u.role, s.csrf, u.communes FROM session s JOIN user u ON"
        " u.id = s.user_id WHERE s.token_hash = ?1 AND s.expires_us > ?2 AND"
        " u.disabled = 0",
        -1, &st, nullptr);
    sqlite3_bind_text(st, 1, th.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 2, now_us);
    std::optional<Principal> p;
    if (sqlite3_step(st) == SQLITE_ROW) {
      p = Principal{sqlite3_column_int64(st, 0),
                    col(st, 1),
                    role_from_string(col(st, 2)).value_or(Role::viewer),
                    false,
                    col(st, 3),
                    split_scope(col(st, 4)).communes,
                    split_scope(col(st, 4)).cameras};
    }
    sqlite3_finalize(st);
    return p;
  });
}

std::string Auth::session_token(const HttpRequest& req) {
  // Cookie: name=value pairs separated by "; ".
  const std::string cookies = header(req, "cookie");
  const std::string prefix = std::string(kCookie) + "=";
  std::string token;
  for (std::size_t at = 0; at < cookies.size();) {
    while (at < cookies.size() && cookies[at] == ' ') ++at;
    const auto end = cookies.find(';', at);
    const auto pair = cookies.substr(at, end == std::string::npos ? std::string::npos : end - at);
    if (pair.starts_with(prefix)) token = pair.substr(prefix.size());
    if (end == std::string::npos) break;
    at = end + 1;
  }
  return token;
}

bool Auth::csrf_ok(const Principal& who, const HttpRequest& req) {
  if (who.bearer) return true;
  const std::string sent = header(req, "x-csrf-token");
  return !sent.empty() && sent.size() == who.csrf.size() &&
         sodium_memcmp(sent.data(), who.csrf.data(), sent.size()) == 0;
}

std::string Auth::session_cookie(const std::string& token, bool secure) {
  return std::string(kCookie) + "=" + token +
         "; Path=/; HttpOnly; SameSite=Strict; Max-Age=" + std::to_string(kSessionUs / 1'000'000) +
         (secure ? "; Secure" : "");
}

std::string Auth::cleared_cookie(bool secure) {
  return std::string(kCookie) + "=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0" +
         (secure ? "; Secure" : "");
}

}  // namespace matthan::web
