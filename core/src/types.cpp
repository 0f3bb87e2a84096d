#include "matthan/core/types.hpp"

#include <array>
#include <utility>

namespace matthan {

std::string_view to_string(StreamKind kind) {
  return kind == StreamKind::main ? "main" : "sub";
}

namespace {
constexpr std::array<std::pair<StreamState, std::string_view>, 7> kStates{{
    {StreamState::connecting, "connecting"},
    {StreamState::online, "online"},
    {StreamState::offline, "offline"},
    {StreamState::unauthorized, "unauthorized"},
    {StreamState::not_found, "not_found"},
    {StreamState::error, "error"},
    {StreamState::disabled, "disabled"},
}};
}  // namespace

std::string_view to_string(StreamState state) {
  for (const auto& [s, name] : kStates) {
    if (s == state) return name;
  }
  return "unknown";
}

std::optional<StreamState> stream_state_from_string(std::string_view text) {
  for (const auto& [s, name] : kStates) {
    if (name == text) return s;
  }
  return std::nullopt;
}

std::string_view to_string(Codec codec) {
  switch (codec) {
    case Codec::h264:
      return "h264";
    case Codec::h265:
      return "h265";
    case Codec::mjpeg:
      return "mjpeg";
    case Codec::aac:
      return "aac";
    case Codec::pcm_alaw:
      return "pcm_alaw";
    case Codec::pcm_mulaw:
      return "pcm_mulaw";
    case Codec::other:
      return "other";
    case Codec::unknown:
      break;
  }
  return "unknown";
}

std::string_view to_string(Transport transport) {
  return transport == Transport::tcp ? "tcp" : "udp";
}

}  // namespace matthan

#include "matthan/core/event.hpp"

namespace matthan {
std::string_view to_string(EventPhase phase) {
  switch (phase) {
    case EventPhase::start:
      return "start";
    case EventPhase::update:
      return "update";
    case EventPhase::end:
      return "end";
  }
  return "update";
}
}  // namespace matthan
