// Cameras managed from the admin page: added, re-pointed, disabled or removed. The edits live in
// the overlay beside the database (edit_overlay), are checked exactly as `matthan run` checks the
// config, and take effect with a restart in place (the pipelines, analysis and recorders are
// built at start; Frigate applies its config the same way). Camera passwords are write-only:
// answers and the audit log say whether one is set, never what it is.
#include <sys/types.h>

#include <ctime>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>

#include "matthan/core/clock.hpp"
#include "matthan/core/url.hpp"
#include "matthan/evidence/audit.hpp"
#include "operation.hpp"

namespace matthan::app {
namespace {

using nlohmann::json;
using web::Role;
using web::RouteKind;

web::HttpResponse ok(const json& body, int status = 200) {
  return {status, "application/json", body.dump(-1, ' ', false, json::error_handler_t::replace)};
}

// rtsp://user:secret@host/path -> rtsp://host/path (the user name has its own field).
std::string without_userinfo(const std::string& url) {
  const auto scheme = url.find("://");
  if (scheme == std::string::npos) return mask_credentials(url);
  const auto start = scheme + 3;
  const auto slash = url.find('/', start);
  const auto at = url.rfind('@', slash == std::string::npos ? std::string::npos : slash);
  if (at != std::string::npos && at >= start)
    return mask_credentials(url.substr(0, start) + url.substr(at + 1));
  return mask_credentials(url);
}

// What decides how a camera runs: a difference from the running process needs a restart.
bool same_running_settings(const CameraConfig& a, const CameraConfig& b) {
  return a.name == b.name && a.commune == b.commune && a.hamlet == b.hamlet && a.site == b.site &&
         a.main_url == b.main_url && a.sub_url == b.sub_url && a.transport == b.transport &&
         a.analysis_fps == b.analysis_fps && a.enabled == b.enabled &&
         a.retention_days == b.retention_days && a.event_retention_days == b.event_retention_days;
}

const CameraConfig* find(const Config& config, const std::string& id) {
  for (const auto& c : config.cameras) {
    if (c.id == id) return &c;
  }
  return nullptr;
}

json settings_json(const CameraConfig& c, const Config& running, const json& overlay) {
  const auto* now = find(running, c.id);
  const json entry = overlay.contains("cameras") && overlay["cameras"].contains(c.id)
                         ? overlay["cameras"][c.id]
                         : json::object();
  return {{"id", c.id},
          {"name", c.name},
          {"commune", c.commune},
          {"hamlet", c.hamlet},
          {"site", c.site},
          {"brand", std::string(to_string(c.brand))},
          {"host", c.host},
          {"port", c.port},
          {"username", c.username},
          {"password_set", !c.password.empty()},
          {"channel", c.channel},
          {"main_url", without_userinfo(c.main_url)},
          {"sub_url", without_userinfo(c.sub_url)},
          {"transport", c.transport == Transport::udp ? "udp" : "tcp"},
          {"analysis_fps", c.analysis_fps},
          {"enabled", c.enabled},
          {"added_in_page", entry.value("added", false)},
          {"edited_in_page", !entry.empty()},
          {"restart_needed", now == nullptr || !same_running_settings(c, *now)}};
}

json overlay_of(const Config& config) {
  std::ifstream in(inventory_overlay_path(config.server.data_dir), std::ios::binary);
  if (!in) return json::object();
  auto j = json::parse(in, nullptr, false);
  return j.is_object() ? j : json::object();
}

json list_json(const Config& config, const Config& running) {
  const auto overlay = overlay_of(config);
  json cams = json::array();
  bool restart = false;
  for (const auto& c : config.cameras) {
    cams.push_back(settings_json(c, running, overlay));
    restart = restart || cams.back()["restart_needed"].get<bool>();
  }
  json removed = json::array();
  for (const auto& c : running.cameras) {
    if (find(config, c.id) == nullptr) removed.push_back(c.id);
  }
  return {{"cameras", cams},
          {"removed_until_restart", removed},
          {"restart_needed", restart || !removed.empty()}};
}

// The keys of a request body, checked for names; values are the parser's business.
std::optional<web::HttpResponse> check_keys(const json& body, bool with_id) {
  if (!body.is_object())
    return web::json_error(400, "bad_json", "the body must be a JSON object of camera keys");
  for (const auto& [k, v] : body.items()) {
    if (with_id && k == "id") continue;
    if (!overlay_camera_keys().contains(k))
      return web::json_error(400, "bad_camera", "'" + k + "' cannot be set here");
  }
  return std::nullopt;
}

// The audit's copy of an edit: a password is reported as changed, never written.
json audit_copy(json body) {
  if (body.contains("password")) body["password"] = "(changed)";
  for (const char* url : {"main_url", "sub_url"}) {  // a URL may carry user:password@
    if (body.contains(url) && body[url].is_string())
      body[url] = without_userinfo(body[url].get<std::string>());
  }
  return body;
}

std::string today_local() {
  const std::time_t t = std::time(nullptr);
  std::tm tm{};
  localtime_r(&t, &tm);
  char buf[16];
  std::strftime(buf, sizeof buf, "%Y-%m-%d", &tm);
  return buf;
}

// A camera's overlay entry, made on first use; nullptr when the config in use has no such
// camera. Called under the edit lock, so a removal just before is not edited back.
json* camera_entry(OperationContext& ctx, json& overlay, const std::string& id) {
  if (find(*ctx.config(), id) == nullptr) return nullptr;
  auto& cams = overlay["cameras"];
  if (!cams.is_object()) cams = json::object();
  auto& entry = cams[id];
  if (!entry.is_object()) entry = json::object();
  return &entry;
}

std::optional<web::HttpResponse> every_commune_only(const web::HttpRequest& req) {
  if (!req.scoped()) return std::nullopt;
  return web::json_error(403, "out_of_scope", "only an admin of every commune manages cameras");
}

}  // namespace

void add_camera_admin_routes(web::Router& router, OperationContext& ctx, const Config& running,
                             std::function<void()> restart) {
  router.add({"GET", "/api/admin/cameras", Role::admin, RouteKind::json,
              "every camera's connection settings (no passwords) and whether a restart is needed"},
             [&ctx, &running](const web::HttpRequest& req) -> web::HttpResponse {
               // Hosts and user names of every commune: not for a commune's own admin.
               if (auto no = every_commune_only(req)) return *no;
               return ok(list_json(*ctx.config(), running));
             });
  router.add(
      {"POST", "/api/admin/cameras", Role::admin, RouteKind::json,
       "add a camera (checked as the config is; applied by a restart; audited)"},
      [&ctx, &running](const web::HttpRequest& req) -> web::HttpResponse {
        if (auto no = every_commune_only(req)) return *no;
        const auto body = json::parse(req.body, nullptr, false);
        if (auto bad = check_keys(body, true)) return *bad;
        if (!body.contains("id") || !body["id"].is_string() ||
            body["id"].get<std::string>().empty())
          return web::json_error(400, "bad_camera", "id is required");
        const std::string id = body["id"];
        auto fresh = edit_overlay(ctx, [&](json& overlay) -> std::optional<web::HttpResponse> {
          auto& cams = overlay["cameras"];
          if (!cams.is_object()) cams = json::object();
          json entry = body;
          entry.erase("id");
          if (!entry.contains("installed")) entry["installed"] = today_local();
          if (cams.contains(id) && cams[id].value("removed", false)) {
            cams[id].erase("removed");  // taken out earlier: back with these settings
            cams[id].erase("removed_on");
            entry.erase("installed");  // it keeps its first install date
            cams[id].update(entry);
            return std::nullopt;
          }
          if (find(*ctx.config(), id) != nullptr)
            return web::json_error(409, "exists", "a camera '" + id + "' exists already");
          entry["added"] = true;
          cams[id] = entry;
          return std::nullopt;
        });
        if (!fresh) return fresh.error();
        evidence::append_audit(ctx.db, (*fresh)->node_id, SystemClock().now_us(), req.user,
                               "camera_add", id, audit_copy(body).dump());
        const auto* now = find(**fresh, id);
        if (now == nullptr)  // the config file itself marks it removed
          return web::json_error(409, "removed_in_config",
                                 "camera '" + id + "' is marked removed in the config file");
        return ok(settings_json(*now, running, overlay_of(**fresh)), 201);
      });
  router.add({"PATCH", "/api/admin/cameras/{id}", Role::admin, RouteKind::json,
              "change a camera's settings (a null removes a key; applied by a restart; audited)"},
             [&ctx, &running](const web::HttpRequest& req) -> web::HttpResponse {
               if (auto no = every_commune_only(req)) return *no;
               const auto& id = req.params.at("id");
               const auto body = json::parse(req.body, nullptr, false);
               if (auto bad = check_keys(body, false)) return *bad;
               auto fresh =
                   edit_overlay(ctx, [&](json& overlay) -> std::optional<web::HttpResponse> {
                     auto* found = camera_entry(ctx, overlay, id);
                     if (found == nullptr)
                       return web::json_error(404, "not_found", "no camera '" + id + "'");
                     auto& entry = *found;
                     for (const auto& [k, v] : body.items()) {
                       // A camera added in the page has no file entry under it: a null removes the
                       // key.
                       if (v.is_null() && entry.value("added", false))
                         entry.erase(k);
                       else
                         entry[k] = v;
                     }
                     return std::nullopt;
                   });
               if (!fresh) return fresh.error();
               evidence::append_audit(ctx.db, (*fresh)->node_id, SystemClock().now_us(), req.user,
                                      "camera_update", id, audit_copy(body).dump());
               const auto* now = find(**fresh, id);
               if (now == nullptr) return ok(list_json(**fresh, running));
               return ok(settings_json(*now, running, overlay_of(**fresh)));
             });
  router.add({"DELETE", "/api/admin/cameras/{id}", Role::admin, RouteKind::json,
              "take a camera out (its recordings and events stay; applied by a restart; audited)"},
             [&ctx, &running](const web::HttpRequest& req) -> web::HttpResponse {
               if (auto no = every_commune_only(req)) return *no;
               const auto& id = req.params.at("id");
               auto fresh =
                   edit_overlay(ctx, [&](json& overlay) -> std::optional<web::HttpResponse> {
                     auto* entry = camera_entry(ctx, overlay, id);
                     if (entry == nullptr)
                       return web::json_error(404, "not_found", "no camera '" + id + "'");
                     // Kept as taken out today: not run after the restart, still in the reports of
                     // the days it served; its footage and events stay until retention.
                     (*entry)["removed"] = true;
                     (*entry)["removed_on"] = today_local();
                     return std::nullopt;
                   });
               if (!fresh) return fresh.error();
               evidence::append_audit(ctx.db, (*fresh)->node_id, SystemClock().now_us(), req.user,
                                      "camera_remove", id);
               return ok(list_json(**fresh, running));
             });
  router.add(
      {"POST", "/api/admin/restart", Role::admin, RouteKind::json,
       "stop cleanly and start again with the saved settings (send {\"confirm\": true}; audited)"},
      [&ctx, restart](const web::HttpRequest& req) -> web::HttpResponse {
        if (auto no = every_commune_only(req)) return *no;
        const auto body = json::parse(req.body, nullptr, false);
        if (!body.is_object() || !body.value("confirm", false))
          return web::json_error(400, "not_confirmed",
                                 "a restart stops every camera for a few seconds: send "
                                 "{\"confirm\": true}");
        const auto snapshot = ctx.config();
        evidence::append_audit(ctx.db, snapshot->node_id, SystemClock().now_us(), req.user,
                               "server_restart", snapshot->node_id);
        ctx.db.flush();
        restart();
        return ok({{"restarting", true}}, 202);
      });
}

}  // namespace matthan::app
