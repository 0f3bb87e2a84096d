// Recordings and evidence, as the CLI and the HTTP API offer them: clips (with HTTP Range),
// recordings of a range, holds, exports with progress, the audit log, the node key, storage
// figures; `matthan export | verify-export | hold | backup | restore`.
#pragma once

#include <functional>
#include <memory>
#include <mutex>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>
#include <vector>

#include "matthan/core/clock.hpp"
#include "matthan/core/config.hpp"
#include "matthan/evidence/node_key.hpp"
#include "matthan/storage/database.hpp"
#include "matthan/web/http_server.hpp"

namespace matthan::app {

// What the evidence routes need from the running server. Thread-safe: the routes run on the
// connections' strands; export jobs run on their own threads.
struct EvidenceContext {
  const Config& config;
  storage::Database& db;
  const evidence::NodeKey& key;
  std::function<bool()> ntp_synchronised;
  std::function<nlohmann::json()> storage_json;  // the last retention pass and alarm
  const Clock& clock;                            // server time (never runs backwards)
  std::function<std::int64_t()> clock_ahead_us;  // server time minus the system clock
};

// nullopt: the request is not for an evidence route.
std::optional<web::HttpResponse> evidence_route(const web::HttpRequest& req, EvidenceContext& ctx);
// Whether the kernel believes the clock is NTP-synchronised (STA_UNSYNC clear).
bool ntp_synchronised();
// Waits for export jobs started through the API (server stopping).
void join_export_jobs();

// "2026-11-29T22:00:00+07:00", "2026-11-29 22:00:00" (server local time), "now", "now-90s",
// "now-5m", "now-2h".
std::optional<std::int64_t> parse_time_arg(const std::string& text, std::int64_t now_us);

// What every CLI command that works on the node's data starts from.
struct CliBase {
  std::string config_path;
  std::optional<Config> config;
  std::unique_ptr<storage::Database> db;
};
// $MATTHAN_CONFIG, else /etc/matthan/matthan.yaml.
std::string default_config_path();
// Loads the config (its time zone applied, as `run` does) and opens the database; false after
// saying why on stderr.
bool open_node(CliBase& b);
// "cli:USER": who ran a command, for the audit log.
std::string cli_actor();

int export_cli(const std::vector<std::string>& args);
int verify_export_cli(const std::vector<std::string>& args);
int hold_cli(const std::vector<std::string>& args);
int backup_cli(const std::vector<std::string>& args);
int restore_cli(const std::vector<std::string>& args);
int audit_cli(const std::vector<std::string>& args);

}  // namespace matthan::app
