#include "operation.hpp"

#include <sqlite3.h>
#include <nlohmann/json.hpp>

#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <set>
#include <variant>

#include "evidence.hpp"
#include "matthan/core/clock.hpp"
#include "matthan/core/ids.hpp"
#include "matthan/core/time_format.hpp"
#include "matthan/core/url.hpp"
#include "matthan/evidence/audit.hpp"
#include "matthan/evidence/node_key.hpp"
#include "matthan/report/operation_report.hpp"
#include "matthan/storage/sql.hpp"

namespace matthan::app {
namespace {

using nlohmann::json;
using storage::Statement;
using web::Role;
using web::RouteKind;

web::HttpResponse ok(const json& body, int status = 200) {
  return {status, "application/json", body.dump(-1, ' ', false, json::error_handler_t::replace)};
}

// A temporary file for the libraries that write files (PDF, XLSX); removed however the route
// ends.
struct TempFile {
  std::string path;
  TempFile() {
    char tmpl[] = "/tmp/matthan-report-XXXXXX";
    if (const int fd = mkstemp(tmpl); fd >= 0) {
      ::close(fd);
      path = tmpl;
    }
  }
  ~TempFile() {
    if (!path.empty()) std::remove(path.c_str());
  }
  TempFile(const TempFile&) = delete;
  TempFile& operator=(const TempFile&) = delete;
  std::string read() const {
    std::ifstream in(path, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), {}};
  }
};

// A whole commune (its report, cases, organisation): users scoped to single cameras see none.
bool may_see_commune(const web::HttpRequest& req, const Config& config, const std::string& code) {
  if (!req.scoped()) return true;
  const auto* c = config.organisation.commune(code);
  const std::string current = c != nullptr ? c->code : code;
  for (const auto& mine : req.communes) {
    const auto* m = config.organisation.commune(mine);
    if ((m != nullptr ? m->code : mine) == current) return true;
  }
  return false;
}

std::vector<std::string> split_commas(const std::string& s) {
  std::vector<std::string> out;
  std::size_t at = 0;
  while (at <= s.size()) {
    const auto c = s.find(',', at);
    auto item = s.substr(at, c == std::string::npos ? std::string::npos : c - at);
    if (!item.empty()) out.push_back(std::move(item));
    if (c == std::string::npos) break;
    at = c + 1;
  }
  return out;
}

json case_json(const Statement& st) {
  return json{{"id", st.text(0)},
              {"commune", st.text(1)},
              {"category", st.text(2)},
              {"category_label", report::category_label(st.text(2))},
              {"title", st.text(3)},
              {"description", st.text(4)},
              {"requesting_unit", st.text(5)},
              {"officer", st.text(6)},
              {"status", st.text(7)},
              {"footage_helped", st.int64(8) != 0},
              {"occurred", format_iso8601_us(st.int64(9))},
              {"created_by", st.text(10)},
              {"created", format_iso8601_us(st.int64(11))},
              {"updated", format_iso8601_us(st.int64(12))}};
}
constexpr const char* kCaseColumns =
    "id, commune, category, title, description, requesting_unit, officer, status,"
    " footage_helped, occurred_us, created_by, created_us, updated_us";

bool valid_category(const std::string& c) {
  for (const char* k : report::kCategories) {
    if (c == k) return true;
  }
  return false;
}
bool valid_status(const std::string& s) {
  return s == "open" || s == "clarified" || s == "closed";
}

std::optional<json> load_case(OperationContext& ctx, const std::string& id) {
  const auto snapshot = ctx.config();
  const Config& config = *snapshot;
  return ctx.db.read([&](sqlite3* conn) -> std::optional<json> {
    Statement st(conn, std::string("SELECT ") + kCaseColumns +
                           " FROM case_file WHERE node_id = ?1 AND id = ?2");
    st.bind(1, config.node_id).bind(2, id);
    if (!st.step()) return std::nullopt;
    auto j = case_json(st);
    Statement links(conn,
                    "SELECT kind, target_id, linked_by, linked_us FROM case_link WHERE case_id = ?1"
                    " ORDER BY linked_us, target_id");
    links.bind(1, id);
    j["events"] = json::array();
    j["exports"] = json::array();
    while (links.step()) {
      j[links.text(0) == "event" ? "events" : "exports"].push_back(
          {{"id", links.text(1)},
           {"linked_by", links.text(2)},
           {"linked", format_iso8601_us(links.int64(3))}});
    }
    return j;
  });
}

// The case of /api/cases/{id}, or the answer when there is none or it is out of scope.
std::variant<json, web::HttpResponse> scoped_case(OperationContext& ctx,
                                                  const web::HttpRequest& req,
                                                  const Config& config) {
  const auto& id = req.params.at("id");
  auto c = load_case(ctx, id);
  if (!c) return web::json_error(404, "not_found", "no case '" + id + "'");
  if (!may_see_commune(req, config, (*c)["commune"]))
    return web::json_error(403, "out_of_scope", "the case is outside your communes");
  return std::move(*c);
}

// Fields of a case from a JSON body, checked; `partial` for an update (only what is given).
std::optional<web::HttpResponse> check_case_body(const json& body, bool partial,
                                                 const Config& config) {
  if (!body.is_object()) return web::json_error(400, "bad_json", "the body must be a JSON object");
  static const std::set<std::string> known{"commune",     "category",        "title",
                                           "description", "requesting_unit", "officer",
                                           "status",      "footage_helped",  "occurred"};
  for (const auto& [k, v] : body.items()) {
    if (!known.contains(k))
      return web::json_error(400, "unknown_field", "unknown field '" + k + "'");
    if (k == "footage_helped" ? !v.is_boolean() : !v.is_string())
      return web::json_error(
          400, "bad_field",
          "'" + k + "' must be " + (k == "footage_helped" ? "true or false" : "text"));
  }
  if (!partial) {
    for (const char* need : {"commune", "category", "title", "occurred"}) {
      if (!body.contains(need))
        return web::json_error(400, "missing_field", std::string("'") + need + "' is required");
    }
  }
  if (body.contains("category") && !valid_category(body["category"]))
    return web::json_error(400, "bad_category",
                           "unknown category '" + body["category"].get<std::string>() +
                               "' (theft, assault, public_disorder, traffic_accident, "
                               "environment, drugs, other)");
  if (body.contains("status") && !valid_status(body["status"]))
    return web::json_error(400, "bad_status", "status must be open, clarified or closed");
  if (body.contains("title") && body["title"].get<std::string>().empty())
    return web::json_error(400, "bad_field", "'title' must not be empty");
  if (body.contains("occurred") && !parse_iso8601_us(body["occurred"].get<std::string>()))
    return web::json_error(400, "bad_time",
                           "'occurred' must be ISO 8601 with an offset, e.g. "
                           "2026-11-29T22:00:00+07:00");
  if (body.contains("commune")) {
    const std::string code = body["commune"];
    bool known_code = config.organisation.commune(code) != nullptr;
    for (const auto& cam : config.cameras) known_code = known_code || cam.commune == code;
    if (!known_code) return web::json_error(400, "bad_commune", "no commune '" + code + "'");
  }
  return std::nullopt;
}

std::string current_code(const Config& config, const std::string& code) {
  const auto* c = config.organisation.commune(code);
  return c != nullptr ? c->code : code;
}

// GET /api/reports/operation: the report in the format asked for.
web::HttpResponse report_route(OperationContext& ctx, const web::HttpRequest& req) {
  const auto snapshot = ctx.config();
  const Config& config = *snapshot;
  const auto q = [&](const char* k) {
    const auto it = req.query.find(k);
    return it == req.query.end() ? std::string() : it->second;
  };
  report::ReportRequest r;
  r.communes = split_commas(q("commune"));
  r.from_day = q("from");
  r.to_day = q("to");
  r.prepared_by = q("prepared_by").empty() ? req.user : q("prepared_by");
  r.now_us = SystemClock().now_us();
  if (!q("repair_below").empty()) {
    try {
      r.repair_below = std::stod(q("repair_below")) / 100.0;
    } catch (...) {
      return web::json_error(400, "bad_query", "repair_below must be a percentage, e.g. 90");
    }
  }
  const std::string format = q("format").empty() ? "json" : q("format");
  static const std::set<std::string> formats{"json", "html", "csv", "xlsx", "pdf"};
  if (!formats.contains(format))
    return web::json_error(400, "bad_format", "format must be json, html, csv, xlsx or pdf");
  if (r.communes.empty() && !req.communes.empty()) r.communes = req.communes;
  if (r.communes.empty()) {
    for (const auto& c : config.organisation.communes) r.communes.push_back(c.code);
  }
  if (r.communes.empty()) {
    std::set<std::string> seen;
    for (const auto& cam : config.cameras) {
      if (!cam.commune.empty() && seen.insert(cam.commune).second)
        r.communes.push_back(cam.commune);
    }
  }
  for (const auto& c : r.communes) {
    if (!may_see_commune(req, config, c))
      return web::json_error(403, "out_of_scope", "commune '" + c + "' is outside your communes");
  }
  // A long report holds a read connection for seconds: one at a time, so a few requests cannot
  // starve the other routes.
  static std::mutex building;
  std::unique_lock one(building, std::try_to_lock);
  if (!one.owns_lock())
    return {
        503,
        "application/json",
        json{{"error", {{"code", "busy"}, {"message", "another report is being built; try again"}}}}
            .dump(-1, ' ', false, json::error_handler_t::replace),
        {{"Retry-After", "3"}}};
  auto data = ctx.db.read([&](sqlite3* conn) { return report::build_report(conn, config, r); });
  if (!data) return web::json_error(400, "bad_report", data.error());
  if (!req.head)
    evidence::append_audit(
        ctx.db, config.node_id, r.now_us, req.user, "report", "operation",
        json{{"communes", r.communes}, {"from", r.from_day}, {"to", r.to_day}, {"format", format}}
            .dump(-1, ' ', false, json::error_handler_t::replace));
  const std::string name = "bao-cao-" + r.from_day + "-" + r.to_day + "." + format;
  const std::vector<std::pair<std::string, std::string>> download{
      {"Content-Disposition", "attachment; filename=\"" + name + "\""}};
  if (format == "json") return {200, "application/json", report::render_json(*data)};
  if (format == "html") return {200, "text/html; charset=utf-8", report::render_html(*data)};
  if (format == "csv") return {200, "text/csv; charset=utf-8", report::render_csv(*data), download};
  // PDF and XLSX are written to a file by their libraries.
  TempFile file;
  if (file.path.empty()) return web::json_error(500, "internal", "cannot make a temporary file");
  auto written =
      format == "pdf" ? report::write_pdf(*data, file.path) : report::write_xlsx(*data, file.path);
  if (!written) return web::json_error(500, "report_failed", written.error());
  auto bytes = file.read();
  return {200,
          format == "pdf" ? "application/pdf"
                          : "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
          std::move(bytes), download};
}

json organisation_json(const Config& config, const web::HttpRequest& req) {
  const auto& org = config.organisation;
  json communes = json::array();
  for (const auto& c : org.communes) {
    if (!may_see_commune(req, config, c.code)) continue;
    json former = json::array(), hamlets = json::array();
    for (const auto& f : c.former)
      former.push_back({{"code", f.code}, {"name", f.name}, {"until", f.until}});
    for (const auto& h : c.hamlets) hamlets.push_back({{"code", h.code}, {"name", h.name}});
    communes.push_back({{"code", c.code},
                        {"name", c.name},
                        {"model", c.model},
                        {"former", former},
                        {"hamlets", hamlets}});
  }
  json cameras = json::array();
  for (const auto& cam : config.cameras) {
    if (!may_see_commune(req, config, cam.commune) &&
        std::find(req.cameras.begin(), req.cameras.end(), cam.id) == req.cameras.end())
      continue;
    cameras.push_back({{"id", cam.id},
                       {"name", cam.name},
                       {"commune", cam.commune},
                       {"hamlet", cam.hamlet},
                       {"site", cam.site},
                       {"brand", std::string(to_string(cam.brand))},
                       {"model", cam.model},
                       {"owner", cam.owner},
                       {"installed", cam.installed},
                       {"funding", cam.funding},
                       {"lat", cam.lat ? json(*cam.lat) : json()},
                       {"lon", cam.lon ? json(*cam.lon) : json()}});
  }
  return json({{"time_zone", config.server.time_zone},
               {"province", {{"code", org.province_code}, {"name", org.province_name}}},
               {"communes", communes},
               {"cameras", cameras}});
}

// Inventory keys: what PUT /api/organisation owns in the overlay (the connection keys belong to
// the camera routes).
const std::set<std::string> kInventoryKeys{"model", "owner", "installed", "funding", "lat", "lon"};

// PUT /api/organisation: the organisation and the cameras' inventory replaced; cameras added,
// removed or re-pointed in the page keep those edits.
web::HttpResponse put_organisation(OperationContext& ctx, const web::HttpRequest& req) {
  if (req.scoped())  // it replaces every commune's entries
    return web::json_error(403, "out_of_scope",
                           "only an admin of every commune can change the organisation");
  const auto body = json::parse(req.body, nullptr, false);
  if (!body.is_object()) return web::json_error(400, "bad_json", "the body must be a JSON object");
  for (const auto& [key, value] : body.items()) {
    if (key != "organisation" && key != "cameras")
      return web::json_error(400, "bad_organisation", key + ": unknown key");
  }
  if (body.contains("cameras") && !body["cameras"].is_null() && !body["cameras"].is_object())
    return web::json_error(400, "bad_organisation", "cameras: must map camera ids to keys");
  const json edits =
      body.contains("cameras") && body["cameras"].is_object() ? body["cameras"] : json::object();
  for (const auto& [id, keys] : edits.items()) {
    if (!keys.is_object())
      return web::json_error(400, "bad_organisation", "cameras." + id + ": must be a mapping");
    for (const auto& [k, v] : keys.items()) {
      if (!kInventoryKeys.contains(k))
        return web::json_error(
            400, "bad_organisation",
            "cameras." + id + "." + k +
                ": not an inventory key (model, owner, installed, funding, lat, lon)");
    }
  }
  auto fresh = edit_overlay(ctx, [&](json& overlay) -> std::optional<web::HttpResponse> {
    if (body.contains("organisation"))
      overlay["organisation"] = body["organisation"];
    else
      overlay.erase("organisation");
    auto& cams = overlay["cameras"];
    if (!cams.is_object()) cams = json::object();
    // The cameras the page sent get exactly their inventory; others (taken out, so not in the
    // page) keep theirs for the reports of the days they served.
    for (const auto& [id, keys] : edits.items()) {
      auto& entry = cams[id];
      if (!entry.is_object()) entry = json::object();
      for (const auto& k : kInventoryKeys) entry.erase(k);
      entry.update(keys);
    }
    for (auto it = cams.begin(); it != cams.end();)
      it = it->empty() ? cams.erase(it) : std::next(it);
    return std::nullopt;
  });
  if (!fresh) return fresh.error();
  evidence::append_audit(ctx.db, (*fresh)->node_id, SystemClock().now_us(), req.user,
                         "organisation_update", inventory_overlay_path((*fresh)->server.data_dir),
                         body.dump(-1, ' ', false, json::error_handler_t::replace));
  return ok(organisation_json(**fresh, req));
}

}  // namespace

