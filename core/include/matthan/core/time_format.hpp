// ISO 8601 text for µs UTC instants: what the CLI and API speak.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace matthan {

// "2026-11-29T04:25:51.123456Z"
std::string format_iso8601_us(std::int64_t us);
// Accepts "YYYY-MM-DDTHH:MM:SS[.ffffff](Z|±HH:MM)"; an offset is required.
std::optional<std::int64_t> parse_iso8601_us(std::string_view text);

}  // namespace matthan
