// Commune operation: the organisation (province → commune → hamlet → camera inventory), cases
// ("vụ việc") linked to events and exports, and the operation report — as HTTP routes and as
// `matthan report`.
#pragma once

#include <string>
#include <vector>

#include "matthan/core/config.hpp"
#include "matthan/storage/database.hpp"
#include "matthan/web/router.hpp"

namespace matthan::app {

// Read-only after start; the routes run on the HTTP server's worker threads.
struct OperationContext {
  const Config& config;
  storage::Database& db;
};

void add_operation_routes(web::Router& router, OperationContext& ctx);

int report_cli(const std::vector<std::string>& args);
// `matthan record EXPORT-DIR --out FILE`: the extraction record of an export, from its manifest.
int record_cli(const std::vector<std::string>& args);

}  // namespace matthan::app