std::expected<std::shared_ptr<const Config>, web::HttpResponse> edit_overlay(
    OperationContext& ctx,
    const std::function<std::optional<web::HttpResponse>(nlohmann::json&)>& change) {
  // One edit at a time: the file written last is the snapshot in use.
  static std::mutex editing;
  std::lock_guard lock(editing);
  std::ifstream in(ctx.config_path(), std::ios::binary);
  if (!in)
    return std::unexpected(web::json_error(500, "no_config", "cannot read " + ctx.config_path()));
  const std::string text((std::istreambuf_iterator<char>(in)), {});
  const auto snapshot = ctx.config();
  const auto overlay_path = inventory_overlay_path(snapshot->server.data_dir);
  json overlay = json::object();
  if (std::ifstream old(overlay_path, std::ios::binary); old) {
    overlay = json::parse(old, nullptr, false);
    if (!overlay.is_object())
      return std::unexpected(web::json_error(500, "bad_overlay", overlay_path + " is not JSON"));
  }
  // Entries the config file has since overtaken are dropped, so that they cannot block every
  // later edit: a camera added here that the file now has (the file's wins), or edits of one
  // the file no longer has.
  if (const auto plain = load_config_text(text, ctx.config_path(), process_env);
      plain && overlay.contains("cameras") && overlay["cameras"].is_object()) {
    std::set<std::string> in_file;
    for (const auto* list : {&plain->cameras, &plain->retired}) {
      for (const auto& c : *list) in_file.insert(c.id);
    }
    auto& cams = overlay["cameras"];
    for (auto it = cams.begin(); it != cams.end();) {
      const bool added = it->is_object() && it->value("added", false);
      const bool known = in_file.contains(it.key());
      if (added == known)
        it = cams.erase(it);
      else
        ++it;
    }
  }
  if (auto refused = change(overlay)) return std::unexpected(std::move(*refused));
  const std::string written_text =
      overlay.dump(2, ' ', false, json::error_handler_t::replace) + "\n";
  auto next = load_config_text(text, ctx.config_path(), process_env, written_text, overlay_path);
  if (!next) {
    std::string message;
    for (const auto& e : next.error())
      message += (message.empty() ? "" : "; ") + e.key + ": " + e.message;
    return std::unexpected(web::json_error(400, "bad_organisation", message));
  }
  // Written whole and synced beside the old file, then renamed over it: a crash leaves one or
  // the other. mkstemp makes it 0600: camera passwords may be in it.
  std::string tmp = overlay_path + ".XXXXXX";
  const int fd = mkstemp(tmp.data());
  if (fd < 0)
    return std::unexpected(
        web::json_error(500, "write_failed", "cannot write beside " + overlay_path));
  bool written = ::write(fd, written_text.data(), written_text.size()) ==
                 static_cast<ssize_t>(written_text.size());
  written = ::fsync(fd) == 0 && written;
  ::close(fd);
  if (!written || std::rename(tmp.c_str(), overlay_path.c_str()) != 0) {
    std::remove(tmp.c_str());
    return std::unexpected(web::json_error(500, "write_failed", "cannot replace " + overlay_path));
  }
  auto fresh = std::make_shared<const Config>(std::move(*next));
  ctx.replace(fresh);
  return fresh;
}

