// Backup and restore of what a node cannot lose: the database (SQLite online backup, consistent
// while the server runs), the config, and the node's signing key (without it no earlier export
// can be checked against this node). BACKUP.json lists every file with its SHA-256.
#pragma once

#include <expected>
#include <string>
#include <vector>

namespace matthan::evidence {

struct BackupPaths {
  std::string data_dir;     // holds matthan.db and keys/
  std::string config_path;  // the YAML config
};

// Writes <out_dir>/{matthan.db, matthan.yaml, keys/, BACKUP.json}; returns the files written.
std::expected<std::vector<std::string>, std::string> backup_node(const BackupPaths& from,
                                                                 const std::string& out_dir);
// Checks BACKUP.json's hashes, then copies the database and key into `to.data_dir` (which must
// not have a database yet) and the config to `to.config_path` (unless one is there already).
std::expected<std::vector<std::string>, std::string> restore_node(const std::string& backup_dir,
                                                                  const BackupPaths& to);

}  // namespace matthan::evidence
