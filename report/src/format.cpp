#include "format.hpp"

#include <nlohmann/json.hpp>

#include <cmath>
#include <cstdio>
#include <ctime>

namespace matthan::report {

std::string owner_label(const std::string& owner) {
  if (owner == "model") return "Mô hình của xã";
  if (owner == "household") return "Hộ gia đình";
  if (owner == "business") return "Cơ sở kinh doanh";
  if (owner == "agency") return "Cơ quan, đơn vị";
  return owner;
}

std::string category_label(const std::string& category) {
  if (category == "theft") return "Trộm cắp";
  if (category == "assault") return "Cố ý gây thương tích";
  if (category == "public_disorder") return "Gây rối trật tự công cộng";
  if (category == "traffic_accident") return "Tai nạn giao thông";
  if (category == "environment") return "Vi phạm môi trường";
  if (category == "drugs") return "Ma túy";
  if (category == "other") return "Khác";
  return category;
}

std::string event_type_label(const std::string& type) {
  if (type == "motion") return "Chuyển động";
  if (type == "person") return "Người";
  if (type == "intrusion") return "Xâm nhập";
  if (type == "loitering") return "Lảng vảng";
  if (type == "tamper") return "Che, xoay camera";
  if (type == "camera_offline") return "Camera mất kết nối";
  return type;
}

std::string state_label(const std::string& state) {
  if (state == "online") return "Trực tuyến";
  if (state == "offline") return "Mất kết nối";
  if (state == "connecting") return "Đang kết nối";
  if (state == "unauthorized") return "Sai mật khẩu";
  if (state == "not_found") return "Sai đường dẫn";
  if (state == "error") return "Lỗi";
  if (state == "disabled") return "Đã tắt";
  if (state == "not_monitored") return "Không giám sát";
  return state;
}

namespace {
std::string with_comma(std::string s) {
  for (auto& ch : s) {
    if (ch == '.') ch = ',';
  }
  return s;
}
std::string fixed(double v, int decimals) {
  char out[64];
  std::snprintf(out, sizeof out, "%.*f", decimals, v);
  return out;
}
std::string n(std::int64_t v) {
  return std::to_string(v);
}
std::string signed_n(std::int64_t v) {
  return (v > 0 ? "+" : "") + std::to_string(v);
}
}  // namespace

std::string percent_plain(std::optional<double> share) {
  return share ? fixed(*share * 100.0, 2) : "";
}
std::string percent_vi(std::optional<double> share) {
  return share ? with_comma(fixed(*share * 100.0, 2)) + " %" : "—";
}
std::string hours_plain(std::int64_t us) {
  return fixed(static_cast<double>(us) / 3.6e9, 2);
}
std::string hours_vi(std::int64_t us) {
  return with_comma(hours_plain(us));
}
std::string day_vi(const std::string& day) {
  if (day.size() != 10) return day;
  return day.substr(8, 2) + "/" + day.substr(5, 2) + "/" + day.substr(0, 4);
}
std::string time_vi(std::int64_t us) {
  const std::time_t t = static_cast<std::time_t>(us / 1'000'000);
  std::tm tm{};
  localtime_r(&t, &tm);
  char out[32];
  std::strftime(out, sizeof out, "%d/%m/%Y %H:%M", &tm);
  return out;
}

std::vector<Section> sections(const ReportData& d) {
  std::vector<Section> out;
  const auto camera_name = [&](const std::string& id) {
    for (const auto& c : d.cameras) {
      if (c.id == id) return c.name;
    }
    return id;
  };
  {
    Section s{"I. Thông tin chung", {}, {}};
    if (!d.province.empty()) s.lines.push_back("Tỉnh, thành phố: " + d.province);
    for (const auto& c : d.communes) {
      s.lines.push_back("Xã: " + c.name + " (mã " + c.code + ")");
      for (const auto& f : c.former_in_period) s.lines.push_back("Tên cũ trong kỳ: " + f);
      if (!c.model.empty()) s.lines.push_back("Mô hình: " + c.model);
    }
    const auto days = (d.period_end_us - d.period_start_us + 43'200'000'000LL) / 86'400'000'000LL;
    s.lines.push_back("Kỳ báo cáo: từ ngày " + day_vi(d.from_day) + " đến hết ngày " +
                      day_vi(d.to_day) + " (" + n(days) + " ngày)");
    if (!d.prepared_by.empty()) s.lines.push_back("Người lập: " + d.prepared_by);
    s.lines.push_back("Ngày lập: " + time_vi(d.generated_us) + " — máy chủ " + d.node_id);
    out.push_back(std::move(s));
  }
  {
    Section s{"II. Danh mục camera", {}, {}};
    s.lines.push_back("Tổng số camera: " + n(d.totals.cameras));
    Table hamlets{"Theo thôn, tổ dân phố", {"Thôn", "Số camera"}, {}};
    for (const auto& [h, k] : d.by_hamlet) hamlets.rows.push_back({h, n(k)});
    Table owners{"Theo chủ sở hữu", {"Loại", "Số camera"}, {}};
    for (const auto& [o, k] : d.by_owner) owners.rows.push_back({owner_label(o), n(k)});
    Table list{
        "Danh sách camera",
        {"Mã", "Tên", "Thôn", "Chủ sở hữu", "Hãng, model", "Ngày lắp đặt (tháo dỡ)", "Kinh phí"},
        {}};
    for (const auto& c : d.cameras) {
      // A camera taken out during the period says when: its hours end there.
      list.rows.push_back(
          {c.id, c.name, c.hamlet_name, owner_label(c.owner),
           c.brand + (c.model.empty() ? "" : " " + c.model),
           day_vi(c.installed) + (c.removed.empty() ? "" : " (tháo dỡ " + day_vi(c.removed) + ")"),
           c.funding});
    }
    s.tables = {hamlets, owners, list};
    out.push_back(std::move(s));
  }
  {
    Section s{"III. Tình trạng hoạt động của camera", {}, {}};
    s.lines.push_back("Camera trực tuyến cuối kỳ: " + n(d.online_at_end) + "/" +
                      n(static_cast<std::int64_t>(d.cameras.size())));
    s.lines.push_back("Tỷ lệ hoạt động chung: " + percent_vi(d.totals.uptime));
    s.lines.push_back("Thời gian máy chủ ngừng giám sát: " + hours_vi(d.server_not_monitored_us) +
                      " giờ (không tính là lỗi của camera)");
    Table t{"Tỷ lệ hoạt động theo camera",
            {"Camera", "Giám sát (giờ)", "Trực tuyến (giờ)", "Tỷ lệ hoạt động",
             "Không giám sát (giờ)", "Trạng thái cuối kỳ"},
            {}};
    for (const auto& c : d.cameras) {
      t.rows.push_back({c.name, hours_vi(c.monitored_us), hours_vi(c.online_us),
                        percent_vi(c.uptime), hours_vi(c.not_monitored_us),
                        state_label(c.state_at_end)});
    }
    s.tables = {t};
    s.chart = Section::Chart::uptime;
    out.push_back(std::move(s));
  }
  {
    Section s{"IV. Ghi hình", {}, {}};
    s.lines.push_back("Tỷ lệ thời gian có ghi hình: " + percent_vi(d.coverage));
    Table t{"Ghi hình theo camera (luồng chính)",
            {"Camera", "Đã ghi (giờ)", "Khoảng trống (giờ)", "Số khoảng trống", "Tỷ lệ ghi hình"},
            {}};
    for (const auto& c : d.cameras) {
      t.rows.push_back(
          {c.name, hours_vi(c.recorded_us), hours_vi(c.gap_us), n(c.gaps), percent_vi(c.coverage)});
    }
    Table g{"Các khoảng trống dài nhất", {"Camera", "Từ", "Đến", "Thời lượng (giờ)", "Lý do"}, {}};
    for (const auto& gap : d.largest_gaps) {
      g.rows.push_back({camera_name(gap.camera), time_vi(gap.start_us), time_vi(gap.end_us),
                        hours_vi(gap.end_us - gap.start_us),
                        gap.reason == "server_down" ? "Máy chủ ngừng" : "Mất tín hiệu"});
    }
    s.tables = {t, g};
    out.push_back(std::move(s));
  }
  {
    Section s{"V. Sự kiện phát hiện", {}, {}};
    s.lines.push_back("Tổng số sự kiện: " + n(d.totals.events));
    Table types{"Theo loại", {"Loại sự kiện", "Số sự kiện"}, {}};
    for (const auto& [type, k] : d.events_by_type)
      types.rows.push_back({event_type_label(type), n(k)});
    Table weeks{"Theo tuần", {"Tuần bắt đầu", "Số sự kiện"}, {}};
    for (const auto& [w, k] : d.events_by_week) weeks.rows.push_back({day_vi(w), n(k)});
    s.tables = {types, weeks};
    s.chart = Section::Chart::weeks;
    out.push_back(std::move(s));
  }
  {
    Section s{"VI. Kết quả xác minh sự kiện", {}, {}};
    Table t{"Kết quả", {"Kết quả", "Số sự kiện"}, {}};
    t.rows = {{"Xác nhận đúng", n(d.totals.confirmed)},
              {"Báo động giả", n(d.totals.false_alarms)},
              {"Chưa xem xét", n(d.totals.unreviewed)}};
    s.tables = {t};
    out.push_back(std::move(s));
  }
  {
    Section s{"VII. Trích xuất dữ liệu", {}, {}};
    s.lines.push_back("Số lần trích xuất: " + n(d.totals.extractions));
    Table t{"Theo đơn vị đề nghị", {"Đơn vị đề nghị", "Số lần"}, {}};
    for (const auto& [unit, k] : d.extractions_by_unit)
      t.rows.push_back({unit.empty() ? "(không ghi)" : unit, n(k)});
    s.tables = {t};
    out.push_back(std::move(s));
  }
  {
    Section s{"VIII. Vụ việc", {}, {}};
    s.lines.push_back("Tổng số vụ việc: " + n(d.totals.cases) +
                      "; camera giúp làm rõ: " + n(d.totals.cases_helped));
    Table t{"Theo loại vụ việc", {"Loại vụ việc", "Số vụ"}, {}};
    for (const char* cat : kCategories) {
      const auto it = d.cases_by_category.find(cat);
      t.rows.push_back({category_label(cat), n(it == d.cases_by_category.end() ? 0 : it->second)});
    }
    Table st{"Theo tình trạng", {"Tình trạng", "Số vụ"}, {}};
    for (const auto& [status, label] : {std::pair<std::string, std::string>{"open", "Đang xử lý"},
                                        {"clarified", "Đã làm rõ"},
                                        {"closed", "Đã kết thúc"}}) {
      const auto it = d.cases_by_status.find(status);
      st.rows.push_back({label, n(it == d.cases_by_status.end() ? 0 : it->second)});
    }
    s.tables = {t, st};
    out.push_back(std::move(s));
  }
  {
    Section s{"IX. So sánh với kỳ trước", {}, {}};
    s.lines.push_back("Kỳ trước: từ ngày " + day_vi(d.previous_from_day) + " đến hết ngày " +
                      day_vi(d.previous_to_day));
    Table t{"So sánh", {"Chỉ tiêu", "Kỳ này", "Kỳ trước", "Chênh lệch"}, {}};
    const auto row = [&](const std::string& what, std::int64_t now, std::int64_t before) {
      t.rows.push_back({what, n(now), n(before), signed_n(now - before)});
    };
    row("Số camera", d.totals.cameras, d.previous.cameras);
    {
      std::string diff = "—";
      if (d.totals.uptime && d.previous.uptime) {
        const double pp = (*d.totals.uptime - *d.previous.uptime) * 100.0;
        diff = with_comma((pp > 0 ? "+" : "") + fixed(pp, 2)) + " điểm %";
      }
      t.rows.push_back(
          {"Tỷ lệ hoạt động", percent_vi(d.totals.uptime), percent_vi(d.previous.uptime), diff});
    }
    row("Sự kiện", d.totals.events, d.previous.events);
    row("Sự kiện xác nhận đúng", d.totals.confirmed, d.previous.confirmed);
    row("Báo động giả", d.totals.false_alarms, d.previous.false_alarms);
    row("Lần trích xuất", d.totals.extractions, d.previous.extractions);
    row("Vụ việc", d.totals.cases, d.previous.cases);
    row("Vụ việc camera giúp làm rõ", d.totals.cases_helped, d.previous.cases_helped);
    s.tables = {t};
    out.push_back(std::move(s));
  }
  {
    Section s{"X. Camera cần sửa chữa", {}, {}};
    s.lines.push_back("Camera có tỷ lệ hoạt động dưới " +
                      with_comma(fixed(d.repair_below * 100.0, 0)) +
                      " %: " + n(static_cast<std::int64_t>(d.repair.size())));
    Table t{"Danh sách", {"Camera", "Thôn", "Tỷ lệ hoạt động", "Trạng thái cuối kỳ"}, {}};
    for (const auto& id : d.repair) {
      for (const auto& c : d.cameras) {
        if (c.id == id)
          t.rows.push_back(
              {c.name, c.hamlet_name, percent_vi(c.uptime), state_label(c.state_at_end)});
      }
    }
    if (!t.rows.empty()) s.tables = {t};
    out.push_back(std::move(s));
  }
  return out;
}

namespace {
std::expected<RecordDoc, std::string> record_doc_of(const std::string& manifest_json,
                                                    const std::string& manifest_sha256,
                                                    const std::string& place);
}  // namespace

std::expected<RecordDoc, std::string> record_doc(const std::string& manifest_json,
                                                 const std::string& manifest_sha256,
                                                 const std::string& place) {
  try {
    return record_doc_of(manifest_json, manifest_sha256, place);
  } catch (const nlohmann::json::exception& e) {
    return std::unexpected(std::string("a damaged manifest: ") + e.what());
  }
}

namespace {
std::expected<RecordDoc, std::string> record_doc_of(const std::string& manifest_json,
                                                    const std::string& manifest_sha256,
                                                    const std::string& place) {
  using nlohmann::json;
  const auto m = json::parse(manifest_json, nullptr, false);
  if (!m.is_object() || m.value("format", "") != "matthan-export/1")
    return std::unexpected("not an export manifest");
  const auto text = [](const json& o, const char* k) {
    return o.contains(k) && o[k].is_string() ? o[k].get<std::string>() : std::string();
  };
  const auto when = [&](const std::string& iso) {
    // "2026-11-29T04:25:51.123456Z" → local "29/11/2026 11:25:51"
    std::tm tm{};
    if (iso.size() < 19 || strptime(iso.substr(0, 19).c_str(), "%Y-%m-%dT%H:%M:%S", &tm) == nullptr)
      return iso;
    const auto t = timegm(&tm);
    std::tm local{};
    localtime_r(&t, &local);
    char out[32];
    std::strftime(out, sizeof out, "%d/%m/%Y %H:%M:%S", &local);
    return std::string(out);
  };
  RecordDoc d;
  d.number = text(m, "export_id");
  const auto created = when(text(m, "created"));
  d.parts.push_back(
      {"",
       {"Số: " + d.number, "Hôm nay, lúc " + created + (place.empty() ? "" : ", tại " + place) +
                               ", chúng tôi tiến hành trích xuất dữ liệu từ hệ thống camera an "
                               "ninh (máy chủ " +
                               text(m, "node_id") + ", " + text(m, "software") + ") như sau:"}});
  d.parts.push_back(
      {"I. Thành phần",
       {"Đơn vị đề nghị trích xuất: " +
            (text(m, "requesting_unit").empty() ? "(không ghi)" : text(m, "requesting_unit")),
        "Cán bộ đề nghị: " + (text(m, "officer").empty() ? "(không ghi)" : text(m, "officer")),
        "Người thực hiện trích xuất (tài khoản hệ thống): " + text(m, "created_by")}});
  std::vector<std::string> content{"Lý do trích xuất: " + text(m, "reason")};
  if (m.contains("case_id") && m["case_id"].is_string())
    content.push_back("Vụ việc: " + m["case_id"].get<std::string>());
  if (m.contains("requested"))
    content.push_back("Khoảng thời gian đề nghị: từ " + when(text(m["requested"], "from")) +
                      " đến " + when(text(m["requested"], "to")));
  if (m.contains("server_time")) {
    const auto& st = m["server_time"];
    content.push_back("Múi giờ máy chủ: " + text(st, "time_zone") + "; đồng bộ thời gian NTP: " +
                      (st.value("ntp_synchronised", false) ? "có" : "KHÔNG"));
  }
  if (m.contains("hold_id") && m["hold_id"].is_string() && !m["hold_id"].get<std::string>().empty())
    content.push_back("Dữ liệu gốc được giữ lại, không bị xóa tự động (mã giữ " +
                      m["hold_id"].get<std::string>() + ")");
  d.parts.push_back({"II. Nội dung", content});
  d.files = Table{
      "Các tệp đã trích xuất", {"Tệp", "Camera", "Vị trí", "Từ", "Đến", "Dung lượng (byte)"}, {}};
  if (m.contains("cameras") && m["cameras"].is_array()) {
    for (const auto& c : m["cameras"]) {
      const std::string where = text(c, "hamlet").empty()
                                    ? text(c, "commune")
                                    : text(c, "hamlet") + ", " + text(c, "commune");
      if (!c.contains("file") || !c["file"].is_string()) {
        d.files.rows.push_back({"(không có)", text(c, "name"), where,
                                "Không có dữ liệu: " + text(c, "error"), "", ""});
        continue;
      }
      d.files.rows.push_back({text(c, "file"), text(c, "name"), where, when(text(c, "first_frame")),
                              when(text(c, "end")),
                              std::to_string(c.value("bytes", std::int64_t{0}))});
      d.integrity.push_back("SHA-256 của " + text(c, "file") + ": " + text(c, "sha256"));
    }
  }
  d.integrity.push_back("SHA-256 của manifest.json: " + manifest_sha256);
  if (m.contains("signing_key")) {
    const auto& k = m["signing_key"];
    d.integrity.push_back("Chữ ký số: " + text(k, "algorithm") + ", tệp " +
                          text(k, "signature_file") + ";");
    // On a line of its own, like the hashes: after the text above it could wrap mid-way.
    d.integrity.push_back("Dấu vân tay khóa của máy chủ: " + text(k, "fingerprint"));
  }
  if (m.contains("audit_chain_head"))
    d.integrity.push_back("Nhật ký kiểm toán tại thời điểm trích xuất: bản ghi số " +
                          std::to_string(m["audit_chain_head"].value("seq", std::int64_t{0})) +
                          ", mã băm " + text(m["audit_chain_head"], "hash"));
  d.integrity.push_back(
      "Cách kiểm tra: chạy \"sha256sum -c SHA256SUMS\" trong thư mục dữ liệu, hoặc \"matthan "
      "verify-export THƯ-MỤC\" (kiểm tra cả chữ ký).");
  d.signers = {"ĐẠI DIỆN ĐƠN VỊ ĐỀ NGHỊ", "NGƯỜI TRÍCH XUẤT", "ĐẠI DIỆN UBND XÃ"};
  return d;
}

}  // namespace

}  // namespace matthan::report