void add_operation_routes(web::Router& router, OperationContext& ctx) {
  router.add({"GET", "/api/organisation", Role::viewer, RouteKind::json,
              "province, communes (former names too), hamlets and the camera inventory"},
             [&ctx](const web::HttpRequest& req) {
               const auto snapshot = ctx.config();
               return ok(organisation_json(*snapshot, req));
             });
  router.add({"PUT", "/api/organisation", Role::admin, RouteKind::json,
              "replace the organisation and the cameras' inventory (validated, kept, audited)"},
             [&ctx](const web::HttpRequest& req) { return put_organisation(ctx, req); });
  router.add({"GET", "/api/reports/operation", Role::viewer, RouteKind::file,
              "the camera-model operation report (json, html, csv, xlsx, pdf; audited)"},
             [&ctx](const web::HttpRequest& req) { return report_route(ctx, req); });

  router.add(
      {"GET", "/api/cases", Role::reviewer, RouteKind::json,
       "cases, newest first (filters commune, category, status, from, to)"},
      [&ctx](const web::HttpRequest& req) {
        const auto snapshot = ctx.config();
        const Config& config = *snapshot;
        const auto q = [&](const char* k) {
          const auto it = req.query.find(k);
          return it == req.query.end() ? std::string() : it->second;
        };
        if (!q("category").empty() && !valid_category(q("category")))
          return web::json_error(400, "bad_category", "unknown category '" + q("category") + "'");
        if (!q("status").empty() && !valid_status(q("status")))
          return web::json_error(400, "bad_status", "status must be open, clarified or closed");
        std::int64_t from = 0, to = INT64_MAX;
        for (const auto& [key, target] :
             {std::pair<const char*, std::int64_t*>{"from", &from}, {"to", &to}}) {
          if (q(key).empty()) continue;
          const auto t = parse_time_arg(q(key), SystemClock().now_us());
          if (!t) return web::json_error(400, "bad_time", std::string("bad '") + key + "'");
          *target = *t;
        }
        const std::string commune = q("commune").empty() ? "" : current_code(config, q("commune"));
        auto list = ctx.db.read([&](sqlite3* conn) {
          Statement st(conn, std::string("SELECT ") + kCaseColumns +
                                 " FROM case_file WHERE node_id = ?1 AND occurred_us >= ?2"
                                 " AND occurred_us < ?3 AND (?4 = '' OR category = ?4) AND"
                                 " (?5 = '' OR status = ?5) ORDER BY occurred_us DESC, id"
                                 " DESC");
          st.bind(1, config.node_id)
              .bind(2, from)
              .bind(3, to)
              .bind(4, q("category"))
              .bind(5, q("status"));
          json out = json::array();
          while (st.step()) {
            const auto code = current_code(config, st.text(1));
            if (!commune.empty() && code != commune) continue;
            if (!may_see_commune(req, config, code)) continue;
            out.push_back(case_json(st));
            if (out.size() == 1000) break;  // the newest 1000 the caller may see
          }
          return out;
        });
        return ok({{"cases", list}});
      });
  router.add({"POST", "/api/cases", Role::reviewer, RouteKind::json, "open a case (audited)"},
             [&ctx](const web::HttpRequest& req) {
               const auto snapshot = ctx.config();
               const Config& config = *snapshot;
               const auto body = json::parse(req.body, nullptr, false);
               if (auto bad = check_case_body(body, false, config)) return *bad;
               const std::string commune = current_code(config, body["commune"]);
               if (!may_see_commune(req, config, commune))
                 return web::json_error(403, "out_of_scope",
                                        "commune '" + commune + "' is outside your communes");
               const auto now = SystemClock().now_us();
               const std::string id = make_ulid(now);
               std::string error;
               ctx.db.write([&, node = config.node_id, user = req.user](sqlite3* conn) {
                 Statement st(conn,
                              "INSERT INTO case_file (id, node_id, commune, category, title,"
                              " description, requesting_unit, officer, status, footage_helped,"
                              " occurred_us, created_by, created_us, updated_us) VALUES (?1, ?2,"
                              " ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?13)");
                 st.bind(1, id)
                     .bind(2, node)
                     .bind(3, commune)
                     .bind(4, body["category"].get<std::string>())
                     .bind(5, body["title"].get<std::string>())
                     .bind(6, body.value("description", std::string()))
                     .bind(7, body.value("requesting_unit", std::string()))
                     .bind(8, body.value("officer", std::string()))
                     .bind(9, body.value("status", std::string("open")))
                     .bind(10, static_cast<std::int64_t>(body.value("footage_helped", false)))
                     .bind(11, *parse_iso8601_us(body["occurred"].get<std::string>()))
                     .bind(12, user)
                     .bind(13, now);
                 if (!st.run()) error = st.error();
               });
               ctx.db.flush();
               if (!error.empty()) return web::json_error(500, "write_failed", error);
               evidence::append_audit(ctx.db, config.node_id, now, req.user, "case_create", id,
                                      body.dump(-1, ' ', false, json::error_handler_t::replace));
               return ok(*load_case(ctx, id), 201);
             });
  router.add({"GET", "/api/cases/{id}", Role::reviewer, RouteKind::json,
              "one case with its linked events and exports"},
             [&ctx](const web::HttpRequest& req) {
               const auto snapshot = ctx.config();
               const Config& config = *snapshot;
               auto c = scoped_case(ctx, req, config);
               if (auto* answer = std::get_if<web::HttpResponse>(&c)) return *answer;
               return ok(std::get<json>(c));
             });
  router.add({"PATCH", "/api/cases/{id}", Role::reviewer, RouteKind::json,
              "change a case's fields, status or outcome (audited)"},
             [&ctx](const web::HttpRequest& req) {
               const auto snapshot = ctx.config();
               const Config& config = *snapshot;
               const auto& id = req.params.at("id");
               auto c = scoped_case(ctx, req, config);
               if (auto* answer = std::get_if<web::HttpResponse>(&c)) return *answer;
               const auto body = json::parse(req.body, nullptr, false);
               if (auto bad = check_case_body(body, true, config)) return *bad;
               if (body.empty()) return web::json_error(400, "empty", "nothing to change");
               if (body.contains("commune") && !may_see_commune(req, config, body["commune"]))
                 return web::json_error(403, "out_of_scope", "that commune is outside yours");
               const auto now = SystemClock().now_us();
               std::string error;
               ctx.db.write([&](sqlite3* conn) {
                 for (const auto& [k, v] : body.items()) {
                   // Column names come from the checked list above, never from the client.
                   const std::string column = k == "occurred" ? "occurred_us" : k;
                   Statement st(conn, "UPDATE case_file SET " + column +
                                          " = ?1, updated_us = ?2 WHERE id = ?3");
                   if (k == "footage_helped")
                     st.bind(1, static_cast<std::int64_t>(v.get<bool>()));
                   else if (k == "occurred")
                     st.bind(1, *parse_iso8601_us(v.get<std::string>()));
                   else if (k == "commune")
                     st.bind(1, current_code(config, v.get<std::string>()));
                   else
                     st.bind(1, v.get<std::string>());
                   st.bind(2, now).bind(3, id);
                   if (!st.run()) error = st.error();
                 }
               });
               ctx.db.flush();
               if (!error.empty()) return web::json_error(500, "write_failed", error);
               evidence::append_audit(ctx.db, config.node_id, now, req.user, "case_update", id,
                                      body.dump(-1, ' ', false, json::error_handler_t::replace));
               return ok(*load_case(ctx, id));
             });
  router.add({"POST", "/api/cases/{id}/links", Role::reviewer, RouteKind::json,
              "link an event or an export to the case (audited)"},
             [&ctx](const web::HttpRequest& req) {
               const auto snapshot = ctx.config();
               const Config& config = *snapshot;
               const auto& id = req.params.at("id");
               auto c = scoped_case(ctx, req, config);
               if (auto* answer = std::get_if<web::HttpResponse>(&c)) return *answer;
               const auto body = json::parse(req.body, nullptr, false);
               if (!body.is_object() || !body.contains("kind") || !body.contains("id") ||
                   !body["kind"].is_string() || !body["id"].is_string())
                 return web::json_error(400, "bad_json",
                                        "send {\"kind\": \"event\"|\"export\", \"id\": \"…\"}");
               const std::string kind = body["kind"], target = body["id"];
               if (kind != "event" && kind != "export")
                 return web::json_error(400, "bad_kind", "kind must be event or export");
               // The cameras behind the event or export: it must exist and be in scope.
               const auto cameras = ctx.db.read([&](sqlite3* conn) -> std::optional<json> {
                 Statement st(
                     conn, kind == "event"
                               ? "SELECT json_array(camera_id) FROM event WHERE node_id = ?1 AND"
                                 " id = ?2"
                               : "SELECT cameras FROM export_job WHERE node_id = ?1 AND id = ?2");
                 st.bind(1, config.node_id).bind(2, target);
                 if (!st.step()) return std::nullopt;
                 return json::parse(st.text(0), nullptr, false);
               });
               if (!cameras)
                 return web::json_error(400, "dangling_link", "no " + kind + " '" + target + "'");
               if (cameras->is_array()) {
                 for (const auto& cam : *cameras) {
                   if (!cam.is_string()) continue;
                   std::string commune;
                   for (const auto& known : config.cameras) {
                     if (known.id == cam.get<std::string>()) commune = known.commune;
                   }
                   if (!may_see_commune(req, config, commune))
                     return web::json_error(403, "out_of_scope",
                                            "the " + kind + " is outside your communes");
                 }
               }
               const auto now = SystemClock().now_us();
               ctx.db.write([&, user = req.user](sqlite3* conn) {
                 Statement st(conn,
                              "INSERT OR IGNORE INTO case_link (case_id, kind, target_id,"
                              " linked_by, linked_us) VALUES (?1, ?2, ?3, ?4, ?5)");
                 st.bind(1, id).bind(2, kind).bind(3, target).bind(4, user).bind(5, now);
                 st.run();
               });
               ctx.db.flush();
               evidence::append_audit(ctx.db, config.node_id, now, req.user, "case_link", id,
                                      json{{"kind", kind}, {"id", target}}.dump(
                                          -1, ' ', false, json::error_handler_t::replace));
               return ok(*load_case(ctx, id));
             });
}

