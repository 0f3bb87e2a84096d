#include "matthan/alerts/alert_message.hpp"

#include <nlohmann/json.hpp>

#include "matthan/core/event_json.hpp"

#include <algorithm>
#include <ctime>

#include "matthan/core/time_format.hpp"

namespace matthan::alerts {
namespace {

bool listed(const std::vector<std::string>& list, const std::string& value) {
  return std::find(list.begin(), list.end(), value) != list.end();
}

// "23:41:05 29/11/2026": how a Vietnamese reader writes a time and a day.
std::string local_time_text(std::int64_t us) {
  const std::time_t secs = static_cast<std::time_t>(us / 1'000'000);
  std::tm tm{};
  if (localtime_r(&secs, &tm) == nullptr) return format_iso8601_us(us);
  char buf[32];
  const std::size_t n = std::strftime(buf, sizeof buf, "%H:%M:%S %d/%m/%Y", &tm);
  return std::string(buf, n);
}

}  // namespace

bool channel_accepts(const AlertChannelConfig& ch, const Event& e) {
  if (ch.armed_only && !e.armed) return false;
  if (!ch.cameras.empty() && !listed(ch.cameras, e.camera_id)) return false;
  if (!ch.zones.empty()) {
    const bool any = std::any_of(e.zones.begin(), e.zones.end(),
                                 [&](const std::string& z) { return listed(ch.zones, z); });
    if (!any) return false;
  }
  if (!ch.types.empty() && !listed(ch.types, e.type) &&
      !(!e.label.empty() && listed(ch.types, e.label))) {
    return false;
  }
  return true;
}

std::string event_words(const Event& e) {
  if (e.label == "person" || e.type == "person") return "Phát hiện người";
  if (e.type == "motion") return "Chuyển động";
  if (e.type == "tamper") return "Camera bị che/mất nét";
  if (e.type == "camera_offline") return "Camera mất kết nối";
  return e.type;
}

std::string alert_text(const Event& e, std::string_view camera_name, std::string_view link) {
  std::string text = "⚠️ " + event_words(e) + " — ";
  text += camera_name.empty() ? std::string_view(e.camera_id) : camera_name;
  if (!e.hamlet.empty()) text += " (" + e.hamlet + ")";
  // "all" is the whole frame of a camera without zones: naming it tells nobody anything.
  const bool only_all = e.zones.size() == 1 && e.zones.front() == "all";
  if (!e.zones.empty() && !only_all) {
    text += ", vùng ";
    for (std::size_t i = 0; i < e.zones.size(); ++i) {
      if (i > 0) text += ", ";
      text += e.zones[i];
    }
  }
  text += ", " + local_time_text(e.start_us);
  if (!link.empty()) {
    text += "\n";
    text += link;
  }
  return text;
}

std::string event_link(std::string_view base, const Event& e) {
  // The event's page: its snapshot, clip and the button that acknowledges the alert.
  if (base.empty()) return {};
  while (!base.empty() && base.back() == '/') base.remove_suffix(1);
  return std::string(base) + "/#/event/" + e.id;
}

std::string webhook_json(const std::string& node_id, EventPhase phase, const Event& e,
                         std::string_view text, std::string_view link,
                         const std::optional<std::string>& jpeg) {
  nlohmann::json j{{"schema", kAlertSchemaVersion},
                   {"node_id", node_id},
                   {"phase", std::string(to_string(phase))},
                   {"event", event_body_json(e)},
                   {"text", std::string(text)}};
  if (!link.empty()) j["link"] = std::string(link);
  if (jpeg) j["snapshot_jpeg_base64"] = base64_encode(*jpeg);
  return j.dump();
}

std::string base64_encode(std::string_view in) {
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((in.size() + 2) / 3 * 4);
  std::size_t i = 0;
  for (; i + 2 < in.size(); i += 3) {
    const auto n = (static_cast<std::uint32_t>(static_cast<unsigned char>(in[i])) << 16) |
                   (static_cast<std::uint32_t>(static_cast<unsigned char>(in[i + 1])) << 8) |
                   static_cast<std::uint32_t>(static_cast<unsigned char>(in[i + 2]));
    out += kAlphabet[(n >> 18) & 63];
    out += kAlphabet[(n >> 12) & 63];
    out += kAlphabet[(n >> 6) & 63];
    out += kAlphabet[n & 63];
  }
  if (i < in.size()) {
    auto n = static_cast<std::uint32_t>(static_cast<unsigned char>(in[i])) << 16;
    if (i + 1 < in.size())
      n |= static_cast<std::uint32_t>(static_cast<unsigned char>(in[i + 1])) << 8;
    out += kAlphabet[(n >> 18) & 63];
    out += kAlphabet[(n >> 12) & 63];
    out += i + 1 < in.size() ? kAlphabet[(n >> 6) & 63] : '=';
    out += '=';
  }
  return out;
}

}  // namespace matthan::alerts
