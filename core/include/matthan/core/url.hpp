// RTSP URLs: brand presets and masking of credentials for logs and API answers.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "matthan/core/config.hpp"

namespace matthan {

std::optional<Brand> brand_from_string(std::string_view text);
std::string_view to_string(Brand brand);

struct StreamUrls {
  std::string main;
  std::string sub;
};

// The URLs a camera of this brand serves its main and sub stream on (channel is 1-based),
// with the credentials percent-encoded into the userinfo. Generic has no preset.
std::optional<StreamUrls> preset_urls(Brand brand, const std::string& host, int port, int channel,
                                      const std::string& username, const std::string& password);

// Replaces the password in "scheme://user:password@host" with "***" (and a lone user-info
// token too); also masks "password=" query parameters (XMEye style). Safe on any text.
std::string mask_credentials(std::string_view text);

// Percent-encodes a userinfo component.
std::string percent_encode_userinfo(std::string_view text);

// Puts credentials into a URL that has none.
std::string with_credentials(const std::string& url, const std::string& username,
                             const std::string& password);

}  // namespace matthan
