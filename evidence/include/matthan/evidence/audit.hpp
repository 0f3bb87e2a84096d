// The audit log (table `audit`, migration 0005): append-only and hash-chained — each row's hash
// is SHA-256 of the previous row's hash and the row's own text, so an edited or deleted row
// breaks the chain from there on. Every export, hold, clip view, backup and restore is written.
#pragma once

#include <cstdint>
#include <expected>
#include <string>
#include <vector>

#include "matthan/evidence/node_key.hpp"
#include "matthan/storage/database.hpp"

struct sqlite3;

namespace matthan::evidence {

struct AuditRecord {
  std::int64_t seq = 0;
  std::int64_t at_us = 0;
  std::string actor, action, target, detail;  // detail: JSON text
  std::string hash;
};

struct AuditHead {
  std::int64_t seq = 0;  // 0: empty log
  std::string hash;      // 64 zeros for an empty log
};

// Appends on a connection inside a write transaction (the database's writer thread).
void append_audit_row(sqlite3* conn, const std::string& node_id, std::int64_t at_us,
                      const std::string& actor, const std::string& action,
                      const std::string& target, const std::string& detail_json);
// Queues the append on the writer thread.
void append_audit(storage::Database& db, const std::string& node_id, std::int64_t at_us,
                  const std::string& actor, const std::string& action, const std::string& target,
                  const std::string& detail_json = "{}");

AuditHead audit_head(storage::Database& db);
// Newest first.
std::vector<AuditRecord> list_audit(storage::Database& db, int limit);
// Recomputes every hash: the head when the chain holds, else which row breaks it.
std::expected<AuditHead, std::string> verify_audit_chain(storage::Database& db);

// Signs the chain's head with the node key and appends it as an `audit_head` row (the server does
// this at start and hourly): a rewritten log would need the node's secret key to re-sign it.
void sign_audit_head(storage::Database& db, const std::string& node_id, const NodeKey& key,
                     std::int64_t now_us);

struct AuditCheck {
  std::int64_t rows = 0;
  std::int64_t signed_heads = 0;  // audit_head rows whose signature verified
  std::string error;              // empty: all good
};
// The whole chain, and every signed head against `public_base64`.
AuditCheck check_audit(storage::Database& db, const std::string& public_base64);

}  // namespace matthan::evidence
