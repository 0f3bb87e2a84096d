// The `event` object of the event schema (docs/ref/events.md), shared by the ZeroMQ messages
// and the webhook alerts so the two never drift apart.
#pragma once

#include <nlohmann/json_fwd.hpp>

#include "matthan/core/event.hpp"

namespace matthan {

nlohmann::json event_body_json(const Event& event);

}  // namespace matthan
