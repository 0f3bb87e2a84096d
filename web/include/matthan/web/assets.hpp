// The browser UI's files (web/www), built into the binary.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace matthan::web {

// "/" means "/index.html"; nullopt when there is no such file.
std::optional<std::string_view> asset(const std::string& path);

}  // namespace matthan::web
