#include "matthan/core/url.hpp"

#include <array>
#include <cctype>
#include <cstdio>
#include <utility>

namespace matthan {
namespace {
constexpr std::array<std::pair<Brand, std::string_view>, 8> kBrands{{
    {Brand::generic, "generic"},
    {Brand::hikvision, "hikvision"},
    {Brand::dahua, "dahua"},
    {Brand::kbvision, "kbvision"},
    {Brand::imou, "imou"},
    {Brand::ezviz, "ezviz"},
    {Brand::uniview, "uniview"},
    {Brand::xmeye, "xmeye"},
}};

std::string host_port(const std::string& host, int port) {
  const bool v6 = host.find(':') != std::string::npos;
  std::string out = v6 ? "[" + host + "]" : host;
  if (port != 554) out += ":" + std::to_string(port);
  return out;
}
}  // namespace

std::optional<Brand> brand_from_string(std::string_view text) {
  for (const auto& [b, name] : kBrands) {
    if (name == text) return b;
  }
  return std::nullopt;
}

std::string_view to_string(Brand brand) {
  for (const auto& [b, name] : kBrands) {
    if (b == brand) return name;
  }
  return "generic";
}

std::string percent_encode_userinfo(std::string_view text) {
  std::string out;
  for (const unsigned char c : text) {
    if (std::isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~') {
      out += static_cast<char>(c);
    } else {
      char buf[4];
      std::snprintf(buf, sizeof buf, "%%%02X", c);
      out += buf;
    }
  }
  return out;
}

std::string with_credentials(const std::string& url, const std::string& username,
                             const std::string& password) {
  if (username.empty()) return url;
  const auto scheme_end = url.find("://");
  if (scheme_end == std::string::npos) return url;
  const auto authority = scheme_end + 3;
  const auto path = url.find('/', authority);
  const auto at = url.find('@', authority);
  if (at != std::string::npos && (path == std::string::npos || at < path)) return url;
  std::string userinfo = percent_encode_userinfo(username);
  if (!password.empty()) userinfo += ":" + percent_encode_userinfo(password);
  return url.substr(0, authority) + userinfo + "@" + url.substr(authority);
}

std::optional<StreamUrls> preset_urls(Brand brand, const std::string& host, int port, int channel,
                                      const std::string& username, const std::string& password) {
  const std::string base = "rtsp://" + host_port(host, port);
  const std::string ch = std::to_string(channel);
  StreamUrls urls;
  switch (brand) {
    case Brand::hikvision:
      urls = {base + "/Streaming/Channels/" + ch + "01", base + "/Streaming/Channels/" + ch + "02"};
      break;
    case Brand::dahua:
    case Brand::kbvision:
    case Brand::imou:
      urls = {base + "/cam/realmonitor?channel=" + ch + "&subtype=0",
              base + "/cam/realmonitor?channel=" + ch + "&subtype=1"};
      break;
    case Brand::ezviz:
      urls = {base + "/h264/ch" + ch + "/main/av_stream",
              base + "/h264/ch" + ch + "/sub/av_stream"};
      break;
    case Brand::uniview:
      urls = {base + "/unicast/c" + ch + "/s0/live", base + "/unicast/c" + ch + "/s1/live"};
      break;
    case Brand::xmeye: {
      // XMEye DVRs take the credentials in the path, not in the RTSP userinfo.
      const std::string who = "/user=" + percent_encode_userinfo(username) +
                              "_password=" + percent_encode_userinfo(password) + "_channel=" + ch;
      return StreamUrls{base + who + "_stream=0.sdp?real_stream",
                        base + who + "_stream=1.sdp?real_stream"};
    }
    case Brand::generic:
      return std::nullopt;
  }
  urls.main = with_credentials(urls.main, username, password);
  urls.sub = with_credentials(urls.sub, username, password);
  return urls;
}

namespace {

bool is_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

bool starts_with_nocase(std::string_view text, std::size_t at, std::string_view word) {
  if (text.size() - at < word.size()) return false;
  for (std::size_t i = 0; i < word.size(); ++i) {
    const char c = text[at + i];
    if ((c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c) != word[i]) return false;
  }
  return true;
}

}  // namespace

// A plain scan, not std::regex: every log line passes through here (some hold a client's
// request target), and libstdc++'s regex recurses once per character it repeats.
std::string mask_credentials(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  std::size_t i = 0;
  while (i < text.size()) {
    // scheme://user:secret@host -> scheme://user:***@host. The authority ends at the first of
    // "/?#" or a space; its last '@' ends the secret (people type passwords such as "abc@123"
    // unencoded, and libav takes the last '@' too). A user name may hold '@' as well.
    if (text.compare(i, 3, "://") == 0 && i > 0 &&
        std::isalnum(static_cast<unsigned char>(text[i - 1])) != 0) {
      const std::size_t from = i + 3;
      std::size_t end = from;
      while (end < text.size() && text[end] != '/' && text[end] != '?' && text[end] != '#' &&
             !is_space(text[end])) {
        ++end;
      }
      const std::string_view authority = text.substr(from, end - from);
      const std::size_t at = authority.rfind('@');
      const std::size_t colon = at == std::string_view::npos ? at : authority.find(':');
      out += "://";
      if (colon != std::string_view::npos && colon < at) {
        out.append(authority.substr(0, colon));
        out += ":***";
        out.append(authority.substr(at));
      } else {
        out.append(authority);
      }
      i = end;
      continue;
    }
    // XMEye paths and query parameters: password=secret -> password=***. An XMEye path
    // separates its fields with '_', which a password may contain: the secret ends only where
    // the next field starts (or at '&' or a space).
    std::size_t key = 0;
    for (const std::string_view k : {"password=", "passwd=", "pwd="}) {
      if (starts_with_nocase(text, i, k)) {
        key = k.size();
        break;
      }
    }
    if (key > 0) {
      out.append(text.substr(i, key));
      out += "***";
      i += key;
      while (i < text.size() && text[i] != '&' && !is_space(text[i]) &&
             !starts_with_nocase(text, i, "_channel=") &&
             !starts_with_nocase(text, i, "_stream=") && !starts_with_nocase(text, i, "_user=")) {
        ++i;
      }
      continue;
    }
    out += text[i++];
  }
  return out;
}

}  // namespace matthan
