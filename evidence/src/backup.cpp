#include "matthan/evidence/backup.hpp"

#include <sqlite3.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "matthan/evidence/node_key.hpp"

namespace matthan::evidence {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

std::expected<void, std::string> online_backup(const std::string& src, const std::string& dst) {
  sqlite3* from = nullptr;
  sqlite3* to = nullptr;
  std::string error;
  if (sqlite3_open_v2(src.c_str(), &from, SQLITE_OPEN_READONLY, nullptr) != SQLITE_OK) {
    error = "cannot open " + src + ": " + sqlite3_errmsg(from);
  } else if (sqlite3_open(dst.c_str(), &to) != SQLITE_OK) {
    error = "cannot create " + dst + ": " + sqlite3_errmsg(to);
  } else {
    sqlite3_busy_timeout(from, 5000);
    sqlite3_backup* b = sqlite3_backup_init(to, "main", from, "main");
    if (b == nullptr) {
      error = std::string("backup failed: ") + sqlite3_errmsg(to);
    } else {
      int rc = SQLITE_OK;
      // Steps of 256 pages: the server's writer is not starved while a large database copies.
      while ((rc = sqlite3_backup_step(b, 256)) == SQLITE_OK || rc == SQLITE_BUSY ||
             rc == SQLITE_LOCKED) {
        if (rc != SQLITE_OK) sqlite3_sleep(20);
      }
      sqlite3_backup_finish(b);
      if (rc != SQLITE_DONE) error = std::string("backup failed: ") + sqlite3_errstr(rc);
    }
  }
  sqlite3_close(from);
  sqlite3_close(to);
  if (!error.empty()) return std::unexpected(error);
  return {};
}

std::expected<void, std::string> copy(const std::string& from, const std::string& to) {
  std::error_code ec;
  fs::copy_file(from, to, fs::copy_options::overwrite_existing, ec);
  if (ec) return std::unexpected("cannot copy " + from + " to " + to + ": " + ec.message());
  return {};
}

}  // namespace

std::expected<std::vector<std::string>, std::string> backup_node(const BackupPaths& from,
                                                                 const std::string& out_dir) {
  std::error_code ec;
  if (fs::exists(out_dir, ec) && !fs::is_empty(out_dir, ec))
    return std::unexpected(out_dir + " exists and is not empty");
  fs::create_directories(out_dir + "/keys", ec);
  if (ec) return std::unexpected("cannot create " + out_dir + ": " + ec.message());
  ::chmod((out_dir + "/keys").c_str(), 0700);
  std::vector<std::string> files;
  if (auto b = online_backup(from.data_dir + "/matthan.db", out_dir + "/matthan.db"); !b)
    return std::unexpected(b.error());
  files.push_back("matthan.db");
  if (auto c = copy(from.config_path, out_dir + "/matthan.yaml"); !c)
    return std::unexpected(c.error());
  files.push_back("matthan.yaml");
  for (const char* k : {"node_ed25519.key", "node_ed25519.pub"}) {
    const std::string src = key_dir(from.data_dir) + "/" + k;
    if (!fs::exists(src)) continue;
    if (auto c = copy(src, out_dir + "/keys/" + k); !c) return std::unexpected(c.error());
    files.push_back(std::string("keys/") + k);
  }
  ::chmod((out_dir + "/keys/node_ed25519.key").c_str(), 0600);
  json manifest{{"format", "matthan-backup/1"}, {"files", json::object()}};
  for (const auto& f : files) {
    auto sha = sha256_file_hex(out_dir + "/" + f);
    if (!sha) return std::unexpected(sha.error());
    manifest["files"][f] = *sha;
  }
  std::ofstream(out_dir + "/BACKUP.json") << manifest.dump(2) << "\n";
  return files;
}

std::expected<std::vector<std::string>, std::string> restore_node(const std::string& backup_dir,
                                                                  const BackupPaths& to) {
  json manifest;
  try {
    std::ifstream in(backup_dir + "/BACKUP.json");
    manifest = json::parse(in);
  } catch (const std::exception&) {
    return std::unexpected(backup_dir + "/BACKUP.json is missing or not JSON: not a backup");
  }
  for (const auto& [file, sha] : manifest["files"].items()) {
    auto actual = sha256_file_hex(backup_dir + "/" + file);
    if (!actual) return std::unexpected("backup file " + file + " is missing");
    if (*actual != sha.get<std::string>())
      return std::unexpected("backup file " + file + " does not match BACKUP.json: damaged");
  }
  std::error_code ec;
  if (fs::exists(to.data_dir + "/matthan.db"))
    return std::unexpected(to.data_dir + " already has a database: restore into an empty data dir");
  if (fs::exists(key_dir(to.data_dir) + "/node_ed25519.key"))
    return std::unexpected(to.data_dir + " already has a node key: restore into an empty data dir");
  fs::create_directories(key_dir(to.data_dir), ec);
  ::chmod(key_dir(to.data_dir).c_str(), 0700);
  std::vector<std::string> done;
  if (auto c = copy(backup_dir + "/matthan.db", to.data_dir + "/matthan.db"); !c)
    return std::unexpected(c.error());
  done.push_back(to.data_dir + "/matthan.db");
  for (const char* k : {"node_ed25519.key", "node_ed25519.pub"}) {
    if (!fs::exists(backup_dir + "/keys/" + k)) continue;
    if (auto c = copy(backup_dir + "/keys/" + k, key_dir(to.data_dir) + "/" + k); !c)
      return std::unexpected(c.error());
    done.push_back(key_dir(to.data_dir) + "/" + k);
  }
  ::chmod((key_dir(to.data_dir) + "/node_ed25519.key").c_str(), 0600);
  if (!to.config_path.empty() && !fs::exists(to.config_path)) {
    if (auto c = copy(backup_dir + "/matthan.yaml", to.config_path); !c)
      return std::unexpected(c.error());
    done.push_back(to.config_path);
  }
  return done;
}

}  // namespace matthan::evidence
