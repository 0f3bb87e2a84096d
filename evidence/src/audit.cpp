#include "matthan/evidence/audit.hpp"

#include <spdlog/spdlog.h>
#include <sqlite3.h>

#include <map>
#include <nlohmann/json.hpp>

#include "matthan/evidence/node_key.hpp"

namespace matthan::evidence {

namespace {

const std::string kGenesis(64, '0');

std::string row_hash(const std::string& prev, const std::string& node, std::int64_t seq,
                     std::int64_t at_us, const std::string& actor, const std::string& action,
                     const std::string& target, const std::string& detail) {
  return sha256_hex(prev + "\n" + node + "\n" + std::to_string(seq) + "\n" + std::to_string(at_us) +
                    "\n" + actor + "\n" + action + "\n" + target + "\n" + detail);
}

std::string col(sqlite3_stmt* st, int c) {
  const auto* t = sqlite3_column_text(st, c);
  return t != nullptr ? reinterpret_cast<const char*>(t) : "";
}

}  // namespace

void append_audit_row(sqlite3* conn, const std::string& node_id, std::int64_t at_us,
                      const std::string& actor, const std::string& action,
                      const std::string& target, const std::string& detail_json) {
  std::int64_t seq = 1;
  std::string prev = kGenesis;
  sqlite3_stmt* st = nullptr;
  sqlite3_prepare_v2(conn, "SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1", -1, &st,
                     nullptr);
  if (sqlite3_step(st) == SQLITE_ROW) {
    seq = sqlite3_column_int64(st, 0) + 1;
    prev = col(st, 1);
  }
  sqlite3_finalize(st);
  const std::string hash = row_hash(prev, node_id, seq, at_us, actor, action, target, detail_json);
  sqlite3_prepare_v2(conn,
                     "INSERT INTO audit (seq, node_id, at_us, actor, action, target, detail,"
                     " prev_hash, hash) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                     -1, &st, nullptr);
  sqlite3_bind_int64(st, 1, seq);
  sqlite3_bind_text(st, 2, node_id.c_str(), -1, SQLITE_TRANSIENT);
  sqlite3_bind_int64(st, 3, at_us);
  sqlite3_bind_text(st, 4, actor.c_str(), -1, SQLITE_TRANSIENT);
  sqlite3_bind_text(st, 5, action.c_str(), -1, SQLITE_TRANSIENT);
  sqlite3_bind_text(st, 6, target.c_str(), -1, SQLITE_TRANSIENT);
  sqlite3_bind_text(st, 7, detail_json.c_str(), -1, SQLITE_TRANSIENT);
  sqlite3_bind_text(st, 8, prev.c_str(), -1, SQLITE_TRANSIENT);
  sqlite3_bind_text(st, 9, hash.c_str(), -1, SQLITE_TRANSIENT);
  if (sqlite3_step(st) != SQLITE_DONE) {
    spdlog::error("audit: cannot append {} {}: {}", action, target, sqlite3_errmsg(conn));
  }
  sqlite3_finalize(st);
}

void append_audit(storage::Database& db, const std::string& node_id, std::int64_t at_us,
                  const std::string& actor, const std::string& action, const std::string& target,
                  const std::string& detail_json) {
  db.write([=](sqlite3* conn) {
    append_audit_row(conn, node_id, at_us, actor, action, target, detail_json);
  });
}

AuditHead audit_head(storage::Database& db) {
  return db.read([](sqlite3* conn) {
    AuditHead head{0, kGenesis};
    sqlite3_stmt* st = nullptr;
    sqlite3_prepare_v2(conn, "SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1", -1, &st,
                       nullptr);
    if (sqlite3_step(st) == SQLITE_ROW) head = {sqlite3_column_int64(st, 0), col(st, 1)};
    sqlite3_finalize(st);
    return head;
  });
}

std::vector<AuditRecord> list_audit(storage::Database& db, int limit) {
  return db.read([limit](sqlite3* conn) {
    std::vector<AuditRecord> out;
    sqlite3_stmt* st = nullptr;
    sqlite3_prepare_v2(conn,
                       "SELECT seq, at_us, actor, action, target, detail, hash FROM audit"
                       " ORDER BY seq DESC LIMIT ?1",
                       -1, &st, nullptr);
    sqlite3_bind_int(st, 1, limit);
    while (sqlite3_step(st) == SQLITE_ROW) {
      out.push_back({sqlite3_column_int64(st, 0), sqlite3_column_int64(st, 1), col(st, 2),
                     col(st, 3), col(st, 4), col(st, 5), col(st, 6)});
    }
    sqlite3_finalize(st);
    return out;
  });
}

std::expected<AuditHead, std::string> verify_audit_chain(storage::Database& db) {
  return db.read([](sqlite3* conn) -> std::expected<AuditHead, std::string> {
    sqlite3_stmt* st = nullptr;
    sqlite3_prepare_v2(conn,
                       "SELECT seq, node_id, at_us, actor, action, target, detail, prev_hash, hash"
                       " FROM audit ORDER BY seq",
                       -1, &st, nullptr);
    AuditHead head{0, kGenesis};
    std::string error;
    while (sqlite3_step(st) == SQLITE_ROW) {
      const std::int64_t seq = sqlite3_column_int64(st, 0);
      if (seq != head.seq + 1) {
        error = "audit row " + std::to_string(head.seq + 1) + " is missing";
        break;
      }
      const std::string expect = row_hash(head.hash, col(st, 1), seq, sqlite3_column_int64(st, 2),
                                          col(st, 3), col(st, 4), col(st, 5), col(st, 6));
      if (col(st, 7) != head.hash || col(st, 8) != expect) {
        error = "audit row " + std::to_string(seq) + " does not match its hash";
        break;
      }
      head = {seq, expect};
    }
    sqlite3_finalize(st);
    if (!error.empty()) return std::unexpected(error);
    return head;
  });
}

namespace {
std::string head_message(const std::string& node, std::int64_t seq, const std::string& hash) {
  return "matthan-audit-head\n" + node + "\n" + std::to_string(seq) + "\n" + hash;
}
}  // namespace

void sign_audit_head(storage::Database& db, const std::string& node_id, const NodeKey& key,
                     std::int64_t now_us) {
  db.write([node_id, key, now_us](sqlite3* conn) {
    std::int64_t seq = 0;
    std::string hash = kGenesis;
    sqlite3_stmt* st = nullptr;
    sqlite3_prepare_v2(conn, "SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1", -1, &st,
                       nullptr);
    if (sqlite3_step(st) == SQLITE_ROW) {
      seq = sqlite3_column_int64(st, 0);
      hash = col(st, 1);
    }
    sqlite3_finalize(st);
    const nlohmann::json detail{{"seq", seq},
                                {"hash", hash},
                                {"fingerprint", key.fingerprint()},
                                {"signature", key.sign_base64(head_message(node_id, seq, hash))}};
    append_audit_row(conn, node_id, now_us, "server", "audit_head", std::to_string(seq),
                     detail.dump());
  });
}

AuditCheck check_audit(storage::Database& db, const std::string& public_base64) {
  AuditCheck out;
  auto chain = verify_audit_chain(db);
  if (!chain) {
    out.error = chain.error();
    return out;
  }
  out.rows = chain->seq;
  db.read([&](sqlite3* conn) {
    // The chain verified, so each stored hash is the recomputed one: a signed head must name
    // the hash its row has now (a log rewritten after signing no longer matches).
    std::map<std::int64_t, std::string> hashes{{0, kGenesis}};
    sqlite3_stmt* st = nullptr;
    sqlite3_prepare_v2(conn, "SELECT seq, hash FROM audit", -1, &st, nullptr);
    while (sqlite3_step(st) == SQLITE_ROW) hashes[sqlite3_column_int64(st, 0)] = col(st, 1);
    sqlite3_finalize(st);
    sqlite3_prepare_v2(conn, "SELECT seq, node_id, detail FROM audit WHERE action = 'audit_head'",
                       -1, &st, nullptr);
    while (sqlite3_step(st) == SQLITE_ROW && out.error.empty()) {
      const auto d = nlohmann::json::parse(col(st, 2), nullptr, false);
      const std::int64_t seq = d.is_object() && d.contains("seq") && d["seq"].is_number_integer()
                                   ? d["seq"].get<std::int64_t>()
                                   : -1;
      auto text = [&](const char* k) {
        return d.is_object() && d.contains(k) && d[k].is_string() ? d[k].get<std::string>()
                                                                  : std::string();
      };
      const std::string hash = text("hash");
      const std::string sig = text("signature");
      const auto at = hashes.find(seq);
      const bool ok = at != hashes.end() && at->second == hash &&
                      verify_signature(public_base64, head_message(col(st, 1), seq, hash), sig);
      if (!ok) {
        out.error = "audit row " + std::to_string(sqlite3_column_int64(st, 0)) +
                    ": the signed head does not match the log or this node's key";
      } else {
        ++out.signed_heads;
      }
    }
    sqlite3_finalize(st);
    return 0;
  });
  return out;
}

}  // namespace matthan::evidence
