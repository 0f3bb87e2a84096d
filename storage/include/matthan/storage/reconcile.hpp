// Start-up reconciliation of the recording index with the disk: segments left `open` by a
// crash are finished from their files (indexed up to the last complete fragment), and segment
// files the index does not know (written before the index row was committed) are indexed.
// A torn last fragment (a kill mid-write) is cut so that the file plays without an error;
// nothing else is deleted; what cannot be read is marked and reported.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "matthan/storage/database.hpp"

namespace matthan::storage {

struct ReconcileReport {
  int recovered = 0;                  // open rows finished from their files
  int unreadable = 0;                 // open rows whose file has no readable frame (or is gone)
  int orphans = 0;                    // files found on disk without a row, now indexed
  std::vector<std::string> messages;  // one line per segment touched, for the log
};

// Cuts a fragmented MP4 after its last complete moof+mdat pair (a kill mid-write leaves the last
// one torn); files without a complete ftyp+moov are left alone. Returns the bytes cut.
std::int64_t cut_torn_fragment(const std::string& path);

// Runs before recording starts (nothing else writes segments then).
ReconcileReport reconcile_segments(Database& db, const std::string& node_id,
                                   const std::string& recordings_root);

}  // namespace matthan::storage
