// Shared vocabulary of every stage: stream kinds, states, codecs.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace matthan {

enum class StreamKind { main, sub };
std::string_view to_string(StreamKind kind);

// Health of one stream, and of a camera (the worst of its streams).
// connecting: opening the connection (first time or after a failure);
// online: packets arrive and decode; offline: a camera that answered before is gone
// (connection refused, closed, timed out, 5xx); unauthorized: 401/403; not_found: 404;
// error: reachable but unusable (bad address, stalled or corrupt stream, unsupported codec).
enum class StreamState { connecting, online, offline, unauthorized, not_found, error, disabled };
std::string_view to_string(StreamState state);
std::optional<StreamState> stream_state_from_string(std::string_view text);

enum class Codec { unknown, h264, h265, mjpeg, aac, pcm_alaw, pcm_mulaw, other };
std::string_view to_string(Codec codec);

enum class Transport { tcp, udp };
std::string_view to_string(Transport transport);

}  // namespace matthan
