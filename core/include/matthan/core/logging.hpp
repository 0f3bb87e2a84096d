// Logging set-up. Every message goes through mask_credentials() on its way out, so a URL with a
// password in it cannot reach a log file even by mistake.
#pragma once

#include <string>

namespace matthan {

// level: trace, debug, info, warn, error. file empty: stderr only.
void init_logging(const std::string& level, const std::string& file);

}  // namespace matthan
