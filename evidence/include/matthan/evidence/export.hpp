// Exports for evidence: cameras × a time range → one faststart MP4 per camera (stream-copied,
// with a subtitle track of server time), manifest.json (hashes, ranges covered and gaps, who and
// why, server time and NTP state, software version, audit chain head, signing key), SHA256SUMS
// (checkable with `sha256sum -c`) and manifest.json.sig (detached Ed25519 over manifest.json).
// An export puts an evidence hold on its range and is audited; its job row is in `export_job`.
#pragma once

#include <cstdint>
#include <expected>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "matthan/evidence/node_key.hpp"
#include "matthan/storage/database.hpp"

namespace matthan::evidence {

struct ExportCamera {
  std::string id, name, commune, hamlet, site;
};

struct ExportRequest {
  std::string node_id;
  std::vector<ExportCamera> cameras;
  std::string stream = "main";
  std::int64_t from_us = 0;
  std::int64_t to_us = 0;
  std::string reason;
  std::string requesting_unit;
  std::string officer;
  std::string case_id;
  std::string created_by;
  std::string out_dir;  // created; must not exist or be empty
  std::string time_zone;
  bool ntp_synchronised = false;
  std::int64_t clock_ahead_us = 0;  // server time minus the system clock (a step back absorbed)
  std::string id;                   // made when empty
  bool job_registered = false;      // register_export_job() already wrote the job row
};

struct ExportResult {
  std::string id;
  std::string out_dir;
  std::string manifest_sha256;
  std::string hold_id;
  std::int64_t bytes = 0;
  std::vector<std::string> files;
  std::vector<std::string> notes;  // e.g. a camera without footage in the range
};

// fraction of the whole export, and the camera being written.
using ExportProgress = std::function<void(double fraction, const std::string& camera)>;

// Writes the job row (state 'running') so the job is visible before run_export starts (the API
// answers 202 with the id, and the first poll must find it). Sets request.id when empty.
void register_export_job(storage::Database& db, ExportRequest& request, std::int64_t now_us);

std::expected<ExportResult, std::string> run_export(storage::Database& db, const NodeKey& key,
                                                    ExportRequest request, std::int64_t now_us,
                                                    const ExportProgress& progress = {});

struct VerifyReport {
  bool ok = false;
  std::string export_id;
  std::string fingerprint;            // of the key in the manifest
  std::vector<std::string> checked;   // files whose hash matched
  std::vector<std::string> problems;  // each names the file and what does not match
};

// Checks SHA256SUMS, the manifest's hashes and the signature; with `expected_public_base64`,
// also that the export was signed by that key (the node's own).
VerifyReport verify_export(const std::string& dir,
                           const std::optional<std::string>& expected_public_base64);

}  // namespace matthan::evidence
