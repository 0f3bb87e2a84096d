// Commune operation: the organisation (province → commune → hamlet → camera inventory), cases
// ("vụ việc") linked to events and exports, and the operation report — as HTTP routes and as
// `matthan report`.
#pragma once

#include <expected>
#include <functional>
#include <memory>
#include <mutex>
#include <nlohmann/json_fwd.hpp>
#include <optional>
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

// The admin UI's edits (data_dir/inventory.json): `change` edits the JSON (or answers an error),
// the result is checked as `matthan run` would read it with the config file, written whole
// (0600, synced, renamed) and made the snapshot in use. One edit at a time.
std::expected<std::shared_ptr<const Config>, web::HttpResponse> edit_overlay(
    OperationContext& ctx,
    const std::function<std::optional<web::HttpResponse>(nlohmann::json&)>& change);

// Cameras added, changed or removed by an admin (kept in the overlay, applied by a restart in
// place: the pipelines are built at start), and POST /api/admin/restart. `restart` asks the
// process to stop cleanly and start again.
void add_camera_admin_routes(web::Router& router, OperationContext& ctx, const Config& running,
                             std::function<void()> restart);

int report_cli(const std::vector<std::string>& args);
// `matthan record EXPORT-DIR --out FILE`: the extraction record of an export, from its manifest.
int record_cli(const std::vector<std::string>& args);

}  // namespace matthan::app
