// Commune operation: the organisation (province → commune → hamlet → camera inventory), cases
// ("vụ việc") linked to events and exports, and the operation report — as HTTP routes and as
// `matthan report`.
#pragma once

#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "matthan/core/config.hpp"
#include "matthan/storage/database.hpp"
#include "matthan/web/router.hpp"

namespace matthan::app {

// The organisation and inventory can change while the server runs (the admin UI's edits), so
// the routes read a snapshot of the config. Thread-safe: mutex_ guards the snapshot pointer; a
// snapshot itself is never changed. The routes run on the HTTP server's worker threads.
class OperationContext {
 public:
  OperationContext(const Config& start, std::string config_path, storage::Database& database)
      : db(database),
        config_path_(std::move(config_path)),
        config_(std::make_shared<const Config>(start)) {}
  std::shared_ptr<const Config> config() const {
    std::lock_guard lock(mutex_);
    return config_;
  }
  void replace(std::shared_ptr<const Config> next) {
    std::lock_guard lock(mutex_);
    config_ = std::move(next);
  }
  const std::string& config_path() const { return config_path_; }
  storage::Database& db;

 private:
  const std::string config_path_;
  mutable std::mutex mutex_;
  std::shared_ptr<const Config> config_;
};

void add_operation_routes(web::Router& router, OperationContext& ctx);

int report_cli(const std::vector<std::string>& args);
// `matthan record EXPORT-DIR --out FILE`: the extraction record of an export, from its manifest.
int record_cli(const std::vector<std::string>& args);

}  // namespace matthan::app