int report_cli(const std::vector<std::string>& args) {
  CliBase b{default_config_path(), {}, {}};
  report::ReportRequest r;
  std::string format, out;
  for (std::size_t i = 0; i < args.size(); ++i) {
    auto value = [&]() -> std::string { return i + 1 < args.size() ? args[++i] : ""; };
    const auto& a = args[i];
    if (a == "--config")
      b.config_path = value();
    else if (a == "--commune")
      for (auto& c : split_commas(value())) r.communes.push_back(std::move(c));
    else if (a == "--from")
      r.from_day = value();
    else if (a == "--to")
      r.to_day = value();
    else if (a == "--format")
      format = value();
    else if (a == "--out")
      out = value();
    else if (a == "--prepared-by")
      r.prepared_by = value();
    else if (a == "--repair-below") {
      try {
        r.repair_below = std::stod(value()) / 100.0;
      } catch (...) {
        std::fprintf(stderr, "report: --repair-below takes a percentage, e.g. 90\n");
        return 2;
      }
    } else {
      std::fprintf(stderr, "report: unknown argument %s\n", a.c_str());
      return 2;
    }
  }
  static const std::set<std::string> formats{"json", "html", "csv", "xlsx", "pdf"};
  if (r.communes.empty() || r.from_day.empty() || r.to_day.empty() || out.empty() ||
      !formats.contains(format)) {
    std::fprintf(stderr,
                 "usage: matthan report [--config FILE] --commune CODE[,CODE] --from YYYY-MM-DD"
                 " --to YYYY-MM-DD --format pdf|html|csv|xlsx|json --out FILE\n"
                 "       [--prepared-by NAME] [--repair-below PERCENT]\n");
    return 2;
  }
  if (!open_node(b)) return 1;
  r.now_us = SystemClock().now_us();
  if (r.prepared_by.empty()) {
    const auto actor = cli_actor();  // "cli:USER" or "cli"
    r.prepared_by = actor.size() > 4 ? actor.substr(4) : "";
  }
  auto data = b.db->read([&](sqlite3* conn) {
    return report::build_report(conn, *b.config, r, [](double f, const std::string& what) {
      std::fprintf(stderr, "report: %3d%% %s\n", static_cast<int>(f * 100 + 0.5), what.c_str());
    });
  });
  if (!data) {
    std::fprintf(stderr, "report: %s\n", data.error().c_str());
    return 1;
  }
  std::fprintf(stderr, "report: writing %s\n", out.c_str());
  std::expected<void, std::string> written;
  if (format == "pdf") {
    written = report::write_pdf(*data, out);
  } else if (format == "xlsx") {
    written = report::write_xlsx(*data, out);
  } else {
    const auto text = format == "html"  ? report::render_html(*data)
                      : format == "csv" ? report::render_csv(*data)
                                        : report::render_json(*data);
    std::ofstream f(out, std::ios::binary);
    f << text;
    if (!f) written = std::unexpected("cannot write " + out);
  }
  if (!written) {
    std::fprintf(stderr, "report: %s\n", written.error().c_str());
    return 1;
  }
  evidence::append_audit(
      *b.db, b.config->node_id, r.now_us, cli_actor(), "report", "operation",
      json{{"communes", r.communes}, {"from", r.from_day}, {"to", r.to_day}, {"format", format}}
          .dump(-1, ' ', false, json::error_handler_t::replace));
  b.db->flush();
  std::printf("%s\n", out.c_str());
  return 0;
}

