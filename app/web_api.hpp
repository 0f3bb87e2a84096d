// The event API (list with filters and cursor pagination, detail, snapshot, review, alert
// acknowledgement) and the push hub behind GET /api/ws, which sends new events and camera state
// changes to every connected page within the viewer's scope.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "matthan/core/config.hpp"
#include "matthan/core/event.hpp"
#include "matthan/storage/database.hpp"
#include "matthan/web/router.hpp"

namespace matthan::app {

// Where a camera sits: for filters and viewers' scopes. Read-only after start.
struct CameraPlace {
  std::string name, commune, hamlet;
};
std::map<std::string, CameraPlace> camera_places(const Config& config);

// A camera the request's scope includes ("-": server-wide, e.g. storage alarms, seen by all).
bool in_scope(const web::HttpRequest& req, const std::map<std::string, CameraPlace>& places,
              const std::string& camera_id);
// The same for a scope held apart from a request (a push socket's).
bool in_scope(const std::vector<std::string>& communes, const std::vector<std::string>& cameras,
              const std::map<std::string, CameraPlace>& places, const std::string& camera_id);

struct EventApiContext {
  const Config& config;
  storage::Database& db;
  std::map<std::string, CameraPlace> places;
};

void add_event_routes(web::Router& router, EventApiContext& ctx);
// The camera of an event, nullopt when there is no such event.
std::optional<std::string> event_camera(EventApiContext& ctx, const std::string& event_id);

// Thread-safe: mutex_ guards the client list; publish() is called from event sinks and status
// changes (any thread), clients join and leave on their connections' strands.
class PushHub final : public EventSink {
 public:
  explicit PushHub(std::map<std::string, CameraPlace> places) : places_(std::move(places)) {}
  web::WsAccept accept(const web::HttpRequest& req);
  void on_event(EventPhase phase, const Event& event) override;
  void camera_state(const std::string& camera_id, const std::string& state,
                    const std::string& error, std::int64_t at_us);
  int clients() const;
  void close();  // closes every push socket (the server stopping)

 private:
  struct Client {
    std::uint64_t id = 0;
    std::shared_ptr<web::WsChannel> channel;
    std::vector<std::string> communes;
    std::vector<std::string> cameras;
  };
  void publish(const std::string& camera_id, const std::string& message);
  const std::map<std::string, CameraPlace> places_;
  mutable std::mutex mutex_;
  std::vector<Client> clients_;
  std::uint64_t next_id_ = 1;
};

}  // namespace matthan::app
