#include "web_api.hpp"

#include <sqlite3.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <variant>

#include "matthan/core/clock.hpp"
#include "matthan/core/time_format.hpp"
#include "matthan/evidence/audit.hpp"

namespace matthan::app {

using nlohmann::json;

namespace {

std::string text_col(sqlite3_stmt* st, int c) {
  const auto* t = sqlite3_column_text(st, c);
  return t != nullptr ? reinterpret_cast<const char*>(t) : "";
}

std::string get(const web::HttpRequest& req, const std::string& key) {
  const auto it = req.query.find(key);
  return it == req.query.end() ? std::string() : it->second;
}

std::vector<std::string> split_list(const std::string& text) {
  std::vector<std::string> out;
  std::size_t at = 0;
  while (at <= text.size()) {
    const auto comma = std::min(text.find(',', at), text.size());
    if (comma > at) out.push_back(text.substr(at, comma - at));
    at = comma + 1;
  }
  return out;
}

web::HttpResponse ok(const json& body, int status = 200) {
  return {status, "application/json", body.dump()};
}

constexpr const char* kEventColumns =
    "SELECT id, camera_id, type, label, zones, start_us, end_us, peak_score, box_x, box_y, box_w,"
    " box_h, snapshot_path, armed, review_state, review_note, reviewed_by, reviewed_us,"
    " (SELECT acked_by FROM alert_ack a WHERE a.event_id = event.id),"
    " (SELECT acked_us FROM alert_ack a WHERE a.event_id = event.id),"
    " (SELECT COUNT(*) FROM alert_escalation x WHERE x.event_id = event.id) FROM event";

json row_json(sqlite3_stmt* st, const std::map<std::string, CameraPlace>& places) {
  const std::string camera = text_col(st, 1);
  const auto place = places.find(camera);
  json j{{"id", text_col(st, 0)},
         {"camera", camera},
         {"camera_name", place != places.end() ? place->second.name : ""},
         {"commune", place != places.end() ? place->second.commune : ""},
         {"hamlet", place != places.end() ? place->second.hamlet : ""},
         {"type", text_col(st, 2)},
         {"label", text_col(st, 3)},
         {"zones", json::parse(text_col(st, 4), nullptr, false)},
         {"start", format_iso8601_us(sqlite3_column_int64(st, 5))},
         {"end", sqlite3_column_type(st, 6) == SQLITE_NULL
                     ? json()
                     : json(format_iso8601_us(sqlite3_column_int64(st, 6)))},
         {"peak_score", sqlite3_column_double(st, 7)},
         {"peak_box",
          {{"x", sqlite3_column_double(st, 8)},
           {"y", sqlite3_column_double(st, 9)},
           {"w", sqlite3_column_double(st, 10)},
           {"h", sqlite3_column_double(st, 11)}}},
         {"snapshot", !text_col(st, 12).empty()},
         {"armed", sqlite3_column_int(st, 13) != 0},
         {"review",
          {{"state", text_col(st, 14)},
           {"note", text_col(st, 15)},
           {"by", text_col(st, 16)},
           {"at", sqlite3_column_type(st, 17) == SQLITE_NULL
                      ? json()
                      : json(format_iso8601_us(sqlite3_column_int64(st, 17)))}}},
         {"ack", sqlite3_column_type(st, 18) == SQLITE_NULL
                     ? json()
                     : json{{"by", text_col(st, 18)},
                            {"at", format_iso8601_us(sqlite3_column_int64(st, 19))}}},
         {"escalations", sqlite3_column_int(st, 20)}};
  if (!j["zones"].is_array()) j["zones"] = json::array();
  return j;
}

struct EventRow {
  json body;
  std::string camera;
  std::string snapshot_path;
};

std::optional<EventRow> load_event(EventApiContext& ctx, const std::string& id) {
  return ctx.db.read([&](sqlite3* conn) -> std::optional<EventRow> {
    sqlite3_stmt* st = nullptr;
    const std::string sql = std::string(kEventColumns) + " WHERE node_id = ?1 AND id = ?2";
    sqlite3_prepare_v2(conn, sql.c_str(), -1, &st, nullptr);
    sqlite3_bind_text(st, 1, ctx.config.node_id.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 2, id.c_str(), -1, SQLITE_TRANSIENT);
    std::optional<EventRow> out;
    if (sqlite3_step(st) == SQLITE_ROW)
      out = EventRow{row_json(st, ctx.places), text_col(st, 1), text_col(st, 12)};
    sqlite3_finalize(st);
    return out;
  });
}

// The event of {id}, or the 404/403 answer.
std::variant<EventRow, web::HttpResponse> scoped_event(EventApiContext& ctx,
                                                       const web::HttpRequest& req) {
  const auto& id = req.params.at("id");
  auto row = load_event(ctx, id);
  if (!row) return web::json_error(404, "not_found", "no event '" + id + "'");
  if (!in_scope(req, ctx.places, row->camera))
    return web::json_error(403, "out_of_scope", "event '" + id + "' is outside your communes");
  return std::move(*row);
}

web::HttpResponse list_events(EventApiContext& ctx, const web::HttpRequest& req) {
  // Which cameras: the scope, narrowed by camera / commune / hamlet filters.
  const auto cams = split_list(get(req, "camera"));
  auto communes = split_list(get(req, "commune"));
  for (auto& c : communes) {  // a former code names its commune
    if (const auto* commune = ctx.config.organisation.commune(c)) c = commune->code;
  }
  const auto hamlets = split_list(get(req, "hamlet"));
  for (const auto& c : cams) {
    if (!ctx.places.contains(c)) return web::json_error(400, "bad_camera", "no camera '" + c + "'");
    if (!in_scope(req, ctx.places, c))
      return web::json_error(403, "out_of_scope", "camera '" + c + "' is outside your communes");
  }
  for (const auto& c : communes) {
    // A commune filter from a camera-scoped user narrows to their cameras there.
    if (!req.communes.empty() &&
        std::find(req.communes.begin(), req.communes.end(), c) == req.communes.end())
      return web::json_error(403, "out_of_scope", "commune '" + c + "' is outside your communes");
  }
  const bool narrowed = !cams.empty() || !communes.empty() || !hamlets.empty() || req.scoped();
  std::vector<std::string> allowed;
  if (narrowed) {
    for (const auto& [id, place] : ctx.places) {
      if (!in_scope(req, ctx.places, id)) continue;
      if (!cams.empty() && std::find(cams.begin(), cams.end(), id) == cams.end()) continue;
      if (!communes.empty() &&
          std::find(communes.begin(), communes.end(), place.commune) == communes.end())
        continue;
      if (!hamlets.empty() &&
          std::find(hamlets.begin(), hamlets.end(), place.hamlet) == hamlets.end())
        continue;
      allowed.push_back(id);
    }
    // Server-wide events (camera "-") concern everyone in an unfiltered list.
    if (cams.empty() && communes.empty() && hamlets.empty()) allowed.push_back("-");
  }
  using Bind = std::variant<std::int64_t, std::string>;
  std::vector<Bind> binds{ctx.config.node_id};
  std::string where = " WHERE node_id = ?1";
  auto add = [&](const std::string& clause, Bind value) {
    binds.push_back(std::move(value));
    std::string c = clause;
    const auto at = c.find('?');
    c.replace(at, 1, "?" + std::to_string(binds.size()));
    where += " AND " + c;
  };
  if (narrowed) {
    if (allowed.empty()) return ok({{"events", json::array()}, {"next_cursor", nullptr}});
    std::string in;
    for (const auto& a : allowed) {
      binds.push_back(a);
      in += (in.empty() ? "?" : ", ?") + std::to_string(binds.size());
    }
    where += " AND camera_id IN (" + in + ")";
  }
  if (const auto t = get(req, "type"); !t.empty()) add("type = ?", t);
  if (const auto l = get(req, "label"); !l.empty()) add("label = ?", l);
  if (const auto r = get(req, "review"); !r.empty()) {
    if (r != "new" && r != "confirmed" && r != "false_alarm")
      return web::json_error(400, "bad_review", "review is new, confirmed or false_alarm");
    add("review_state = ?", r);
  }
  for (const char* key : {"from", "to"}) {
    const auto v = get(req, key);
    if (v.empty()) continue;
    const auto t = parse_iso8601_us(v);
    if (!t)
      return web::json_error(400, "bad_time",
                             std::string(key) + " must be an ISO 8601 time with an offset");
    add(std::string(key) == "from" ? "start_us >= ?" : "start_us < ?", *t);
  }
  int limit = 50;
  if (const auto l = get(req, "limit"); !l.empty()) {
    if (l.size() > 4 || !std::all_of(l.begin(), l.end(), ::isdigit))
      return web::json_error(400, "bad_limit", "limit is a number from 1 to 500");
    limit = std::clamp(std::stoi(l), 1, 500);
  }
  // Cursor: "<start_us>.<id>" of the last event of the previous page (newest first).
  if (const auto c = get(req, "cursor"); !c.empty()) {
    const auto dot = c.find('.');
    const auto num = c.substr(0, dot);
    if (dot == std::string::npos || num.empty() || num.size() > 19 ||
        !std::all_of(num.begin(), num.end(), ::isdigit) || dot + 1 >= c.size())
      return web::json_error(400, "bad_cursor", "cursor is the next_cursor of a previous page");
    const std::int64_t at = std::stoll(num);
    binds.push_back(at);
    const auto a = std::to_string(binds.size());
    binds.push_back(c.substr(dot + 1));
    const auto b = std::to_string(binds.size());
    where += " AND (start_us < ?" + a + " OR (start_us = ?" + a + " AND id < ?" + b + "))";
  }
  const std::string sql = std::string(kEventColumns) + where +
                          " ORDER BY start_us DESC, id DESC LIMIT " + std::to_string(limit + 1);
  return ctx.db.read([&](sqlite3* conn) {
    sqlite3_stmt* st = nullptr;
    if (sqlite3_prepare_v2(conn, sql.c_str(), -1, &st, nullptr) != SQLITE_OK) {
      return web::json_error(500, "internal", "event query failed");
    }
    for (std::size_t i = 0; i < binds.size(); ++i) {
      const int n = static_cast<int>(i + 1);
      if (const auto* v = std::get_if<std::int64_t>(&binds[i]))
        sqlite3_bind_int64(st, n, *v);
      else
        sqlite3_bind_text(st, n, std::get<std::string>(binds[i]).c_str(), -1, SQLITE_TRANSIENT);
    }
    json list = json::array();
    json next;
    std::int64_t last_start = 0;
    std::string last_id;
    while (sqlite3_step(st) == SQLITE_ROW) {
      if (static_cast<int>(list.size()) == limit) {
        next = std::to_string(last_start) + "." + last_id;
        break;
      }
      list.push_back(row_json(st, ctx.places));
      last_start = sqlite3_column_int64(st, 5);
      last_id = text_col(st, 0);
    }
    sqlite3_finalize(st);
    return ok({{"events", list}, {"next_cursor", next}});
  });
}

}  // namespace

std::optional<std::string> event_camera(EventApiContext& ctx, const std::string& event_id) {
  return ctx.db.read([&](sqlite3* conn) -> std::optional<std::string> {
    sqlite3_stmt* st = nullptr;
    sqlite3_prepare_v2(conn, "SELECT camera_id FROM event WHERE node_id = ?1 AND id = ?2", -1, &st,
                       nullptr);
    sqlite3_bind_text(st, 1, ctx.config.node_id.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 2, event_id.c_str(), -1, SQLITE_TRANSIENT);
    std::optional<std::string> out;
    if (sqlite3_step(st) == SQLITE_ROW) out = text_col(st, 0);
    sqlite3_finalize(st);
    return out;
  });
}

std::map<std::string, CameraPlace> camera_places(const Config& config) {
  std::map<std::string, CameraPlace> out;
  // Retired cameras too: their events and footage stay reviewable, in their commune's scope.
  for (const auto* list : {&config.cameras, &config.retired}) {
    for (const auto& c : *list) out[c.id] = {c.name, c.commune, c.hamlet};
  }
  return out;
}

bool in_scope(const web::HttpRequest& req, const std::map<std::string, CameraPlace>& places,
              const std::string& camera_id) {
  return in_scope(req.communes, req.cameras, places, camera_id);
}

bool in_scope(const std::vector<std::string>& communes, const std::vector<std::string>& cameras,
              const std::map<std::string, CameraPlace>& places, const std::string& camera_id) {
  if ((communes.empty() && cameras.empty()) || camera_id == "-") return true;
  if (std::find(cameras.begin(), cameras.end(), camera_id) != cameras.end()) return true;
  const auto it = places.find(camera_id);
  if (it == places.end()) return false;
  return std::find(communes.begin(), communes.end(), it->second.commune) != communes.end();
}

void add_event_routes(web::Router& router, EventApiContext& ctx) {
  using web::Role;
  using web::RouteKind;
  router.add({"GET", "/api/events", Role::viewer, RouteKind::json,
              "events, newest first: filters camera, commune, hamlet, type, label, review, "
              "from, to; cursor pagination"},
             [&ctx](const web::HttpRequest& req) { return list_events(ctx, req); });
  router.add({"GET", "/api/events/{id}", Role::viewer, RouteKind::json, "one event"},
             [&ctx](const web::HttpRequest& req) {
               auto row = scoped_event(ctx, req);
               if (auto* answer = std::get_if<web::HttpResponse>(&row)) return *answer;
               return ok(std::get<EventRow>(row).body);
             });
  router.add({"GET", "/api/events/{id}/snapshot.jpg", Role::viewer, RouteKind::file,
              "the event's snapshot (audited)"},
             [&ctx](const web::HttpRequest& req) {
               auto row = scoped_event(ctx, req);
               if (auto* answer = std::get_if<web::HttpResponse>(&row)) return *answer;
               const auto& ev = std::get<EventRow>(row);
               std::ifstream in(ev.snapshot_path, std::ios::binary);
               if (ev.snapshot_path.empty() || !in)
                 return web::json_error(404, "not_found", "event has no snapshot");
               std::string bytes((std::istreambuf_iterator<char>(in)),
                                 std::istreambuf_iterator<char>());
               if (!req.head)  // a HEAD is not a view
                 evidence::append_audit(ctx.db, ctx.config.node_id, SystemClock().now_us(),
                                        req.user, "snapshot_view", req.params.at("id"));
               return web::HttpResponse{200, "image/jpeg", std::move(bytes)};
             });
  router.add(
      {"POST", "/api/events/{id}/review", Role::reviewer, RouteKind::json,
       "confirm, mark as false alarm or reset, with a note (audited)"},
      [&ctx](const web::HttpRequest& req) {
        auto row = scoped_event(ctx, req);
        if (auto* answer = std::get_if<web::HttpResponse>(&row)) return *answer;
        const json body = json::parse(req.body, nullptr, false);
        if (!body.is_object() || !body.contains("state") || !body["state"].is_string())
          return web::json_error(400, "bad_request",
                                 "send {\"state\": \"confirmed\"|\"false_alarm\"|\"new\", "
                                 "\"note\": \"…\"}");
        const std::string state = body["state"];
        if (state != "new" && state != "confirmed" && state != "false_alarm")
          return web::json_error(400, "bad_review", "state is new, confirmed or false_alarm");
        if (body.contains("note") && !body["note"].is_string())
          return web::json_error(400, "bad_request", "note is text");
        const std::string note = body.value("note", "");
        if (note.size() > 4000) return web::json_error(400, "bad_request", "note is too long");
        const auto now = SystemClock().now_us();
        const auto& id = req.params.at("id");
        ctx.db.write([&, state, note, user = req.user, node = ctx.config.node_id](sqlite3* conn) {
          sqlite3_stmt* st = nullptr;
          sqlite3_prepare_v2(conn,
                             "UPDATE event SET review_state = ?1, review_note = ?2, reviewed_by ="
                             " ?3, reviewed_us = ?4 WHERE node_id = ?5 AND id = ?6",
                             -1, &st, nullptr);
          sqlite3_bind_text(st, 1, state.c_str(), -1, SQLITE_TRANSIENT);
          sqlite3_bind_text(st, 2, note.c_str(), -1, SQLITE_TRANSIENT);
          sqlite3_bind_text(st, 3, user.c_str(), -1, SQLITE_TRANSIENT);
          sqlite3_bind_int64(st, 4, now);
          sqlite3_bind_text(st, 5, node.c_str(), -1, SQLITE_TRANSIENT);
          sqlite3_bind_text(st, 6, id.c_str(), -1, SQLITE_TRANSIENT);
          sqlite3_step(st);
          sqlite3_finalize(st);
        });
        evidence::append_audit(ctx.db, ctx.config.node_id, now, req.user, "event_review", id,
                               json{{"state", state}, {"note", note}}.dump());
        ctx.db.flush();
        auto updated = load_event(ctx, id);
        return ok(updated ? updated->body : json{{"id", id}});
      });
  router.add({"POST", "/api/events/{id}/ack", Role::viewer, RouteKind::json,
              "acknowledge the event's alert (audited; stops its escalation)"},
             [&ctx](const web::HttpRequest& req) {
               auto row = scoped_event(ctx, req);
               if (auto* answer = std::get_if<web::HttpResponse>(&row)) return *answer;
               const auto now = SystemClock().now_us();
               const auto& id = req.params.at("id");
               bool inserted = false;
               ctx.db.write([&, user = req.user, node = ctx.config.node_id](sqlite3* conn) {
                 sqlite3_stmt* st = nullptr;
                 sqlite3_prepare_v2(conn,
                                    "INSERT OR IGNORE INTO alert_ack (event_id, node_id, acked_by,"
                                    " acked_us, via) VALUES (?1, ?2, ?3, ?4, 'page')",
                                    -1, &st, nullptr);
                 sqlite3_bind_text(st, 1, id.c_str(), -1, SQLITE_TRANSIENT);
                 sqlite3_bind_text(st, 2, node.c_str(), -1, SQLITE_TRANSIENT);
                 sqlite3_bind_text(st, 3, user.c_str(), -1, SQLITE_TRANSIENT);
                 sqlite3_bind_int64(st, 4, now);
                 sqlite3_step(st);
                 inserted = sqlite3_changes(conn) == 1;
                 sqlite3_finalize(st);
               });
               ctx.db.flush();
               if (inserted)
                 evidence::append_audit(ctx.db, ctx.config.node_id, now, req.user, "alert_ack", id);
               auto updated = load_event(ctx, id);
               return ok(updated ? updated->body : json{{"id", id}});
             });
}

web::WsAccept PushHub::accept(const web::HttpRequest& req) {
  auto id = std::make_shared<std::uint64_t>(0);
  web::WsAccept a;
  a.on_open = [this, id, communes = req.communes,
               cameras = req.cameras](const std::shared_ptr<web::WsChannel>& ch) {
    std::lock_guard lock(mutex_);
    *id = next_id_++;
    clients_.push_back({*id, ch, communes, cameras});
    ch->send(std::make_shared<const std::string>(json{{"type", "hello"}}.dump()), false);
  };
  a.on_close = [this, id] {
    std::lock_guard lock(mutex_);
    std::erase_if(clients_, [&](const Client& c) { return c.id == *id; });
  };
  return a;
}

void PushHub::close() {
  std::lock_guard lock(mutex_);
  for (const auto& c : clients_) c.channel->close();
  clients_.clear();
}

int PushHub::clients() const {
  std::lock_guard lock(mutex_);
  return static_cast<int>(clients_.size());
}

void PushHub::publish(const std::string& camera_id, const std::string& message) {
  const auto shared = std::make_shared<const std::string>(message);
  std::lock_guard lock(mutex_);
  for (const auto& c : clients_) {
    if (!in_scope(c.communes, c.cameras, places_, camera_id)) continue;
    if (c.channel->queued_bytes() > (1u << 20)) continue;  // a stalled page reloads the list
    c.channel->send(shared, false);
  }
}

void PushHub::on_event(EventPhase phase, const Event& e) {
  if (phase == EventPhase::update) return;
  const auto place = places_.find(e.camera_id);
  json j{{"type", phase == EventPhase::start ? "event_start" : "event_end"},
         {"event",
          {{"id", e.id},
           {"camera", e.camera_id},
           {"camera_name", place != places_.end() ? place->second.name : ""},
           {"commune", e.commune},
           {"hamlet", e.hamlet},
           {"type", e.type},
           {"label", e.label},
           {"armed", e.armed},
           {"start", format_iso8601_us(e.start_us)},
           {"end", e.end_us ? json(format_iso8601_us(*e.end_us)) : json()}}}};
  publish(e.camera_id, j.dump());
}

void PushHub::camera_state(const std::string& camera_id, const std::string& state,
                           const std::string& error, std::int64_t at_us) {
  publish(camera_id, json{{"type", "camera_state"},
                          {"camera", camera_id},
                          {"state", state},
                          {"error", error},
                          {"at", format_iso8601_us(at_us)}}
                         .dump());
}

}  // namespace matthan::app
