// Node-scoped sortable IDs (ULID): made when a thing starts, before any database insert, so
// messages can name it. 48-bit ms timestamp + 80 random bits, Crockford base32, 26 chars.
#pragma once

#include <cstdint>
#include <string>

namespace matthan {

std::string make_ulid(std::int64_t now_us);
// The ms timestamp of a ULID, or -1 if it is not a well-formed ULID.
std::int64_t ulid_time_ms(const std::string& ulid);

}  // namespace matthan
