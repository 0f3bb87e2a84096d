// Shared by the report's renderers: Vietnamese labels, number and date formats, and the report's
// sections as plain tables, so HTML, PDF, CSV and XLSX show the same rows in the same order.
#pragma once

#include <expected>
#include <optional>
#include <string>
#include <vector>

#include "matthan/report/operation_report.hpp"

namespace matthan::report {

// "95,40 %" (Vietnamese decimal comma); "—" when there is nothing to divide.
std::string percent_vi(std::optional<double> share);
// "12,5" hours.
std::string hours_vi(std::int64_t us);
// "29/11/2026" from "2026-11-29".
std::string day_vi(const std::string& day);
// "29/11/2026 14:05" local.
std::string time_vi(std::int64_t us);
// A share as a number with two decimals of a percent, for CSV: "95.40"; "" when none.
std::string percent_plain(std::optional<double> share);
std::string hours_plain(std::int64_t us);

struct Table {
  std::string title;  // the section heading
  std::vector<std::string> header;
  std::vector<std::vector<std::string>> rows;  // display text (Vietnamese formats)
};

// The report as its sections: the same headings and rows in every format.
struct Section {
  std::string heading;             // e.g. "III. Tình trạng hoạt động của camera"
  std::vector<std::string> lines;  // sentences before the tables
  std::vector<Table> tables;
  enum class Chart { none, uptime, weeks } chart = Chart::none;
};
std::vector<Section> sections(const ReportData& d);

// The extraction record ("biên bản trích xuất dữ liệu camera") of one export, from its manifest.
struct RecordDoc {
  std::string number;                                                   // the export's id
  std::vector<std::pair<std::string, std::vector<std::string>>> parts;  // heading, lines
  Table files;
  std::vector<std::string> integrity;  // hashes, key fingerprint, how to check
  std::vector<std::string> signers;    // signature columns
};
std::expected<RecordDoc, std::string> record_doc(const std::string& manifest_json,
                                                 const std::string& manifest_sha256,
                                                 const std::string& place);
inline constexpr const char* kRecordTitle = "BIÊN BẢN TRÍCH XUẤT DỮ LIỆU CAMERA";

inline constexpr const char* kTitle = "BÁO CÁO HOẠT ĐỘNG MÔ HÌNH CAMERA AN NINH";

}  // namespace matthan::report
