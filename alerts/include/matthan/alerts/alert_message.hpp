// What an alert says and who gets it: pure functions shared by the dispatcher, its tests and the
// docs (docs/ref/alerts.md). No I/O except reading the local time zone.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "matthan/core/config.hpp"
#include "matthan/core/event.hpp"

namespace matthan::alerts {

inline constexpr int kAlertSchemaVersion = 1;  // same version as docs/ref/events.md

// Whether a channel's filters let this event through (the phase rule is the dispatcher's):
// - armed_only: events with armed == false are skipped;
// - cameras: event.camera_id is listed;
// - zones: any of event.zones is listed (an event without zones, e.g. camera_offline, does
//   not pass a zone filter);
// - types: event.type or event.label is listed.
// An empty list lets everything through.
bool channel_accepts(const AlertChannelConfig& channel, const Event& event);

// Vietnamese words for an event: "Phát hiện người" when labelled person, else by type
// (motion → "Chuyển động", tamper → "Camera bị che/mất nét", camera_offline → "Camera mất kết
// nối"); an unknown type is shown as it is.
std::string event_words(const Event& event);

// One-line message, e.g. "⚠️ Phát hiện người — Cổng ấp 1 (ap-1), vùng cong,
// 23:41:05 29/11/2026": camera display name, hamlet in brackets when known, zones unless the only
// one is "all", and the start in local time (TZ). A link follows on a new line when link is not
// empty.
std::string alert_text(const Event& event, std::string_view camera_name, std::string_view link);

// Where a person can look at the event: {public_base_url}/api/events/{id}/snapshot when the
// event has a snapshot, empty when there is no base URL or nothing to show.
std::string event_link(std::string_view public_base_url, const Event& event);

// Webhook body: {"schema", "node_id", "phase", "event": {the fields of docs/ref/events.md},
// "text", ["link"], ["snapshot_jpeg_base64"]}.
std::string webhook_json(const std::string& node_id, EventPhase phase, const Event& event,
                         std::string_view text, std::string_view link,
                         const std::optional<std::string>& jpeg);

std::string base64_encode(std::string_view bytes);

}  // namespace matthan::alerts