int record_cli(const std::vector<std::string>& args) {
  CliBase b{default_config_path(), {}, {}};
  std::string dir, out, format = "pdf";
  for (std::size_t i = 0; i < args.size(); ++i) {
    auto value = [&]() -> std::string { return i + 1 < args.size() ? args[++i] : ""; };
    if (args[i] == "--config")
      b.config_path = value();
    else if (args[i] == "--out")
      out = value();
    else if (args[i] == "--format")
      format = value();
    else if (dir.empty() && !args[i].starts_with("--"))
      dir = args[i];
    else {
      std::fprintf(stderr, "record: unknown argument %s\n", args[i].c_str());
      return 2;
    }
  }
  if (dir.empty() || out.empty() || (format != "pdf" && format != "html")) {
    std::fprintf(
        stderr,
        "usage: matthan record EXPORT-DIR --out FILE [--format pdf|html] [--config FILE]\n");
    return 2;
  }
  std::ifstream in(dir + "/manifest.json", std::ios::binary);
  if (!in) {
    std::fprintf(stderr, "record: no manifest.json in %s\n", dir.c_str());
    return 1;
  }
  const std::string manifest((std::istreambuf_iterator<char>(in)), {});
  // The place from the config when there is one; the record stands without it.
  std::string place;
  if (auto config = load_config_file(b.config_path)) {
    ::setenv("TZ", (":" + config->server.time_zone).c_str(), 1);
    ::tzset();
    const auto m = json::parse(manifest, nullptr, false);
    if (m.is_object() && m.contains("cameras") && m["cameras"].is_array() &&
        !m["cameras"].empty()) {
      const std::string code = m["cameras"][0].value("commune", "");
      const auto* commune = config->organisation.commune(code);
      place = commune != nullptr ? commune->name : code;
    }
  }
  const auto sha = evidence::sha256_hex(manifest);
  std::expected<void, std::string> written;
  if (format == "pdf") {
    written = report::write_record_pdf(manifest, sha, place, out);
  } else if (auto html = report::render_record_html(manifest, sha, place)) {
    std::ofstream f(out, std::ios::binary);
    f << *html;
    if (!f) written = std::unexpected("cannot write " + out);
  } else {
    written = std::unexpected(html.error());
  }
  if (!written) {
    std::fprintf(stderr, "record: %s\n", written.error().c_str());
    return 1;
  }
  std::printf("%s\n", out.c_str());
  return 0;
}

}  // namespace matthan::app
